"""Candidate search at scale on synthetic but sentence-like vectors: time, peak memory and recall.

Real MiniLM sentence vectors of unrelated sentences have cosines around 0.0-0.4, those of a topic cluster
more, and reused sentences 0.8-1.0. ``synthetic_vectors`` imitates that: unit vectors around topic centres
(members of a topic at cosine ~0.3 with each other), grouped into documents of 40, with 1% planted
near-duplicates (cosine 0.85-0.99 with their source) in other documents. The floor (0.7) therefore separates
the planted reuse from the background, as it does on real text.

Recall is measured against exact search: on every row up to ``exact_max`` vectors, on a sample of query rows
above that (exact top-k of those queries against the whole collection, computed in chunks).
"""

from __future__ import annotations

import resource
import time
from typing import Any

import numpy as np

from scanner.candidates import CandidateConfig, neighbour_pairs
from scanner.topk import scope_ok

DIM = 384
DOC_SENTENCES = 40


def synthetic_vectors(n: int, dim: int = DIM, seed: int = 0, topic_size: int = 50, dup_share: float = 0.01,
                      chunk: int = 65_536) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unit float32 vectors n x dim, document of each row, planted (source, copy) row pairs)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // topic_size), dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    alpha = np.float32(0.55)  # member . member ~ alpha^2 = 0.3
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32)
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        v = alpha * centres[rng.integers(0, len(centres), stop - start)] + np.sqrt(1 - alpha**2) * noise
        out[start:stop] = v / np.linalg.norm(v, axis=1, keepdims=True)
    groups = rng.permutation(n) // DOC_SENTENCES
    n_dup = int(n * dup_share)
    rows = rng.choice(n, 2 * n_dup, replace=False)
    src, dst = rows[:n_dup], rows[n_dup:]
    src, dst = src[groups[src] != groups[dst]], dst[groups[src] != groups[dst]]
    for s0 in range(0, len(src), chunk):
        s, d = src[s0 : s0 + chunk], dst[s0 : s0 + chunk]
        noise = rng.standard_normal((len(s), dim), dtype=np.float32)
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        target = rng.uniform(0.85, 0.99, size=(len(s), 1)).astype(np.float32)
        v = target * out[s] + np.sqrt(1 - target**2) * noise
        out[d] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out, groups, np.stack([src, dst], axis=1)


def exact_edges(vectors: np.ndarray, groups: np.ndarray, queries: np.ndarray, config: CandidateConfig,
                chunk: int = 64) -> set[tuple[int, int]]:
    """Exact top-k directed edges (q, j) above the floor for the query rows, as unordered pairs."""
    edges: set[tuple[int, int]] = set()
    for start in range(0, len(queries), chunk):
        q = queries[start : start + chunk]
        scores = vectors[q] @ vectors.T
        scores[np.arange(len(q)), q] = -np.inf
        scores[~scope_ok(groups[q][:, None], groups[None, :], config.scope)] = -np.inf
        top = np.argpartition(-scores, config.top_k, axis=1)[:, : config.top_k]
        for row, cols in enumerate(top):
            for j in cols:
                if scores[row, j] >= config.min_cosine:
                    edges.add((min(int(q[row]), int(j)), max(int(q[row]), int(j))))
    return edges


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def search_benchmark(n: int, search: str = "auto", seed: int = 0, sample: int = 2000, exact_max: int = 20_000,
                     config: CandidateConfig | None = None, **options: Any) -> dict[str, Any]:
    """Time one candidate search over ``n`` synthetic vectors and measure its recall against exact search.
    ``options`` are further ``CandidateConfig`` fields (``nprobe``, ``faiss_threads``...)."""
    config = config or CandidateConfig(search=search, **options)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    vectors, groups, planted = synthetic_vectors(n, seed=seed)
    gen_seconds = time.perf_counter() - t0
    peak_before = _peak_mb()
    t0 = time.perf_counter()
    i, j, _ = neighbour_pairs(vectors, groups, config)
    seconds = time.perf_counter() - t0
    found = set(zip(i.tolist(), j.tolist(), strict=True))
    rng = np.random.default_rng(seed + 1)
    queries = np.arange(n) if n <= exact_max else np.sort(rng.choice(n, min(sample, n), replace=False))
    reference = exact_edges(vectors, groups, queries, config)
    qset = set(queries.tolist())
    ref_from_queries = {e for e in reference if e[0] in qset or e[1] in qset}
    planted_pairs = {(min(a, b), max(a, b)) for a, b in planted.tolist()}
    return {
        "vectors": n, "dim": vectors.shape[1], "search": config.method(n),
        "top_k": config.top_k, "min_cosine": config.min_cosine, "nprobe": config.nprobe,
        "faiss_threads": config.faiss_threads,
        "generate_seconds": round(gen_seconds, 2), "search_seconds": round(seconds, 2),
        "vectors_mb": round(vectors.nbytes / 2**20, 1), "peak_rss_mb_before_search": peak_before,
        "peak_rss_mb": _peak_mb(), "candidate_pairs": len(found),
        "recall_vs_exact": round(len(ref_from_queries & found) / max(1, len(ref_from_queries)), 4),
        "exact_reference": "all rows" if n <= exact_max else f"{len(queries)} sampled query rows",
        "planted_pairs": len(planted_pairs), "planted_recall": round(len(planted_pairs & found) / max(1, len(planted_pairs)), 4),
    }
