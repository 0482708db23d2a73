from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.candidates import CandidateConfig, exact_pairs, neighbour_pairs, normalise, select_pairs, text_key
from scanner.errors import ConfigError


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def oracle(emb, groups, config, keys=None):
    """Brute force: full n x n matrix, per-row top-k among allowed rows (below the band cosine only the first
    ``band_top_k`` of them, and with ``band_mutual`` only where each row is among the other's first), union, i < j."""
    sims = emb @ emb.T
    n = len(emb)
    tops = []
    for i in range(n):
        allowed = [j for j in range(n) if j != i and (
            (config.scope == "cross" and groups[i] != groups[j]) or (config.scope == "within" and groups[i] == groups[j])
            or config.scope == "all") and (keys is None or keys[i] != keys[j])]
        tops.append(sorted(allowed, key=lambda j: (-sims[i, j], j))[: config.top_k])

    def in_band(i, j):
        return j in tops[i][: config.band_top_k]

    pairs = {}
    for i in range(n):
        for j in tops[i]:
            if sims[i, j] >= config.min_cosine and (sims[i, j] >= config.band_cosine or (
                    in_band(i, j) and (not config.band_mutual or in_band(j, i)))):
                pairs[(min(i, j), max(i, j))] = sims[i, j]
    return pairs


@pytest.mark.parametrize("scope", ["cross", "within", "all"])
@pytest.mark.parametrize("query_chunk,corpus_chunk", [(1, 1), (3, 7), (5, 2), (64, 64), (1000, 1000)])
@pytest.mark.parametrize("band", [(0.1, 1, True), (0.4, 1, True), (0.4, 2, True), (0.4, 1, False), (0.4, 2, False)])
def test_chunked_search_equals_brute_force(scope, query_chunk, corpus_chunk, band):
    rng = np.random.default_rng(7)
    emb = unit(rng, 41, 8)
    groups = rng.integers(0, 4, size=41)
    config = CandidateConfig(top_k=3, min_cosine=0.1, scope=scope, query_chunk=query_chunk, corpus_chunk=corpus_chunk,
                             band_cosine=band[0], band_top_k=band[1], band_mutual=band[2])
    i, j, cos = neighbour_pairs(emb, groups, config)
    got = {(a, b): c for a, b, c in zip(i.tolist(), j.tolist(), cos.tolist(), strict=True)}
    want = oracle(emb, groups, config)
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-5)


def test_equal_keys_and_inactive_rows_are_left_out():
    rng = np.random.default_rng(1)
    emb = unit(rng, 10, 4)
    emb[5] = emb[0]  # identical text: a matter for exact_pairs
    keys = np.arange(10)
    keys[5] = keys[0]
    groups = np.arange(10)
    active = np.ones(10, bool)
    active[3] = False
    config = CandidateConfig(top_k=9, min_cosine=-1.0, band_cosine=-1.0, scope="all")
    i, j, _ = neighbour_pairs(emb, groups, config, keys=keys, active=active)
    pairs = set(zip(i.tolist(), j.tolist(), strict=True))
    assert (0, 5) not in pairs
    assert not any(3 in p for p in pairs)
    assert pairs == {p for p in itertools.combinations(range(10), 2) if 3 not in p and p != (0, 5)}


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 30), st.integers(1, 6), st.floats(-1, 1), st.sampled_from(["cross", "within", "all"]),
       st.integers(1, 9), st.integers(0, 2**16))
def test_pairs_are_unique_ordered_and_bounded(n, k, floor, scope, chunk, seed):
    rng = np.random.default_rng(seed)
    emb = unit(rng, n, 5)
    groups = rng.integers(0, 3, size=n)
    config = CandidateConfig(top_k=k, min_cosine=floor, scope=scope, query_chunk=chunk, corpus_chunk=chunk + 1)
    i, j, cos = neighbour_pairs(emb, groups, config)
    assert np.all(i < j)
    assert len(set(zip(i.tolist(), j.tolist(), strict=True))) == len(i)
    assert np.all(cos >= floor - 1e-6) and np.all(cos <= 1 + 1e-5)
    assert len(i) <= n * k
    if scope == "cross":
        assert np.all(groups[i] != groups[j])
    if scope == "within":
        assert np.all(groups[i] == groups[j])


def test_exact_pairs_by_scope():
    keys = np.array([10, 20, 10, 10, 30, 20])
    groups = np.array([0, 0, 1, 0, 2, 0])
    i, j = exact_pairs(keys, groups, "cross")
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == {(0, 2), (2, 3)}
    i, j = exact_pairs(keys, groups, "within")
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == {(0, 3), (1, 5)}
    i, j = exact_pairs(keys, groups, "all", active=np.array([True, True, True, False, True, True]))
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == {(0, 2), (1, 5)}


def test_normalisation_for_identity():
    assert normalise("  The  Cat\tsat.\n") == "the cat sat."
    assert text_key("The cat sat.") == text_key("the  CAT sat.")
    assert text_key("The cat sat.") != text_key("The cat sat!")
    assert text_key("ﬁne") == text_key("fine")  # NFKC ligature


