"""FAISS inverted-file search against exact search: same planted duplicates, same filters."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.bench_search import synthetic_vectors
from scanner.ann import nlist_for
from scanner.candidates import CandidateConfig, neighbour_pairs

pytest.importorskip("faiss")


def as_set(result):
    return set(zip(result[0].tolist(), result[1].tolist(), strict=True))


@pytest.fixture(scope="module")
def data():
    return synthetic_vectors(3000, dim=64, seed=3)


@pytest.mark.parametrize("scope", ["cross", "all"])
def test_faiss_and_exact_agree_on_planted_duplicates(data, scope):
    vectors, groups, planted = data
    exact = as_set(neighbour_pairs(vectors, groups, CandidateConfig(search="exact", scope=scope)))
    approx = as_set(neighbour_pairs(vectors, groups, CandidateConfig(search="faiss", scope=scope, faiss_threads=1)))
    planted_pairs = {(min(a, b), max(a, b)) for a, b in planted.tolist()}
    assert planted_pairs and planted_pairs <= exact
    assert planted_pairs <= approx
    assert approx <= exact | approx and len(approx & exact) >= 0.99 * len(exact)


def test_faiss_respects_scope_keys_and_self(data):
    vectors, groups, planted = data
    keys = np.arange(len(vectors))
    src, dst = planted[0]
    keys[dst] = keys[src]  # identical text: settled by hashing, never a neighbour pair
    config = CandidateConfig(search="faiss", min_cosine=0.2, faiss_threads=1)
    i, j, cos = neighbour_pairs(vectors, groups, config, keys=keys)
    assert len(i) and np.all(i < j) and np.all(groups[i] != groups[j]) and np.all(cos >= 0.2)
    assert (min(src, dst), max(src, dst)) not in set(zip(i.tolist(), j.tolist(), strict=True))
    assert len(set(zip(i.tolist(), j.tolist(), strict=True))) == len(i)


def test_auto_uses_faiss_only_above_the_threshold():
    config = CandidateConfig(faiss_min_rows=1000)
    assert not config.use_faiss(999) and config.use_faiss(1000)
    assert not CandidateConfig(search="exact", faiss_min_rows=10).use_faiss(10**6)
    assert nlist_for(1_000_000) == 4000 and nlist_for(100) == 1
