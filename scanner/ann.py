"""Approximate neighbour search for large collections: inverted lists (IVF) over unit vectors.

Exact search costs n x n dot products: at a million 384-d vectors that is about 8e14 FLOPs, hours on two
cores. An inverted-file index clusters the vectors into ``nlist`` lists and compares a query only with the
vectors of the ``nprobe`` lists nearest to it, so the cost is about n x nprobe x n / nlist: with nlist ~
sqrt(n), it grows as n^1.5 instead of n^2, and memory is the vectors plus a table of centroids.

Two implementations, both returning the same directed edges as the exact search:

* ``ivf_neighbours`` (numpy only, the default for large inputs): spherical k-means; each query probes its
  ``nprobe`` nearest lists, and the queries are grouped by list so that each list costs one matrix product
  (its probing queries x its members): large BLAS calls, close to the machine's matmul rate;
* ``faiss_neighbours`` (the ``faiss`` extra): FAISS ``IndexIVFFlat``, probing per query. On this 2-core
  machine its per-query scanning reached only a few GFLOPS (see README, Performance).

Approximate: a true neighbour in a list that was not probed is missed. ``pipelines.benchmark --search-only``
measures the recall against exact search.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from scanner.errors import ConfigError
from scanner.topk import chunk_hits, scope_ok, top_k_per_row

if TYPE_CHECKING:
    from scanner.candidates import CandidateConfig

#: training points per list (FAISS warns below 39)
_TRAIN_PER_LIST = 64
#: queries searched at once (bounds the result buffers)
_QUERY_CHUNK = 65_536


def import_faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise ConfigError(
            "approximate search needs FAISS: pip install 'paraphrase-scanner[faiss]' (faiss-cpu), or use --search exact"
        ) from exc
    return faiss


def nlist_for(n: int) -> int:
    """Number of inverted lists: about 4 sqrt(n), with enough training points per list."""
    return max(1, min(int(4 * math.sqrt(n)), n // _TRAIN_PER_LIST))


def build_index(vectors: np.ndarray, seed: int = 0) -> Any:
    """An inner-product IVF index holding ``vectors`` (unit float32 rows), trained on a sample of them."""
    faiss = import_faiss()
    n, dim = vectors.shape
    nlist = nlist_for(n)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    sample = vectors if n <= nlist * _TRAIN_PER_LIST else vectors[np.sort(rng.choice(n, nlist * _TRAIN_PER_LIST, replace=False))]
    index.cp.seed = seed
    index.train(np.ascontiguousarray(sample))
    index.add(vectors)
    return index


def faiss_neighbours(
    vectors: np.ndarray, groups: np.ndarray, config: CandidateConfig, keys: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed top-k edges (i -> j, cosine) among ``vectors``, like the exact search: no self pairs, only
    pairs the scope allows, none between rows with equal ``keys``, cosine >= ``config.min_cosine``.

    Each query asks the index for ``3 top_k + 1`` neighbours and keeps the best ``top_k`` that pass the
    filters, so a sentence whose nearest neighbours are mostly excluded (same document, same text) can end
    up with fewer than ``top_k``.
    """
    emb = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(emb)
    if config.faiss_threads:
        import_faiss().omp_set_num_threads(config.faiss_threads)
    index = build_index(emb)
    index.nprobe = min(config.nprobe, index.nlist)
    ask = min(n, 3 * config.top_k + 1)
    out_i, out_j, out_s = [], [], []
    for start in range(0, n, _QUERY_CHUNK):
        stop = min(n, start + _QUERY_CHUNK)
        scores, found = index.search(emb[start:stop], ask)
        q = np.arange(start, stop)[:, None]
        safe = np.where(found < 0, 0, found)
        ok = (found >= 0) & (found != q) & (scores >= config.min_cosine)
        ok &= scope_ok(groups[q], groups[safe], config.scope)
        if keys is not None:
            ok &= keys[q] != keys[safe]
        # keep the first top_k passing columns of each row (results come best first)
        ok &= np.cumsum(ok, axis=1) <= config.top_k
        out_i.append(np.broadcast_to(q, found.shape)[ok])
        out_j.append(found[ok])
        out_s.append(scores[ok])
    return (np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64),
            np.concatenate(out_s).astype(np.float32))