@pytest.mark.parametrize("kwargs", [{"scope": "nearby"}, {"top_k": 0}, {"min_cosine": 1.5}])
def test_bad_config_is_refused(kwargs):
    with pytest.raises(ConfigError):
        CandidateConfig(**kwargs)


def mutual_oracle(emb, groups, config):
    """Brute force: pairs where each row is among the other's top-k (and above the floor)."""
    directed = set()
    plain = oracle(emb, groups, CandidateConfig(top_k=config.top_k, min_cosine=config.min_cosine,
                                                band_cosine=config.band_cosine, scope=config.scope))
    sims = emb @ emb.T
    n = len(emb)
    for i in range(n):
        allowed = [j for j in range(n) if j != i and _allowed(groups, i, j, config.scope)]
        for j in sorted(allowed, key=lambda j: (-sims[i, j], j))[: config.top_k]:
            directed.add((i, j))
    return {p for p in plain if (p[0], p[1]) in directed and (p[1], p[0]) in directed}


def _allowed(groups, i, j, scope):
    return scope == "all" or (scope == "cross") == (groups[i] != groups[j])


@pytest.mark.parametrize("scope", ["cross", "within", "all"])
@pytest.mark.parametrize("chunks", [(3, 7), (64, 64)])
def test_mutual_top_k_equals_brute_force(scope, chunks):
    rng = np.random.default_rng(11)
    emb = unit(rng, 37, 6)
    groups = rng.integers(0, 4, size=37)
    config = CandidateConfig(top_k=3, min_cosine=0.0, band_cosine=0.0, scope=scope, mutual=True, query_chunk=chunks[0],
                             corpus_chunk=chunks[1])
    i, j, _ = neighbour_pairs(emb, groups, config)
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == mutual_oracle(emb, groups, config)


def test_budget_keeps_the_highest_cosines():
    rng = np.random.default_rng(5)
    emb = unit(rng, 50, 6)
    groups = np.arange(50)
    plain = neighbour_pairs(emb, groups, CandidateConfig(top_k=4, min_cosine=-1.0, band_cosine=-1.0))
    capped = neighbour_pairs(emb, groups, CandidateConfig(top_k=4, min_cosine=-1.0, band_cosine=-1.0, budget=0.5))
    assert len(capped[0]) == 25 < len(plain[0])
    kept = set(zip(capped[0].tolist(), capped[1].tolist(), strict=True))
    assert kept <= set(zip(plain[0].tolist(), plain[1].tolist(), strict=True))
    assert capped[2].min() >= np.sort(plain[2])[::-1][24] - 1e-6  # the 25 best survive
    assert np.all(np.diff(capped[0]) >= 0)  # still sorted by (i, j)
    roomy = neighbour_pairs(emb, groups, CandidateConfig(top_k=4, min_cosine=-1.0, band_cosine=-1.0, budget=100.0))
    assert all(np.array_equal(a, b) for a, b in zip(roomy, plain, strict=True))


def test_select_pairs_dedups_and_requires_both_directions():
    i = np.array([0, 2, 1, 3, 3])
    j = np.array([2, 0, 3, 1, 4])
    cos = np.array([0.9, 0.9, 0.8, 0.8, 0.7], dtype=np.float32)
    lo, hi, _ = select_pairs(i, j, cos, CandidateConfig(), searched=5)
    assert list(zip(lo.tolist(), hi.tolist(), strict=True)) == [(0, 2), (1, 3), (3, 4)]
    lo, hi, _ = select_pairs(i, j, cos, CandidateConfig(mutual=True), searched=5)
    assert list(zip(lo.tolist(), hi.tolist(), strict=True)) == [(0, 2), (1, 3)]


def test_the_low_band_keeps_only_each_sentences_best():
    # 0 -> 1 (0.9) and 0 -> 2 (0.6); 2's own best is 3 (0.65); 4's best is 2 (0.58)
    i = np.array([0, 0, 2, 2, 4])
    j = np.array([1, 2, 3, 0, 2])
    cos = np.array([0.9, 0.6, 0.65, 0.6, 0.58], dtype=np.float32)
    lo, hi, _ = select_pairs(i, j, cos, CandidateConfig(band_mutual=False), searched=5)
    # (0, 2) is nobody's best below 0.7: left out; (2, 3) is 2's best, (2, 4) is 4's best
    assert list(zip(lo.tolist(), hi.tolist(), strict=True)) == [(0, 1), (2, 3), (2, 4)]
    lo, hi, _ = select_pairs(i, j, cos, CandidateConfig(band_top_k=2, band_mutual=False), searched=5)
    assert list(zip(lo.tolist(), hi.tolist(), strict=True)) == [(0, 1), (0, 2), (2, 3), (2, 4)]
    # the mutual band (the default): below 0.7 both sentences must be among each other's best
    lo, hi, _ = select_pairs(i, j, cos, CandidateConfig(), searched=5)
    assert list(zip(lo.tolist(), hi.tolist(), strict=True)) == [(0, 1)]  # 3's and 2's own lists hold no 2, 4
    lo, hi, _ = select_pairs(np.r_[i, 3], np.r_[j, 2], np.r_[cos, 0.65].astype(np.float32), CandidateConfig(), searched=5)
    assert list(zip(lo.tolist(), hi.tolist(), strict=True)) == [(0, 1), (2, 3)]  # 2 and 3: each the other's best
    lo, hi, _ = select_pairs(i, j, cos, CandidateConfig(band_top_k=2), searched=5)
    assert list(zip(lo.tolist(), hi.tolist(), strict=True)) == [(0, 1), (0, 2)]  # 0 and 2: in each other's best 2
    lo, hi, _ = select_pairs(i, j, cos, CandidateConfig(band_cosine=0.55), searched=5)  # at the floor: no band
    assert len(lo) == 4


