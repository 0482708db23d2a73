"""Candidate stage: which sentence pairs deserve the cross-encoder. Pure numpy, no models.

Two sources of pairs:

* identical sentences (after Unicode, whitespace and case normalisation) found by hashing: ``exact_pairs``;
* top-k cosine neighbours above a floor, over unit vectors, searched in chunks so memory is bounded by
  ``query_chunk x corpus_chunk`` scores rather than n x n: ``neighbour_pairs``.

Both return each unordered pair once as ``i < j`` (row numbers into the sentence table), filtered by scope:
``cross`` keeps pairs from different documents, ``within`` pairs inside one document, ``all`` both.

Two optional limits keep the cross-encoder to the pairs most likely to be paraphrases: ``mutual`` keeps a
pair only when each sentence is among the other's top-k, and ``budget`` caps the neighbour pairs at that many
per searched sentence, keeping the highest cosines. From ``ann_min_rows`` searched rows on (with
``search="auto"``) the search is approximate, over clusters (``scanner.ann``), instead of exact. The block math
(scope, thresholding, per-row top-k) is shared with those searches in ``scanner.topk``.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from scanner.errors import ConfigError
from scanner.topk import SCOPES, Scope, banded, chunk_hits, merge_top_k, scope_ok, top_k_per_row

SearchKind = Literal["auto", "exact", "ivf", "faiss"]
SEARCHES = ("auto", "exact", "ivf", "faiss")
Prefilter = Literal["auto", "on", "off"]
PREFILTERS = ("auto", "on", "off")


@dataclass(frozen=True)
class CandidateConfig:
    """``top_k`` neighbours per sentence with cosine >= ``min_cosine`` become candidates.

    ``query_chunk`` x ``corpus_chunk`` float32 scores are held at once (default 1024 x 16384 = 64 MB):
    smaller chunks use less memory and cost a little more Python overhead. Sentences with fewer than
    ``min_words`` words are left out of the search (and out of exact matching).
    """

    top_k: int = 5
    min_cosine: float = 0.55  # the floor at which >= 97% of every validation set's paraphrases are candidates (pipelines/candidate_recall.py)
    #: the low band: a neighbour below ``band_cosine`` is a candidate only when each of its two sentences is
    #: among the other's best ``band_top_k`` neighbours (``band_mutual``; else: when one of them is), and at or
    #: below ``min_cosine`` there is no band. Between 0.55 and 0.7 most neighbours are related sentences, not
    #: rewrites: on the benchmark corpus the one-sided band cuts the candidate pairs from 0.56 to 0.35 per
    #: sentence and the mutual one to 0.25, keeping 97.8% and 97.5% of MRPC's validation paraphrases
    #: (``pipelines/candidate_recall.py``). Against a reference index the band is one-sided: the reference
    #: sentences' own neighbours are not searched
    band_cosine: float = 0.7
    band_top_k: int = 1
    band_mutual: bool = True
    scope: Scope = "cross"
    min_words: int = 4
    query_chunk: int = 1024
    corpus_chunk: int = 16384
    #: keep a pair only when both sentences have each other among their top-k (fewer pairs, lower recall)
    mutual: bool = False
    #: at most this many neighbour pairs per searched sentence, highest cosine first; None: no cap
    budget: float | None = None
    #: ``exact`` (chunked brute force), ``ivf`` (approximate: clustered, numpy), ``faiss`` (approximate, needs
    #: the faiss extra) or ``auto`` (exact below ``ann_min_rows`` searched rows, ivf from there on)
    search: SearchKind = "auto"
    ann_min_rows: int = 200_000
    #: lists (clusters) probed per query by ``ivf`` and ``faiss``: more is slower and closer to exact
    nprobe: int = 32  # 16 found 0.976 of exact search's pairs at 1M vectors, 32 all (README, Performance)
    #: OpenMP threads for FAISS; None: its default (all cores). On a machine busy with other work, 1 can be
    #: several times faster than more (OpenMP threads spin-wait for each other)
    faiss_threads: int | None = None
    #: static pre-filter (``scanner.prefilter``): only sentences with a static-embedding neighbour at cosine >=
    #: ``prefilter_min_cosine`` (in scope, not identical) are embedded by the full model and searched. ``auto``
    #: turns it on from ``prefilter_min_rows`` distinct searched sentences, with a transformer embedder
    prefilter: Prefilter = "auto"
    prefilter_min_cosine: float = 0.48
    prefilter_min_rows: int = 5000
    #: ``auto`` skips the pre-filter when a sample says it would keep more than this share of the sentences
    prefilter_max_kept: float = 0.85

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ConfigError(f"--scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        if self.top_k < 1:
            raise ConfigError(f"--top-k must be at least 1, got {self.top_k}")
        if not -1.0 <= self.min_cosine <= 1.0:
            raise ConfigError(f"--min-cosine must be in [-1, 1], got {self.min_cosine}")
        if not -1.0 <= self.band_cosine <= 1.0:
            raise ConfigError(f"--band-cosine must be in [-1, 1], got {self.band_cosine}")
        if not 1 <= self.band_top_k <= self.top_k:
            raise ConfigError(f"--band-top-k must be between 1 and --top-k ({self.top_k}), got {self.band_top_k}")
        if self.budget is not None and self.budget <= 0:
            raise ConfigError(f"--candidate-budget must be positive, got {self.budget}")
        if self.search not in SEARCHES:
            raise ConfigError(f"--search must be one of {', '.join(SEARCHES)}, got {self.search!r}")
        if self.prefilter not in PREFILTERS:
            raise ConfigError(f"--prefilter must be one of {', '.join(PREFILTERS)}, got {self.prefilter!r}")
        if not -1.0 <= self.prefilter_min_cosine <= 1.0:
            raise ConfigError(f"--prefilter-min-cosine must be in [-1, 1], got {self.prefilter_min_cosine}")
        if not 0.0 <= self.prefilter_max_kept <= 1.0:
            raise ConfigError(f"prefilter_max_kept must be a share in [0, 1], got {self.prefilter_max_kept}")

    def uses_prefilter(self, distinct: int) -> bool:
        """Whether a collection of ``distinct`` searched sentences gets the static pre-filter."""
        return self.prefilter == "on" or (self.prefilter == "auto" and distinct >= self.prefilter_min_rows)

    def method(self, rows: int) -> str:
        """The search a collection of ``rows`` vectors gets: ``exact``, ``ivf`` or ``faiss``."""
        if self.search != "auto":
            return self.search
        return "ivf" if rows >= self.ann_min_rows else "exact"


def normalise(text: str) -> str:
    """The form in which two sentences count as identical: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def text_key(text: str) -> int:
    """A 63-bit hash of ``normalise(text)``: equal for identical sentences, stable across runs and machines."""
    digest = hashlib.blake2b(normalise(text).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def _canonical(i: np.ndarray, j: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Order each pair as i < j, drop duplicates, sort by (i, j)."""
    lo, hi = np.minimum(i, j).astype(np.int64), np.maximum(i, j).astype(np.int64)
    key = np.stack([lo, hi], axis=1)
    if len(key) == 0:
        return (lo, hi, *values)
    _, first = np.unique(key, axis=0, return_index=True)
    return (lo[first], hi[first], *(v[first] for v in values))


def low_band(i: np.ndarray, j: np.ndarray, cosine: np.ndarray,
             config: CandidateConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The directed edges (i -> j) the low band keeps: all at or above ``config.band_cosine``, below it only each
    ``i``'s ``band_top_k`` best (no band when ``band_cosine`` is at or below ``min_cosine``). Whether a low edge
    must also be kept from the other side (``band_mutual``) is decided where the two directions meet,
    ``select_pairs``."""
    i, j, cos = np.asarray(i), np.asarray(j), np.asarray(cosine, dtype=np.float32)
    if config.band_cosine <= config.min_cosine or not len(cos):
        return i, j, cos
    keep = banded(i, j, cos, config.band_cosine, config.band_top_k)
    return i[keep], j[keep], cos[keep]


def select_pairs(i: np.ndarray, j: np.ndarray, cosine: np.ndarray, config: CandidateConfig,
                 searched: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From directed neighbour edges (i -> j: j is among i's top-k), the candidate pairs: below
    ``config.band_cosine`` only each sentence's ``band_top_k`` best edges, and with ``config.band_mutual`` only
    those kept from both sides, each unordered pair once (i < j, sorted), only pairs found from both sides when
    ``config.mutual``, and at most ``config.budget * searched`` pairs (highest cosine first, ties by (i, j)) when
    a budget is set."""
    i, j, cos = low_band(i, j, cosine, config)
    lo, hi = np.minimum(i, j).astype(np.int64), np.maximum(i, j).astype(np.int64)
    if len(lo) == 0:
        return lo, hi, cos
    key = np.stack([lo, hi], axis=1)
    _, first, counts = np.unique(key, axis=0, return_index=True, return_counts=True)
    both_sides = counts >= 2  # the pair's two directed edges both survived the search (and the low band)
    if config.mutual:
        first = first[both_sides]
    elif config.band_mutual:
        first = first[both_sides | (cos[first] >= config.band_cosine)]
    lo, hi, cos = lo[first], hi[first], cos[first]
    if config.budget is not None:
        cap = max(1, int(config.budget * searched))
        if len(lo) > cap:
            keep = np.sort(np.lexsort((hi, lo, -cos))[:cap])
            lo, hi, cos = lo[keep], hi[keep], cos[keep]
    return lo, hi, cos


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
        ok = scope_ok(groups[members[a]], groups[members[b]], scope)
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
    method = config.method(len(rows))
    if method != "exact":
        from scanner.ann import faiss_neighbours, ivf_neighbours

        search = faiss_neighbours if method == "faiss" else ivf_neighbours
        qi, qj, qs = search(emb[rows], np.asarray(groups)[rows], config, None if keys is None else np.asarray(keys)[rows])
        return select_pairs(rows[qi], rows[qj], qs, config, len(rows))
    sub, sub_groups = emb[rows], np.asarray(groups)[rows]
    sub_keys = np.asarray(keys)[rows] if keys is not None else None
    k = min(config.top_k, len(rows) - 1)
    out_i, out_j, out_s = [], [], []
    for qs in range(0, len(rows), config.query_chunk):
        qe = min(qs + config.query_chunk, len(rows))
        q_idx = np.arange(qs, qe)
        hits = [chunk_hits(sub[qs:qe] @ sub[c_idx].T, q_idx, c_idx, sub_groups, sub_keys, config.min_cosine,
                           config.scope, k)
                for c_idx in (np.arange(cs, min(cs + config.corpus_chunk, len(rows)))
                              for cs in range(0, len(rows), config.corpus_chunk))]
        r, c, sc = (np.concatenate(parts) for parts in zip(*hits, strict=True))
        keep = top_k_per_row(r, c, sc, k)
        out_i.append(r[keep] + qs)
        out_j.append(c[keep])
        out_s.append(sc[keep])
    i = rows[np.concatenate(out_i)]
    j = rows[np.concatenate(out_j)]
    return select_pairs(i, j, np.concatenate(out_s), config, len(rows))


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