def spherical_kmeans(vectors: np.ndarray, nlist: int, iters: int = 8, seed: int = 0,
                     sample: int = _TRAIN_PER_LIST) -> np.ndarray:
    """``nlist`` unit centroids from k-means on cosine, trained on up to ``sample x nlist`` rows."""
    rng = np.random.default_rng(seed)
    n = len(vectors)
    train = vectors if n <= nlist * sample else vectors[np.sort(rng.choice(n, nlist * sample, replace=False))]
    centroids = train[rng.choice(len(train), nlist, replace=False)].copy()
    for _ in range(iters):
        assign = nearest_centroid(train, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, train)
        counts = np.bincount(assign, minlength=nlist)
        empty = counts == 0
        sums[empty] = train[rng.choice(len(train), int(empty.sum()), replace=False)]
        centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return centroids.astype(np.float32)


def nearest_centroid(vectors: np.ndarray, centroids: np.ndarray, chunk: int = 16_384) -> np.ndarray:
    return np.concatenate([np.argmax(vectors[s : s + chunk] @ centroids.T, axis=1)
                           for s in range(0, len(vectors), chunk)]) if len(vectors) else np.zeros(0, np.int64)


def ivf_neighbours(
    vectors: np.ndarray, groups: np.ndarray, config: CandidateConfig, keys: np.ndarray | None = None,
    query_chunk: int = 65_536,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed top-k edges like the exact search, comparing each query with the members of the
    ``config.nprobe`` lists whose centroids are nearest to it. Queries are grouped by probed list, so each
    comparison is one BLAS product (queries probing list L) x (members of L)."""
    emb = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(emb)
    k = min(config.top_k, n - 1)
    nlist = max(1, min(int(np.sqrt(n)), n // _TRAIN_PER_LIST))
    centroids = spherical_kmeans(emb, nlist)
    assign = nearest_centroid(emb, centroids)
    order = np.argsort(assign, kind="stable")
    bounds = np.searchsorted(assign[order], np.arange(nlist + 1))
    members = [order[bounds[c] : bounds[c + 1]] for c in range(nlist)]
    probe = min(config.nprobe, nlist)
    out_i, out_j, out_s = [], [], []
    for qs in range(0, n, query_chunk):
        queries = np.arange(qs, min(n, qs + query_chunk))
        sims = emb[queries] @ centroids.T
        probes = np.argpartition(-sims, probe - 1, axis=1)[:, :probe] if probe < nlist else np.broadcast_to(np.arange(nlist), sims.shape)
        flat_list, flat_q = probes.ravel(), np.repeat(queries, probe)
        by_list = np.argsort(flat_list, kind="stable")
        cuts = np.searchsorted(flat_list[by_list], np.arange(nlist + 1))
        rows, cols, scores = [], [], []
        for c in range(nlist):
            q_idx = flat_q[by_list[cuts[c] : cuts[c + 1]]]
            if not len(q_idx) or not len(members[c]):
                continue
            r, col, sc = chunk_hits(emb[q_idx] @ emb[members[c]].T, q_idx, members[c], groups, keys, config.min_cosine,
                                     config.scope, k)
            rows.append(q_idx[r])
            cols.append(col)
            scores.append(sc)
        if rows:
            r, col, sc = np.concatenate(rows), np.concatenate(cols), np.concatenate(scores)
            keep = top_k_per_row(r, col, sc, k)
            out_i.append(r[keep])
            out_j.append(col[keep])
            out_s.append(sc[keep])
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return (np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64),
            np.concatenate(out_s).astype(np.float32))
