"""Scans against a reference index, exclusions and query search. Fast tests use the 'hashing' embedder with
the real shipped cross-encoder; one test runs the real models end to end on the examples."""

from __future__ import annotations

import dataclasses
import itertools

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import write

from scanner.cli import cli
from scanner.errors import ConfigError, IndexError_
from scanner.index import update_index
from scanner.reference import ReferenceConfig, run_against, search
from scanner.scanning import ScanConfig, run_scan

#: top_k above the number of candidates, so per-sentence top-k lists never crowd a pair out: then the one-way
#: search and the full scan must find exactly the same new x reference pairs
WIDE = {"embedder": "hashing", "min_cosine": 0.3, "band_cosine": 0.3, "top_k": 50, "keep_rejected": True}
VOLCANO = "Volcanoes form where molten rock from deep inside the Earth rises to the surface."


def keyed(rows, strip_a="", strip_b=""):
    return {(r["doc_a"].removeprefix(strip_a), r["index_a"], r["doc_b"].removeprefix(strip_b), r["index_b"]): r for r in rows}


def assert_same_pairs(one_way, full):
    assert one_way.keys() == full.keys()
    for key, row in one_way.items():
        assert row["match"] == full[key]["match"], key
        assert row["score"] == pytest.approx(full[key]["score"], abs=1e-4)
        assert row["cosine"] == pytest.approx(full[key]["cosine"], abs=1e-5)
        assert (row["start_a"], row["end_a"], row["text_b"]) == (full[key]["start_a"], full[key]["end_a"], full[key]["text_b"])


def split_full(full_rows):
    ref = [r for r in full_rows if r["doc_a"].startswith("sources/") and r["doc_b"].startswith("submissions/")]
    new = [r for r in full_rows if r["doc_a"].startswith("submissions/") and r["doc_b"].startswith("submissions/")]
    return keyed(ref, "sources/", "submissions/"), keyed(new, "submissions/", "submissions/")


def test_one_way_scan_equals_full_scan_restricted(hashing_index, examples_dir, local_engine):
    config = ScanConfig.from_options(**WIDE)
    full_ref, full_new = split_full(run_scan([examples_dir], config, engine=local_engine).pairs.to_pylist())
    result = run_against([examples_dir / "submissions"], ReferenceConfig(index=str(hashing_index)), config, engine=local_engine)
    rows = result.pairs.to_pylist()
    assert full_ref and full_new
    assert_same_pairs(keyed([r for r in rows if r["origin_a"] == "reference"]), full_ref)
    assert_same_pairs(keyed([r for r in rows if r["origin_a"] == "scanned"]), full_new)
    assert result.counts["reference_sentences"] == 24 and result.counts["documents_scanned"] == 3


def test_scope_against_pairs_only_with_the_index(hashing_index, examples_dir, local_engine, tmp_path):
    config = ScanConfig.from_options(**WIDE)
    out = tmp_path / "r.parquet"
    result = run_against([examples_dir / "submissions"], ReferenceConfig(index=str(hashing_index), compare_scanned=False),
                         config, out, engine=local_engine)
    assert result.pairs.num_rows and set(result.pairs["origin_a"].to_pylist()) == {"reference"}
    written = pq.read_table(out)
    assert "origin_a" in written.column_names and written.num_rows == result.pairs.num_rows
    docs = {d["doc"]: d for d in pq.read_table(tmp_path / "r.docs.parquet").to_pylist()}
    assert set(docs) == {"essay_anna.txt", "essay_ben.md", "notes_carla.txt"}  # scanned documents only
    flagged = {r["doc_b"] for r in result.pairs.to_pylist() if r["match"] != "rejected"}
    assert all(docs[d]["flagged_sentences"] > 0 for d in flagged)
    # the document-pair summary names the indexed side as reference:<doc> and uses its indexed sentence count
    by_doc = pq.read_table(tmp_path / "r.pairs_by_doc.parquet").to_pylist()
    assert by_doc and all(r["doc_a"].startswith("reference:") and r["doc_b"] in docs for r in by_doc)
    assert all(0 < r["share_a"] <= 1 and 0 < r["share_b"] <= 1 for r in by_doc)
    assert by_doc == result.pairs_by_doc.to_pylist()
    with pytest.raises(ConfigError, match="needs --against"):
        ReferenceConfig(compare_scanned=False)


