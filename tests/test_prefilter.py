"""The static pre-filter: its math on small arrays, and the table distilled from the real packaged MiniLM."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from scanner import prefilter as prefilter_module
from scanner.candidates import CandidateConfig, neighbour_pairs, text_key
from scanner.errors import ConfigError, ModelLoadError
from scanner.prefilter import (
    STATIC_DIMS,
    StaticEmbedder,
    centre,
    idf_weights,
    kept_share_estimate,
    mean_vectors,
    pca,
    prefilter,
)


def test_pca_keeps_the_largest_variance_first_with_fixed_signs():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(200, 6)) * np.array([10, 5, 3, 1, 0.5, 0.1])
    out = pca(data, 3)
    assert out.shape == (200, 3) and out.dtype == np.float32
    variances = out.var(axis=0)
    assert variances[0] > variances[1] > variances[2]
    assert np.allclose(out.mean(axis=0), 0, atol=1e-4)
    flipped = pca(-data, 3)  # the same axes up to sign: the sign rule gives the same projection of -data
    assert np.allclose(np.abs(flipped), np.abs(out), atol=1e-4)
    assert np.allclose(pca(data, 3), out)


def test_idf_weighs_common_tokens_less():
    ids = [np.array([1, 2]), np.array([1, 3]), np.array([1, 1, 4])]
    w = idf_weights(ids, 6)
    assert w[1] < w[2] == w[3] == w[4] < w[5]  # 1 in every sentence; 5 in none
    assert w[1] == pytest.approx(np.log(4 / 4) + 1)


def test_mean_vectors_are_weighted_unit_means():
    table = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    weights = np.array([1.0, 3.0, 1.0], dtype=np.float32)
    out = mean_vectors([np.array([0, 1]), np.array([], dtype=np.int64), np.array([2, 2])], table, weights)
    expected = np.array([1, 3]) / np.linalg.norm([1, 3])
    assert np.allclose(out[0], expected)
    assert np.all(out[1] == 0)  # no tokens: matches nothing
    assert np.allclose(out[2], np.array([1, 1]) / np.sqrt(2))


def test_centre_removes_the_common_direction():
    vecs = np.array([[1, 0.1], [1, -0.1], [1, 0.0]], dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    out = centre(vecs)
    assert np.allclose(np.linalg.norm(out[:2], axis=1), 1)
    assert out[0] @ out[1] < vecs[0] @ vecs[1]  # nearly parallel before, opposite after


@pytest.fixture(scope="module")
def static_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("static-cache")


@pytest.fixture(scope="module")
def embedder(static_cache: Path) -> StaticEmbedder:
    from scanner.embed import packaged_minilm_path

    return StaticEmbedder.load(packaged_minilm_path(), static_cache, "test")


def test_table_is_distilled_once_and_cached(embedder: StaticEmbedder, static_cache: Path):
    from scanner.embed import packaged_minilm_path

    files = list(static_cache.rglob("table.npy"))
    assert len(files) == 1
    assert embedder.table.shape == (30522, STATIC_DIMS)
    before = files[0].stat().st_mtime_ns
    again = StaticEmbedder.load(packaged_minilm_path(), static_cache, "test")
    assert files[0].stat().st_mtime_ns == before
    assert np.allclose(again.table, embedder.table)


def test_static_vectors_rank_a_paraphrase_above_unrelated_text(embedder: StaticEmbedder):
    vecs = embedder.embed([
        "The committee approved the new budget for the city library on Tuesday.",
        "On Tuesday the committee approved the city library's new budget.",
        "Penguins huddle together to survive the Antarctic winter.",
        "Volcanic ash can ground aircraft for several days.",
    ])
    sims = vecs @ vecs.T
    assert sims[0, 1] > 0.6
    assert sims[0, 1] > sims[0, 2] + 0.3 and sims[0, 1] > sims[0, 3] + 0.3


def test_prefilter_keeps_sentences_with_a_match_and_their_copies(embedder: StaticEmbedder, monkeypatch):
    texts = [
        "The committee approved the new budget for the city library on Tuesday.",  # doc 0
        "Penguins huddle together to survive the Antarctic winter.",               # doc 0
        "On Tuesday the committee approved the city library's new budget.",       # doc 1: paraphrase of 0
        "Volcanic ash can ground aircraft for several days.",                      # doc 1
        "Penguins huddle together to survive the Antarctic winter.",               # doc 2: copy of 1
        "A chess clock measures the time each player takes.",                      # doc 2
    ]
    groups = np.array([0, 0, 1, 1, 2, 2])
    keys = np.array([text_key(t) for t in texts], dtype=np.int64)
    active = np.ones(len(texts), dtype=bool)
    kept, estimate = prefilter(embedder, texts, groups, keys, active, CandidateConfig(prefilter_min_cosine=0.48))
    assert kept.tolist() == [True, False, True, False, False, False]  # the copy is settled by hashing
    assert estimate is None  # too few rows to be worth estimating first
    # within documents, the paraphrase pair is out of scope
    within, _ = prefilter(embedder, texts, groups, keys, active, CandidateConfig(scope="within", prefilter_min_cosine=0.48))
    assert not within[0] and not within[2]
    # auto estimates the kept share first (here on every row: 2 of 6) and skips when it is above the limit
    monkeypatch.setattr(prefilter_module, "ESTIMATE_SAMPLE", 3)
    kept, estimate = prefilter(embedder, texts, groups, keys, active, CandidateConfig(prefilter_max_kept=0.5))
    assert estimate == pytest.approx(2 / 6) and kept.tolist() == [True, False, True, False, False, False]
    kept, estimate = prefilter(embedder, texts, groups, keys, active, CandidateConfig(prefilter_max_kept=0.3))
    assert estimate == pytest.approx(2 / 6) and kept.all()
    kept, estimate = prefilter(embedder, texts, groups, keys, active, CandidateConfig(prefilter="on", prefilter_max_kept=0.3))
    assert estimate is None and kept.sum() == 2  # "on" always filters
    # inactive rows are never kept; a floor of -1 keeps every active row
    active[5] = False
    everything, _ = prefilter(embedder, texts, groups, keys, active, CandidateConfig(prefilter_min_cosine=-1.0))
    assert everything.tolist() == [True, True, True, True, True, False]


def test_the_sampled_estimate_matches_the_exact_share_and_the_ivf_search():
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(3000, 16)).astype(np.float32)
    vecs[1::2] = vecs[::2] + 0.6 * rng.normal(size=(1500, 16))  # a near neighbour for most rows
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    groups, keys, rows = np.arange(3000) % 301, np.arange(3000, dtype=np.int64), np.arange(3000)
    config = CandidateConfig(prefilter_min_cosine=0.8)
    full = kept_share_estimate(vecs, rows, groups, keys, config, sample=3000)
    sampled = kept_share_estimate(vecs, rows, groups, keys, config)
    assert 0.2 < full < 0.9 and abs(sampled - full) < 0.04
    search = dataclasses.replace(config, top_k=1, min_cosine=0.8)
    i, j, _ = neighbour_pairs(vecs, groups, search, keys=keys)
    assert len(set(i) | set(j)) / 3000 == pytest.approx(full)
    ivf = neighbour_pairs(vecs, groups, dataclasses.replace(search, search="ivf"), keys=keys)
    assert len(set(ivf[0]) | set(ivf[1])) >= 0.98 * len(set(i) | set(j))


def test_prefilter_options_are_checked():
    assert CandidateConfig().uses_prefilter(5000) and not CandidateConfig().uses_prefilter(4999)
    assert CandidateConfig(prefilter="on").uses_prefilter(2)
    assert not CandidateConfig(prefilter="off").uses_prefilter(10**6)
    with pytest.raises(ConfigError, match="--prefilter must be"):
        CandidateConfig(prefilter="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--prefilter-min-cosine"):
        CandidateConfig(prefilter_min_cosine=1.5)


def test_an_embedder_without_a_fast_tokenizer_is_reported(tmp_path: Path):
    with pytest.raises(ModelLoadError, match="--prefilter off"):
        StaticEmbedder.load(str(tmp_path), None, "x")


def flagged(result) -> set[tuple]:
    return {(r["doc_a"], r["index_a"], r["doc_b"], r["index_b"]) for r in result.pairs.to_pylist()
            if r["match"] != "rejected"}


def test_a_prefiltered_scan_flags_the_same_pairs_on_the_examples(examples_dir, local_engine, tmp_path):
    """The optimisation's correctness on the bundled examples: with the real models, the pre-filter skips
    about half the sentences and the report's flagged pairs are exactly those of the plain scan."""
    from scanner.scanning import ScanConfig, run_scan

    def scan(**options):
        config = ScanConfig.from_options(cache_dir=str(tmp_path / "cache"), **options)
        return run_scan([examples_dir], config, engine=local_engine)

    plain, filtered = scan(prefilter="off"), scan(prefilter="auto", prefilter_min_rows=10)
    assert flagged(filtered) == flagged(plain) and len(flagged(plain)) >= 8
    counts = filtered.counts
    assert filtered.metadata["prefilter"] and not plain.metadata["prefilter"]
    assert counts["sentences_embedded"] + counts["sentences_prefiltered_out"] >= counts["distinct_sentences"]
    assert counts["sentences_embedded"] < 0.7 * plain.counts["sentences_embedded"]
    assert plain.counts["sentences_prefiltered_out"] == 0
    assert list((tmp_path / "cache" / "static").rglob("table.npy"))  # distilled into the scan's cache folder
    # below prefilter_min_rows (the default 5,000) auto leaves it off; a lexical embedder never uses it
    assert not scan().metadata["prefilter"]
    assert not scan(prefilter="auto", prefilter_min_rows=10, embedder="hashing").metadata["prefilter"]
    with pytest.raises(ConfigError, match="needs a transformer embedder"):
        scan(prefilter="on", embedder="hashing")


def test_a_sentence_is_kept_by_its_own_best_match_whatever_the_mutual_band():
    # a's best static match is b (0.6), but b's best is c (0.65): below the band's 0.7 the pair a/b is not mutual,
    # and the pre-filter must still keep a (it decides what gets embedded, not what gets verified)
    class Fixed:
        table = np.zeros((1, 3), dtype=np.float32)

        def embed(self, texts):
            vectors = {"a": (1, 0, 0), "b": (0.6, 0.8, 0), "c": (0, 0.8125, 0.583), "d": (0, 0, -1)}
            out = np.array([vectors[t] for t in texts], dtype=np.float32)
            return out / np.linalg.norm(out, axis=1, keepdims=True)

    texts = ["a", "b", "c", "d"]
    keys = np.array([text_key(t) for t in texts], dtype=np.int64)
    config = CandidateConfig(prefilter="on", prefilter_min_cosine=0.48, band_cosine=0.7, band_mutual=True)
    kept, _ = prefilter(Fixed(), texts, np.arange(4), keys, np.ones(4, dtype=bool), config)
    assert kept.tolist() == [True, True, True, False]
