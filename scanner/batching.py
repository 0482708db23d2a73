"""Length-sorted, token-budgeted batching: the main waste a CPU transformer run can remove is padding.

Sorting inputs by token count and cutting batches by a token budget (rows x longest row) instead of a fixed
row count keeps every batch close to rectangular, so almost every multiply-add works on a real token.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def token_batches(lengths: Sequence[int], max_tokens: int, max_rows: int) -> list[np.ndarray]:
    """Split row indices into batches, longest rows first, each padded batch within ``max_tokens``.

    ``lengths`` are token counts per row. A batch holds at most ``max_rows`` rows and at most
    ``max_tokens`` padded tokens (rows x its longest row); a single row longer than the budget still forms
    a batch of its own. Every index appears in exactly one batch. Longest first so that memory peaks early.

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
        batches.append(order[start : start + rows])
        start += rows
    return batches
