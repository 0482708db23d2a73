"""The benchmark harness: corpus construction, recall bookkeeping, the search benchmark, and one tiny end to
end run of both sides (real models) through the command."""

from __future__ import annotations

import json

from click.testing import CliRunner

from pipelines.bench_search import search_benchmark
from pipelines.benchmark import main, pair_key, recall
from pipelines.corpus import CorpusConfig, build_corpus


def test_corpus_plants_reuse_across_documents(data_dir):
    config = CorpusConfig(sentences=120, doc_sentences=20, verbatim_share=0.05, paraphrase_share=0.05, swap_share=0.05)
    corpus = build_corpus(config, data_dir)
    assert corpus.sentences == 120 and len(corpus.docs) == 6
    kinds = [p[0] for p in corpus.planted]
    assert kinds.count("paraphrase") == 6 and kinds.count("swap") == 6 and kinds.count("verbatim") == 6
    for _kind, da, ta, db, tb in corpus.planted:
        assert da != db and ta in corpus.docs[da] and tb in corpus.docs[db]
    assert build_corpus(config, data_dir).docs == corpus.docs  # deterministic for a seed


def test_corpus_beyond_the_data_splices_instead_of_repeating(data_dir):
    corpus = build_corpus(CorpusConfig(sentences=400, paraphrase_share=0.0, swap_share=0.0, verbatim_share=0.0), data_dir)
    background = [s for doc in corpus.docs.values() for s in doc]
    assert corpus.background_spliced > 0
    assert len(background) == 400 and len(set(background)) == 400


def test_recall_compares_documents_and_normalised_text():
    ref = [["a.txt", "The cat sat.", "b.txt", "A cat was sitting."], ["a.txt", "x y z w", "c.txt", "x y z w"]]
    found = [["b.txt", "a cat was  sitting.", "a.txt", "the cat sat."]]
    assert pair_key(*ref[0]) == pair_key(*found[0])
    assert recall(found, ref) == 0.5
    assert recall(found, []) is None


def test_search_benchmark_exact_is_its_own_reference():
    result = search_benchmark(1500, search="exact")
    assert result["search"] == "exact" and result["planted_pairs"] > 0
    assert result["recall_vs_exact"] == 1.0 and result["planted_recall"] == 1.0


def test_benchmark_command_end_to_end(data_dir, tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["--sizes", "100", "--repeats", "1", "--data-dir", str(data_dir),
                                       "--out", str(out), "--engine", "local"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    row = json.loads(out.read_text())["results"][0]
    for side in ("naive", "scan"):
        assert row[side]["finished"], row[side]
        assert row[side]["sentences"] > 30 and row[side]["peak_rss_mb"] > 0
        assert row[side]["stages"]["embed"]["tokens"] > 0
        # a broken BLAS, a thread misconfiguration or float16 on a CPU would each fall far below these
        assert row[side]["matmul_gflops"] > 5 and row[side]["dense_gflops"] > 0.25 * row[side]["matmul_gflops"]
    assert row["scan"]["planted_flagged"]["verbatim"] == [1, 1]  # the planted copy, found by hashing
    assert "naive/x" in result.output and "dense" in result.output
    # scan embeds each distinct sentence once (behind the pre-filter): never more tokens than the naive pipeline
    assert row["scan"]["stages"]["embed"]["tokens"] <= row["naive"]["stages"]["embed"]["tokens"]
    # every pair the naive pipeline flags is among scan's candidates; misses are split by cause
    assert row["scan"]["candidate_recall_vs_naive"] in (None, 1.0)
    missed = row["scan"]["missed_vs_naive_counts"]
    assert missed["not_a_candidate"] == 0
    assert sum(missed.values()) == len(row["scan"]["missed_vs_naive"]) and "rejected_by_swap_rule" in missed
    outside = row["scan"]["recall_vs_naive_outside_swap_rule"]
    assert outside is None or row["scan"]["recall_vs_naive"] <= outside <= 1.0
