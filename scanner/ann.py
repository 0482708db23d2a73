"""Approximate neighbour search for large collections: a FAISS inverted-file index over unit vectors.

Exact search costs n x n dot products: at a million 384-d vectors that is about 8e14 FLOPs, hours on two
cores. An inverted-file index (IVF) clusters the vectors into ``nlist`` lists and compares each query only
with the vectors of its ``nprobe`` nearest lists, so the cost grows about linearly with n, and memory is the
vectors themselves plus a small table of centroids (float32: 1.5 GB per million 384-d vectors).

Approximate: a true neighbour in a list that was not probed is missed. ``pipelines.benchmark --search-only``
measures the recall against exact search. Needs the ``faiss`` extra (``pip install faiss-cpu``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from scanner.errors import ConfigError

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
    from scanner.candidates import _scope_ok

    emb = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(emb)
    if config.faiss_threads:
        import_faiss().omp_set_num_threads(config.faiss_threads)
    index = build_index(emb)
    index.nprobe = min(config.faiss_nprobe, index.nlist)
    ask = min(n, 3 * config.top_k + 1)
    out_i, out_j, out_s = [], [], []
    for start in range(0, n, _QUERY_CHUNK):
        stop = min(n, start + _QUERY_CHUNK)
        scores, found = index.search(emb[start:stop], ask)
        q = np.arange(start, stop)[:, None]
        safe = np.where(found < 0, 0, found)
        ok = (found >= 0) & (found != q) & (scores >= config.min_cosine)
        ok &= _scope_ok(groups[q], groups[safe], config.scope)
        if keys is not None:
            ok &= keys[q] != keys[safe]
        # keep the first top_k passing columns of each row (results come best first)
        ok &= np.cumsum(ok, axis=1) <= config.top_k
        out_i.append(np.broadcast_to(q, found.shape)[ok])
        out_j.append(found[ok])
        out_s.append(scores[ok])
    return (np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64),
            np.concatenate(out_s).astype(np.float32))
