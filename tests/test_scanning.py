"""The scan pipeline in-process, with the lexical 'hashing' embedder (fast, deterministic) and the real
shipped cross-encoder. Thresholds 0 and 1 make assertions independent of how the model scores a pair."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from conftest import write

from scanner.errors import ConfigError, InputError
from scanner.scanning import ScanConfig, run_scan, scan

SOURCE = (
    "The river rises in the northern hills and flows south to the sea. Its valley has been farmed for three "
    "thousand years.\n\nA stone bridge crosses the river near the old mill. Nobody knows who built it."
)
COPY = (
    "Some background first. A stone bridge crosses the river near the old mill.\n\n"
    "The river rises in the northern hills and flows south towards the sea. Short one."
)


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "docs"
    write(root / "source.txt", SOURCE)
    write(root / "copy.md", COPY)
    write(root / "notes.txt", "The stone bridge crosses the river near the old mill.\n\nTHE STONE BRIDGE  CROSSES THE RIVER NEAR THE OLD MILL.")
    write(root / "broken.txt", b"\x89PNG\r\n\x1a\n\x00\x00")
    return root


def run(corpus, local_engine, out=None, **options):
    options.setdefault("embedder", "hashing")
    options.setdefault("min_cosine", 0.3)
    return run_scan([corpus], ScanConfig.from_options(**options), out, engine=local_engine)


def rows(result):
    return result.pairs.to_pylist()


def test_exact_copy_found_with_offsets(corpus, local_engine):
    result = run(corpus, local_engine, threshold=1.0)
    exact = [r for r in rows(result) if r["match"] == "exact"]
    assert {(r["doc_a"], r["doc_b"]) for r in exact} == {("copy.md", "source.txt")}
    r = exact[0]
    assert r["score"] == 1.0 and r["cosine"] == pytest.approx(1.0, abs=1e-5)
    for side in "ab":
        text = (corpus / r[f"doc_{side}"]).read_text()
        assert text[r[f"start_{side}"] : r[f"end_{side}"]] == r[f"text_{side}"]


def test_threshold_decides_paraphrase_and_rejected(corpus, local_engine):
    none = run(corpus, local_engine, threshold=1.0, keep_rejected=True)
    kinds = {r["match"] for r in rows(none)}
    # at threshold 1.0 only near-copies are flagged, by the near-copy rule whatever their score
    assert "rejected" in kinds
    assert all("near-copy" in r["reason"] for r in rows(none) if r["match"] == "paraphrase")
    everything = run(corpus, local_engine, threshold=0.0)
    near = [r for r in rows(everything) if r["match"] == "paraphrase"]
    assert any("flows south towards the sea" in r["text_a"] + r["text_b"] for r in near)
    assert all(r["reason"].startswith("cross-encoder") for r in near)
    assert all(0.0 <= r["score"] <= 1.0 for r in rows(everything))
    dropped = run(corpus, local_engine, threshold=1.0)
    assert "rejected" not in {r["match"] for r in rows(dropped)}


def test_scope(corpus, local_engine):
    cross = run(corpus, local_engine, threshold=0.0, scope="cross")
    assert all(r["doc_a"] != r["doc_b"] for r in rows(cross))
    within = run(corpus, local_engine, threshold=0.0, scope="within")
    assert rows(within) and all(r["doc_a"] == r["doc_b"] for r in rows(within))
    assert any(r["doc_a"] == "notes.txt" and r["match"] == "exact" for r in rows(within))  # case-insensitive repeat
    both = run(corpus, local_engine, threshold=0.0, scope="all")
    assert len(both.pairs) >= max(len(cross.pairs), len(within.pairs))


def test_min_words_and_counts(corpus, local_engine):
    result = run(corpus, local_engine, threshold=1.0, min_words=4)
    counts = result.counts
    assert counts["sentences_short"] >= 1  # "Short one."
    assert counts["documents"] == 4 and counts["documents_skipped"] == 1
    assert counts["flagged_pairs"] == len(result.pairs)
    assert counts["pairs_cross_encoded"] <= counts["candidate_pairs"]
    assert result.metadata["segmenter"].startswith("spacy")
    assert set(result.metadata["timings"]) >= {"read_segment", "embed", "candidates", "verify", "total"}


def test_documents_table(corpus, local_engine):
    docs = {r["doc"]: r for r in run(corpus, local_engine, threshold=1.0).documents.to_pylist()}
    assert docs["broken.txt"]["status"] == "skipped" and "PNG" in docs["broken.txt"]["reason"]
    assert docs["source.txt"]["status"] == "scanned" and docs["source.txt"]["encoding"] == "utf-8"
    assert docs["source.txt"]["sentences"] == 4
    assert docs["source.txt"]["flagged_sentences"] == 1
    assert docs["source.txt"]["flagged_share"] == pytest.approx(0.25)


def test_same_input_same_report(corpus, local_engine, tmp_path):
    a = run(corpus, local_engine, out=tmp_path / "a.parquet", threshold=0.0)
    b = run(corpus, local_engine, out=tmp_path / "b.parquet", threshold=0.0)
    assert a.pairs.equals(b.pairs)
    assert pq.read_table(tmp_path / "a.parquet").drop_columns([]).equals(pq.read_table(tmp_path / "b.parquet"))


def test_no_scannable_documents(tmp_path, local_engine):
    write(tmp_path / "a.txt", "")
    with pytest.raises(InputError, match="could be scanned"):
        run(tmp_path, local_engine)
    with pytest.raises(InputError, match="no files found"):
        run(tmp_path, local_engine, exclude=["*"])


def test_python_api_writes_and_returns_table(corpus, tmp_path):
    out = tmp_path / "api.parquet"
    table = scan(corpus, out=out, embedder="hashing", engine="local", threshold=1.0, min_cosine=0.3)
    meta = json.loads(table.schema.metadata[b"scanner"])
    assert meta["counts"]["exact_pairs"] == 1
    assert pq.read_table(out).num_rows == table.num_rows
    assert (tmp_path / "api.docs.parquet").exists()


def test_options_map_to_stages():
    config = ScanConfig.from_options(device="cpu", batch_size=8, embedder="hashing", cross_encoder="/m", top_k=2,
                                     include=["*.txt"], max_file_size=10, keep_rejected=True)
    assert config.embed.device == config.verify.device == "cpu"
    assert config.embed.batch_size == config.verify.batch_size == 8
    assert (config.embed.model, config.verify.model, config.candidates.top_k) == ("hashing", "/m", 2)
    assert config.ingest.include == ("*.txt",) and config.ingest.max_bytes == 10 and config.keep_rejected
    with pytest.raises(ConfigError, match="unknown scan option"):
        ScanConfig.from_options(colour="blue")
    with pytest.raises(ConfigError, match="threshold"):
        ScanConfig.from_options(threshold=2.0)


def test_reason_notes_numbers_that_differ_and_swaps(tmp_path, local_engine):
    root = tmp_path / "docs"
    write(root / "a.txt", "The bridge was built in 1850 by the town council of Millford. "
                          "The mill next to it still grinds flour every single week. "
                          "Ferries sail from Dover to Calais early every morning.")
    write(root / "b.txt", "The bridge was built in 1852 by the town council of Millford. "
                          "The mill next to it still grinds flour every week. "
                          "Ferries sail from Calais to Dover early every morning.")
    result = run(root, local_engine, threshold=0.0, keep_rejected=True)
    got = {r["text_a"][:10]: r for r in rows(result)}
    assert got["The bridge"]["reason"].endswith("; numbers differ: 1850 vs 1852")
    assert got["The mill n"]["match"] == "paraphrase"
    assert "numbers differ" not in got["The mill n"]["reason"] and "swap" not in got["The mill n"]["reason"]
    # every score reaches threshold 0, but the swap rule rejects the ferries, and says why
    ferries = got["Ferries sa"]
    assert ferries["match"] == "rejected" and "rejected by the swap rule" in ferries["reason"]
    assert ferries["reason"].endswith(" swap places") and "'calais'" in ferries["reason"]
    assert result.metadata["cross_encoder"]["swap_rule"] is True
    without = {r["text_a"][:10]: r for r in rows(run(root, local_engine, threshold=0.0, swap_rule=False))}
    assert without["Ferries sa"]["match"] == "paraphrase"
    assert without["Ferries sa"]["reason"].startswith("cross-encoder ") and ">= threshold 0.000;" in without["Ferries sa"]["reason"]
