"""Top-k block math shared by the neighbour searches: pure numpy, no models, no configs.

The exact search (``scanner.candidates``), the clustered one (``scanner.ann``) and the static pre-filter
(``scanner.prefilter``) all score blocks of unit vectors, keep what the scope allows above a cosine floor, and
cut each row to its ``k`` best. The pieces they share live here:

* ``scope_ok``: which (row, row) pairs the scope allows, from the rows' document ids;
* ``chunk_hits``: the allowed entries of one score block at or above the floor;
* ``top_k_per_row``, ``merge_top_k``, ``top_k_per_query``: cutting and merging per-row top-k lists.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

#: which pairs count: ``cross`` pairs from different documents, ``within`` pairs inside one, ``all`` both
Scope = Literal["cross", "within", "all"]
SCOPES = ("cross", "within", "all")


def scope_ok(groups_a: np.ndarray, groups_b: np.ndarray, scope: Scope) -> np.ndarray:
    """Whether the scope allows each pair of rows with documents ``groups_a`` and ``groups_b`` (broadcast)."""
    if scope == "cross":
        return groups_a != groups_b
    if scope == "within":
        return groups_a == groups_b
    return np.ones(np.broadcast_shapes(groups_a.shape, groups_b.shape), dtype=bool)


def chunk_hits(scores: np.ndarray, q_idx: np.ndarray, c_idx: np.ndarray, groups: np.ndarray,
               keys: np.ndarray | None, min_cosine: float, scope: Scope,
               k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The allowed (position in ``q_idx``, corpus row, score) entries of one score block (rows ``q_idx`` x
    columns ``c_idx``) at or above the floor ``min_cosine``: no self pairs, none the ``scope`` forbids, none
    between rows with equal ``keys``.

    At a useful floor almost every score is below it, so the block is thresholded first and the self, scope
    and identical-text filters run only on the few survivors; with a low floor (many survivors) the block is
    first cut to each row's top-k, which bounds what is kept per block.
    """
    n_q, n_c = scores.shape
    r, c = np.nonzero(scores >= min_cosine)
    if len(r) > 4 * k * n_q:  # dense: mask the whole block, then keep each row's top k
        bad = (q_idx[:, None] == c_idx[None, :]) | ~scope_ok(groups[q_idx, None], groups[None, c_idx], scope)
        if keys is not None:
            bad |= keys[q_idx, None] == keys[None, c_idx]
        scores[bad] = -np.inf
        take = min(k, n_c)
        c = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        r = np.broadcast_to(np.arange(n_q)[:, None], c.shape)
        s = np.take_along_axis(scores, c, axis=1)
        ok = s >= min_cosine
        return r[ok], c_idx[c[ok]], s[ok]
    qa, cb = q_idx[r], c_idx[c]
    ok = (qa != cb) & scope_ok(groups[qa], groups[cb], scope)
    if keys is not None:
        ok &= keys[qa] != keys[cb]
    return r[ok], cb[ok], scores[r[ok], c[ok]]


def top_k_per_row(rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of each row's ``k`` best entries (highest score, then lowest column)."""
    order = np.lexsort((cols, -scores, rows))
    sorted_rows = rows[order]
    starts = np.flatnonzero(np.r_[True, sorted_rows[1:] != sorted_rows[:-1]]) if len(order) else np.zeros(0, np.int64)
    first = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return order[np.arange(len(order)) - first < k]


def banded(rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, floor: float, k: int) -> np.ndarray:
    """Mask of the edges (row -> col) to keep: every edge scoring at least ``floor``, and below it only the
    edges among their row's ``k`` best (highest score, then lowest column)."""
    keep = np.asarray(scores) >= floor
    keep[top_k_per_row(np.asarray(rows), np.asarray(cols), np.asarray(scores), k)] = True
    return keep


def merge_top_k(best_s: np.ndarray, best_j: np.ndarray, scores: np.ndarray, cols: np.ndarray,
                k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge a block of ``scores`` (rows x cols, column ids ``cols``) into running per-row top-k lists.

    ``best_s``/``best_j`` are rows x k (``-inf``/-1 where empty); returns the new top-k, best first.
    """
    take = min(k, scores.shape[1])
    if take == 0:
        return best_s, best_j
    part = np.argpartition(-scores, take - 1, axis=1)[:, :take]
    cand_s = np.concatenate([best_s, np.take_along_axis(scores, part, axis=1)], axis=1)
    cand_j = np.concatenate([best_j, np.take_along_axis(np.asarray(cols), part, axis=1)], axis=1)
    keep = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(cand_s, keep, axis=1), np.take_along_axis(cand_j, keep, axis=1)


def top_k_per_query(i: np.ndarray, j: np.ndarray, s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the ``k`` best-scoring pairs of each query ``i`` (ties: smaller ``j`` first), sorted by (i, j).

    Merges one-way results computed block by block (e.g. one per reference file) into the result a single
    search over all blocks gives."""
    if not len(i):
        return i, j, s
    order = np.lexsort((j, -s, i))
    i, j, s = i[order], j[order], s[order]
    starts = np.r_[0, np.flatnonzero(np.diff(i)) + 1]
    rank = np.arange(len(i)) - np.repeat(starts, np.diff(np.r_[starts, len(i)]))
    keep = rank < k
    i, j, s = i[keep], j[keep], s[keep]
    order = np.lexsort((j, i))
    return i[order], j[order], s[order]
