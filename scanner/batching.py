"""Length-sorted, token-budgeted batching: the main waste a CPU transformer run can remove is padding.

Sorting inputs by token count and cutting batches by a token budget (rows x longest row) instead of a fixed
row count keeps every batch close to rectangular, so almost every multiply-add works on a real token.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: with a padding bound, a batch may still take this many rows whatever their padding (tiny batches run a
#: transformer less efficiently than a little padding costs)
MIN_ROWS = 8


def token_batches(lengths: Sequence[int], max_tokens: int, max_rows: int,
                  max_padding: float | None = None) -> list[np.ndarray]:
    """Split row indices into batches, longest rows first, each padded batch within ``max_tokens``.

    ``lengths`` are token counts per row. A batch holds at most ``max_rows`` rows and at most
    ``max_tokens`` padded tokens (rows x its longest row); a single row longer than the budget still forms
    a batch of its own. Every index appears in exactly one batch. Longest first so that memory peaks early.
    With ``max_padding`` (e.g. 0.2), a batch of more than ``MIN_ROWS`` rows also stops growing before its
    padded tokens exceed (1 + max_padding) x its real tokens: a few hundred pairs of mixed lengths would
    otherwise fill one wide batch that is mostly padding.

    >>> [b.tolist() for b in token_batches([3, 10, 4, 9], max_tokens=20, max_rows=8)]
    [[1, 3], [2, 0]]
    """
    if max_tokens < 1 or max_rows < 1:
        raise ValueError(f"max_tokens and max_rows must be >= 1, got {max_tokens} and {max_rows}")
    lens = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lens, kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    n = len(order)
    while start < n:
        longest = max(int(lens[order[start]]), 1)
        rows = max(1, min(max_rows, max_tokens // longest))
        if max_padding is not None and rows > MIN_ROWS:
            window = lens[order[start : start + rows]]
            fits = np.arange(1, len(window) + 1) * longest <= (1 + max_padding) * np.cumsum(window)
            rows = max(MIN_ROWS, len(window) if fits.all() else int(np.argmin(fits)))
        batches.append(order[start : start + rows])
        start += rows
    return batches