def test_boilerplate_and_exclude_index_are_not_flagged(hashing_index, examples_dir, local_engine, tmp_path):
    config = ScanConfig.from_options(embedder="hashing", threshold=1.0)
    plain = run_against([examples_dir / "submissions"], ReferenceConfig(index=str(hashing_index)), config, engine=local_engine)
    assert VOLCANO in plain.pairs["text_b"].to_pylist()
    prompt = write(tmp_path / "prompt" / "prompt.txt", f"Answer in your own words. {VOLCANO.upper()}")
    boiler_index = tmp_path / "boiler-index"
    update_index([prompt.parent], boiler_index, config)
    for reference in (ReferenceConfig(index=str(hashing_index), boilerplate=(str(prompt),)),
                      ReferenceConfig(index=str(hashing_index), exclude_index=(str(boiler_index),))):
        result = run_against([examples_dir / "submissions"], reference, config, engine=local_engine)
        assert VOLCANO not in result.pairs["text_b"].to_pylist()
        assert result.counts["sentences_boilerplate"] == 1
        assert result.pairs.num_rows == plain.pairs.num_rows - 1


def test_quoted_sentences_are_ignored_on_request(hashing_index, local_engine, tmp_path):
    other = "Most of them sit along the edges of tectonic plates, where one plate slides beneath another."
    write(tmp_path / "new" / "essay.md", f"As the source puts it: \n\n“{VOLCANO}”\n\n{other}\n\n> {other}")
    config = ScanConfig.from_options(embedder="hashing", threshold=0.0)  # every candidate is flagged
    counted = run_against([tmp_path / "new"], ReferenceConfig(index=str(hashing_index)), config, engine=local_engine)
    ignored = run_against([tmp_path / "new"], ReferenceConfig(index=str(hashing_index), ignore_quotes=True), config,
                          engine=local_engine)
    quoted = {f"“{VOLCANO}”", f"> {other}"}
    assert quoted | {other} <= set(counted.pairs["text_b"].to_pylist())
    assert not quoted & set(ignored.pairs["text_b"].to_pylist()) and other in ignored.pairs["text_b"].to_pylist()
    assert ignored.counts["sentences_quoted"] == 2 and counted.counts["sentences_quoted"] == 0


def test_index_of_another_model_is_refused(hashing_index, examples_dir, tmp_path):
    out = tmp_path / "r.parquet"
    with pytest.raises(IndexError_, match="built with embedder 'hashing'"):
        run_against([examples_dir / "submissions"], ReferenceConfig(index=str(hashing_index)), ScanConfig(), out)
    result = CliRunner().invoke(cli, [str(examples_dir / "submissions"), "--against", str(hashing_index), "--out", str(out)])
    assert result.exit_code == 6 and "pass --embedder hashing" in result.output and not out.exists()
    result = CliRunner().invoke(cli, ["search", "anything at all", "--against", str(tmp_path / "none")])
    assert result.exit_code == 6 and "no reference index" in result.output