@pytest.mark.parametrize("kwargs", [{"budget": 0}, {"budget": -1.0}, {"search": "hnsw"}, {"band_top_k": 0},
                                    {"band_top_k": 6}, {"band_cosine": 1.5}])
def test_bad_limits_are_refused(kwargs):
    with pytest.raises(ConfigError):
        CandidateConfig(**kwargs)


@pytest.mark.parametrize("limits", [{"mutual": True}, {"budget": 0.3}, {"mutual": True, "budget": 0.3}])
def test_limited_candidates_flag_the_same_pairs_on_the_examples(examples_dir, local_engine, limits, tmp_path):
    """On the bundled examples at a cosine floor of 0.7 (13 candidates for 46 searched sentences), mutual top-k and
    a budget of 0.3 pairs per sentence lose no flagged pair. A tighter budget would, and so do these at the
    default floor of 0.55, which brings more candidates: a cost bound, not a free lunch."""
    from scanner.scanning import ScanConfig, run_scan

    def flagged(**options):
        result = run_scan([examples_dir], ScanConfig.from_options(cache_dir=str(tmp_path), min_cosine=0.7, **options),
                          engine=local_engine)
        rows = result.pairs.to_pylist()
        return {(r["doc_a"], r["index_a"], r["doc_b"], r["index_b"], r["match"]) for r in rows}, result.counts

    plain, plain_counts = flagged()
    limited, counts = flagged(**limits)
    assert plain and limited == plain
    assert counts["pairs_cross_encoded"] <= plain_counts["pairs_cross_encoded"]

def one_way_oracle(q, c, config, q_keys=None, c_keys=None, c_active=None):
    sims = q @ c.T
    out = {}
    for i in range(len(q)):
        allowed = [j for j in range(len(c)) if (c_active is None or c_active[j]) and (q_keys is None or q_keys[i] != c_keys[j])]
        for j in sorted(allowed, key=lambda j: (-sims[i, j], j))[: config.top_k]:
            if sims[i, j] >= config.min_cosine:
                out[(i, j)] = sims[i, j]
    return out


@pytest.mark.parametrize("query_chunk,corpus_chunk", [(1, 1), (3, 7), (5, 2), (1000, 1000)])
def test_one_way_search_equals_brute_force(query_chunk, corpus_chunk):
    from scanner.candidates import neighbour_pairs_between

    rng = np.random.default_rng(11)
    q, c = unit(rng, 13, 8), unit(rng, 29, 8)
    q_keys, c_keys = rng.integers(0, 40, 13), rng.integers(0, 40, 29)
    c_keys[:3] = q_keys[:3]  # some identical texts: left to exact matching
    active = rng.random(29) > 0.2
    config = CandidateConfig(top_k=3, min_cosine=0.1, query_chunk=query_chunk, corpus_chunk=corpus_chunk)
    i, j, s = neighbour_pairs_between(q, c, config, q_keys, c_keys, active)
    expected = one_way_oracle(q, c, config, q_keys, c_keys, active)
    assert {(a, b): v for a, b, v in zip(i.tolist(), j.tolist(), s.tolist(), strict=True)}.keys() == expected.keys()
    assert np.allclose(s, [expected[(a, b)] for a, b in zip(i.tolist(), j.tolist(), strict=True)], atol=1e-6)
    assert all(np.diff(i) >= 0)


def test_blockwise_one_way_search_merges_to_the_single_search():
    from scanner.candidates import neighbour_pairs_between
    from scanner.topk import top_k_per_query

    rng = np.random.default_rng(5)
    q, c = unit(rng, 17, 6), unit(rng, 50, 6)
    config = CandidateConfig(top_k=4, min_cosine=-1.0)
    whole = neighbour_pairs_between(q, c, config)
    parts = [neighbour_pairs_between(q, c[s : s + 9], config) for s in range(0, 50, 9)]
    merged = top_k_per_query(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] + s for p, s in zip(parts, range(0, 50, 9), strict=True)]),
                             np.concatenate([p[2] for p in parts]), 4)
    assert np.array_equal(merged[0], whole[0]) and np.array_equal(merged[1], whole[1])
    assert np.allclose(merged[2], whole[2])
