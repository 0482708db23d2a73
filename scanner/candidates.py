"""Candidate stage: which sentence pairs deserve the cross-encoder. Pure numpy, no models.

Two sources of pairs:

* identical sentences (after Unicode, whitespace and case normalisation) found by hashing: ``exact_pairs``;
* top-k cosine neighbours above a floor, over unit vectors, searched in chunks so memory is bounded by
  ``query_chunk x corpus_chunk`` scores rather than n x n: ``neighbour_pairs``.

Both return each unordered pair once as ``i < j`` (row numbers into the sentence table), filtered by scope:
``cross`` keeps pairs from different documents, ``within`` pairs inside one document, ``all`` both.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from scanner.errors import ConfigError

Scope = Literal["cross", "within", "all"]
SCOPES = ("cross", "within", "all")


@dataclass(frozen=True)
class CandidateConfig:
    """``top_k`` neighbours per sentence with cosine >= ``min_cosine`` become candidates.

    ``query_chunk`` x ``corpus_chunk`` float32 scores are held at once (default 1024 x 16384 = 64 MB):
    smaller chunks use less memory and cost a little more Python overhead. Sentences with fewer than
    ``min_words`` words are left out of the search (and out of exact matching).
    """

    top_k: int = 5
    min_cosine: float = 0.7
    scope: Scope = "cross"
    min_words: int = 4
    query_chunk: int = 1024
    corpus_chunk: int = 16384

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ConfigError(f"--scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        if self.top_k < 1:
            raise ConfigError(f"--top-k must be at least 1, got {self.top_k}")
        if not -1.0 <= self.min_cosine <= 1.0:
            raise ConfigError(f"--min-cosine must be in [-1, 1], got {self.min_cosine}")


def normalise(text: str) -> str:
    """The form in which two sentences count as identical: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def text_key(text: str) -> int:
    """A 63-bit hash of ``normalise(text)``: equal for identical sentences, stable across runs and machines."""
    digest = hashlib.blake2b(normalise(text).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def _scope_ok(groups_a: np.ndarray, groups_b: np.ndarray, scope: Scope) -> np.ndarray:
    if scope == "cross":
        return groups_a != groups_b
    if scope == "within":
        return groups_a == groups_b
    return np.ones(np.broadcast_shapes(groups_a.shape, groups_b.shape), dtype=bool)


def _canonical(i: np.ndarray, j: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Order each pair as i < j, drop duplicates, sort by (i, j)."""
    lo, hi = np.minimum(i, j).astype(np.int64), np.maximum(i, j).astype(np.int64)
    key = np.stack([lo, hi], axis=1)
    if len(key) == 0:
        return (lo, hi, *values)
    _, first = np.unique(key, axis=0, return_index=True)
    return (lo[first], hi[first], *(v[first] for v in values))


def exact_pairs(keys: np.ndarray, groups: np.ndarray, scope: Scope, active: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All pairs of rows with equal ``keys`` that the scope allows, as (i, j) with i < j."""
    keys = np.asarray(keys)
    rows = np.flatnonzero(active) if active is not None else np.arange(len(keys))
    order = rows[np.argsort(keys[rows], kind="stable")]
    sorted_keys = keys[order]
    bounds = np.flatnonzero(np.diff(sorted_keys)) + 1
    out_i: list[np.ndarray] = []
    out_j: list[np.ndarray] = []
    for members in np.split(order, bounds):
        if len(members) < 2:
            continue
        a, b = np.triu_indices(len(members), k=1)
        ok = _scope_ok(groups[members[a]], groups[members[b]], scope)
        out_i.append(members[a][ok])
        out_j.append(members[b][ok])
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    i, j = _canonical(np.concatenate(out_i), np.concatenate(out_j))
    return i, j


def neighbour_pairs(
    embeddings: np.ndarray,
    groups: np.ndarray,
    config: CandidateConfig,
    keys: np.ndarray | None = None,
    active: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k cosine neighbours of every active row, above ``min_cosine``, allowed by scope.

    ``embeddings`` must be L2-normalised (n x d). ``groups`` gives each row's document (any integer id).
    Rows with equal ``keys`` (identical text) are not paired here: ``exact_pairs`` settles them.
    Returns (i, j, cosine) with i < j, each unordered pair once, sorted by (i, j).
    """
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    n = len(emb)
    rows = np.flatnonzero(active) if active is not None else np.arange(n)
    if len(rows) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    sub, sub_groups = emb[rows], np.asarray(groups)[rows]
    sub_keys = np.asarray(keys)[rows] if keys is not None else None
    k = min(config.top_k, len(rows) - 1)
    out_i, out_j, out_s = [], [], []
    for qs in range(0, len(rows), config.query_chunk):
        qe = min(qs + config.query_chunk, len(rows))
        best_s = np.full((qe - qs, k), -np.inf, dtype=np.float32)
        best_j = np.full((qe - qs, k), -1, dtype=np.int64)
        q_idx = np.arange(qs, qe)
        for cs in range(0, len(rows), config.corpus_chunk):
            ce = min(cs + config.corpus_chunk, len(rows))
            scores = sub[qs:qe] @ sub[cs:ce].T
            c_idx = np.arange(cs, ce)
            bad = q_idx[:, None] == c_idx[None, :]
            bad |= ~_scope_ok(sub_groups[qs:qe, None], sub_groups[None, cs:ce], config.scope)
            if sub_keys is not None:
                bad |= sub_keys[qs:qe, None] == sub_keys[None, cs:ce]
            scores[bad] = -np.inf
            take = min(k, ce - cs)
            part = np.argpartition(-scores, take - 1, axis=1)[:, :take]
            cand_s = np.concatenate([best_s, np.take_along_axis(scores, part, axis=1)], axis=1)
            cand_j = np.concatenate([best_j, part + cs], axis=1)
            keep = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
            best_s = np.take_along_axis(cand_s, keep, axis=1)
            best_j = np.take_along_axis(cand_j, keep, axis=1)
        ok = best_s >= config.min_cosine
        qi = np.broadcast_to(q_idx[:, None], best_s.shape)
        out_i.append(qi[ok])
        out_j.append(best_j[ok])
        out_s.append(best_s[ok])
    i = rows[np.concatenate(out_i)]
    j = rows[np.concatenate(out_j)]
    return _canonical(i, j, np.concatenate(out_s).astype(np.float32))  # type: ignore[return-value]


def word_counts(texts: Sequence[str]) -> np.ndarray:
    from scanner.segment import word_count

    return np.fromiter((word_count(t) for t in texts), dtype=np.int32, count=len(texts))


def neighbour_pairs_between(
    queries: np.ndarray,
    corpus: np.ndarray,
    config: CandidateConfig,
    query_keys: np.ndarray | None = None,
    corpus_keys: np.ndarray | None = None,
    corpus_active: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-way search: the top-k ``corpus`` neighbours of every query row, above ``min_cosine``.

    Used to compare new sentences with a reference index without comparing the reference with itself: the
    cost is ``len(queries) x len(corpus)`` and memory is bounded by ``query_chunk x corpus_chunk`` scores.
    Both inputs must be L2-normalised. Scope does not apply (queries and corpus are different collections).
    Pairs of rows with equal keys (identical text) are left to exact matching. Returns (i, j, cosine), ``i``
    a query row and ``j`` a corpus row, sorted by (i, j); at most ``top_k`` pairs per query.
    """
    q = np.ascontiguousarray(queries, dtype=np.float32)
    c = np.ascontiguousarray(corpus, dtype=np.float32)
    cols = np.flatnonzero(corpus_active) if corpus_active is not None else np.arange(len(c))
    if not len(q) or not len(cols):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    k = min(config.top_k, len(cols))
    out_i, out_j, out_s = [], [], []
    for qs in range(0, len(q), config.query_chunk):
        qe = min(qs + config.query_chunk, len(q))
        best_s = np.full((qe - qs, k), -np.inf, dtype=np.float32)
        best_j = np.full((qe - qs, k), -1, dtype=np.int64)
        for cs in range(0, len(cols), config.corpus_chunk):
            chunk = cols[cs : cs + config.corpus_chunk]
            scores = q[qs:qe] @ c[chunk].T
            if query_keys is not None and corpus_keys is not None:
                scores[np.asarray(query_keys)[qs:qe, None] == np.asarray(corpus_keys)[None, chunk]] = -np.inf
            best_s, best_j = merge_top_k(best_s, best_j, scores, np.broadcast_to(chunk, scores.shape), k)
        ok = best_s >= config.min_cosine
        out_i.append(np.broadcast_to(np.arange(qs, qe)[:, None], best_s.shape)[ok])
        out_j.append(best_j[ok])
        out_s.append(best_s[ok])
    i, j, s = np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_s).astype(np.float32)
    order = np.lexsort((j, i))
    return i[order], j[order], s[order]


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