def test_cli_scan_against(hashing_index, examples_dir, tmp_path):
    out = tmp_path / "r.parquet"
    result = CliRunner().invoke(cli, [str(examples_dir / "submissions"), "--against", str(hashing_index), "--out", str(out),
                                      "--embedder", "hashing", "--engine", "local", "--threshold", "1.0", "--scope", "against"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Flagged: 2 pairs (2 exact, 0 paraphrase)" in result.output
    assert "Reference: index" in result.output and "3 documents, 24 sentences" in result.output
    rows = pq.read_table(out).to_pylist()
    assert {(r["doc_a"], r["doc_b"], r["origin_a"]) for r in rows} == {("volcanoes.txt", "essay_anna.txt", "reference")}


def test_search(hashing_index, local_engine):
    hits = search([VOLCANO.lower(), "Nothing like this sentence is anywhere in the sources."], hashing_index,
                  embedder="hashing", threshold=0.0, min_cosine=0.3, engine=local_engine).to_pylist()
    first = [h for h in hits if h["query"] == VOLCANO.lower()]
    assert first[0]["rank"] == 1 and first[0]["match"] == "exact" and first[0]["text"] == VOLCANO
    assert first[0]["doc"] == "volcanoes.txt" and (first[0]["start"], first[0]["end"]) == (0, 81)
    assert [h["rank"] for h in first] == list(range(1, len(first) + 1))
    assert all(a["score"] >= b["score"] for a, b in itertools.pairwise(first))
    assert not [h for h in hits if h["query"].startswith("Nothing")]


def test_cli_search(hashing_index):
    result = CliRunner().invoke(cli, ["search", VOLCANO, "--against", str(hashing_index), "--embedder", "hashing",
                                      "--engine", "local", "--threshold", "0.9"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "1. [exact     ] score 1.000" in result.output and "volcanoes.txt:0-81" in result.output


def test_real_models_one_way_scan_on_the_examples(examples_dir, tmp_path, local_engine):
    """The packaged MiniLM and the shipped cross-encoder: the one-way scan finds what the full scan finds
    between submissions and sources (no low band: its ranks differ between the two searches), and refuses the
    index when asked to use the hashing embedder."""
    wide = dataclasses.replace(ScanConfig().candidates, top_k=50, band_cosine=ScanConfig().candidates.min_cosine)
    config = dataclasses.replace(ScanConfig(keep_rejected=True), candidates=wide)
    where = tmp_path / "index"
    built = update_index([examples_dir / "sources"], where, config, engine=local_engine)
    assert built.documents == 3 and built.embedded == built.sentences
    full_ref, _ = split_full(run_scan([examples_dir], config, engine=local_engine).pairs.to_pylist())
    result = run_against([examples_dir / "submissions"], ReferenceConfig(index=str(where), compare_scanned=False), config,
                         engine=local_engine)
    one_way = keyed(result.pairs.to_pylist())
    assert_same_pairs(one_way, full_ref)
    exact = {(r["doc_a"], r["text_b"]) for r in one_way.values() if r["match"] == "exact"}
    assert exact == {("volcanoes.txt", VOLCANO), ("volcanoes.txt", "Most of them sit along the edges of tectonic plates, "
                                                   "where one plate slides beneath another.")}
    with pytest.raises(IndexError_):
        run_against([examples_dir / "submissions"], ReferenceConfig(index=str(where)), ScanConfig.from_options(embedder="hashing"))


def test_boilerplate_without_an_index_is_a_plain_scan_minus_the_boilerplate(examples_dir, local_engine, tmp_path):
    config = ScanConfig.from_options(**WIDE)
    prompt = write(tmp_path / "prompt.txt", VOLCANO)
    plain = keyed(run_scan([examples_dir], config, engine=local_engine).pairs.to_pylist())
    result = run_against([examples_dir], ReferenceConfig(boilerplate=(str(prompt),)), config, engine=local_engine)
    without = keyed(result.pairs.to_pylist())
    assert set(result.pairs["origin_a"].to_pylist()) == {"scanned"}
    # the two copies of the boilerplate sentence (source and essay) no longer pair with anything
    assert result.counts["sentences_boilerplate"] == 2
    expected = {k: r for k, r in plain.items() if VOLCANO not in (r["text_a"], r["text_b"])}
    assert_same_pairs(without, expected)
