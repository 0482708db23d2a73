"""Approximate search (numpy IVF and FAISS) against exact search: same planted duplicates, same filters."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.bench_search import synthetic_vectors
from scanner.ann import nlist_for
from scanner.candidates import CandidateConfig, neighbour_pairs


def as_set(result):
    return set(zip(result[0].tolist(), result[1].tolist(), strict=True))


@pytest.fixture(scope="module")
def data():
    return synthetic_vectors(3000, dim=64, seed=3)


@pytest.mark.parametrize("scope", ["cross", "all"])
def test_faiss_and_exact_agree_on_planted_duplicates(data, scope):
    pytest.importorskip("faiss")
    vectors, groups, planted = data
    exact = as_set(neighbour_pairs(vectors, groups, CandidateConfig(search="exact", scope=scope)))
    approx = as_set(neighbour_pairs(vectors, groups, CandidateConfig(search="faiss", scope=scope, faiss_threads=1)))
    planted_pairs = {(min(a, b), max(a, b)) for a, b in planted.tolist()}
    assert planted_pairs and planted_pairs <= exact
    assert planted_pairs <= approx
    # an approximate search finds nearly every exact pair, and rarely puts a lesser neighbour in their place
    assert len(approx & exact) >= 0.99 * len(exact) and len(approx - exact) <= 0.01 * len(exact)


def test_faiss_respects_scope_keys_and_self(data):
    pytest.importorskip("faiss")
    vectors, groups, planted = data
    keys = np.arange(len(vectors))
    src, dst = planted[0]
    keys[dst] = keys[src]  # identical text: settled by hashing, never a neighbour pair
    config = CandidateConfig(search="faiss", min_cosine=0.2, faiss_threads=1)
    i, j, cos = neighbour_pairs(vectors, groups, config, keys=keys)
    assert len(i) and np.all(i < j) and np.all(groups[i] != groups[j]) and np.all(cos >= 0.2)
    assert (min(src, dst), max(src, dst)) not in set(zip(i.tolist(), j.tolist(), strict=True))
    assert len(set(zip(i.tolist(), j.tolist(), strict=True))) == len(i)


def test_auto_is_exact_below_the_threshold_and_ivf_above():
    config = CandidateConfig(ann_min_rows=1000)
    assert config.method(999) == "exact" and config.method(1000) == "ivf"
    assert CandidateConfig(search="exact", ann_min_rows=10).method(10**6) == "exact"
    assert CandidateConfig(search="faiss").method(10) == "faiss"
    assert nlist_for(1_000_000) == 4000 and nlist_for(100) == 1


@pytest.mark.parametrize("scope", ["cross", "within", "all"])
def test_ivf_with_every_list_probed_equals_exact(data, scope):
    vectors, groups, _ = data
    exact = neighbour_pairs(vectors, groups, CandidateConfig(search="exact", scope=scope, min_cosine=0.3))
    ivf = neighbour_pairs(vectors, groups, CandidateConfig(search="ivf", scope=scope, min_cosine=0.3, nprobe=10**6))
    assert as_set(exact) == as_set(ivf) and len(exact[0])


def test_ivf_finds_the_planted_duplicates(data):
    vectors, groups, planted = data
    keys = np.arange(len(vectors))
    # no low band: an approximate search that misses a row's nearest neighbour would promote another into the band
    exact = as_set(neighbour_pairs(vectors, groups, CandidateConfig(search="exact", band_cosine=-1.0), keys=keys))
    ivf = as_set(neighbour_pairs(vectors, groups, CandidateConfig(search="ivf", nprobe=4, band_cosine=-1.0), keys=keys))
    planted_pairs = {(min(a, b), max(a, b)) for a, b in planted.tolist()}
    assert planted_pairs <= exact and planted_pairs <= ivf and ivf <= exact
