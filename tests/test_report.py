from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scanner.errors import OutputError
from scanner.report import (
    atomic_write_table,
    check_writable,
    pairs_by_doc,
    read_metadata,
    sidecar_path,
    write_report,
)
from scanner.schema import DOCUMENTS, PAIRS, PAIRS_BY_DOC, SENTENCES, conform, empty


def test_sidecar_names(tmp_path):
    assert sidecar_path(tmp_path / "report.parquet", "docs").name == "report.docs.parquet"
    assert sidecar_path(tmp_path / "out", "docs").name == "out.docs.parquet"


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    out = tmp_path / "r.parquet"
    out.write_bytes(b"old report")
    write_report(empty(PAIRS), empty(DOCUMENTS), out, {"counts": {"documents": 0}})
    assert pq.read_table(out).schema.names == PAIRS.names
    assert read_metadata(out)["counts"] == {"documents": 0}
    assert read_metadata(sidecar_path(out, "docs"))["counts"] == {"documents": 0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.docs.parquet", "r.pairs_by_doc.parquet", "r.parquet"]
    assert pq.read_table(sidecar_path(out, "pairs_by_doc")).schema.names == PAIRS_BY_DOC.names


def test_invalid_report_writes_nothing(tmp_path):
    out = tmp_path / "r.parquet"
    out.write_bytes(b"old report")
    with pytest.raises(ValueError, match="lacks columns"):
        write_report(pa.table({"x": [1]}), empty(DOCUMENTS), out, {})
    assert out.read_bytes() == b"old report"
    assert [p.name for p in tmp_path.iterdir()] == ["r.parquet"]


def test_atomic_write_cleans_up_on_error(tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", explode)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_table(empty(PAIRS), tmp_path / "r.parquet")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make,match", [
    (lambda p: p / "missing" / "r.parquet", "does not exist"),
    (lambda p: p, "is a folder"),
])
def test_check_writable(tmp_path, make, match):
    with pytest.raises(OutputError, match=match):
        check_writable(make(tmp_path))


def test_unwritable_folder(tmp_path):
    # /proc refuses new files even to root (for whom os.access says yes); a chmod'ed folder stops other users
    with pytest.raises(OutputError, match="cannot write in '/proc'"):
        check_writable("/proc/r.parquet")
    tmp_path.chmod(0o500)
    if os.geteuid() != 0:
        with pytest.raises(OutputError, match="Permission denied"):
            check_writable(tmp_path / "r.parquet")
    assert list(tmp_path.iterdir()) == []  # the probe leaves nothing behind


def test_conform_names_missing_columns():
    with pytest.raises(ValueError, match=r"lacks columns \['index'"):
        conform({"doc": ["a"]}, SENTENCES, "sentences")


def test_report_reads_in_pandas_polars_and_duckdb(tmp_path):
    import duckdb
    import pandas as pd
    import polars as pl

    out = tmp_path / "r.parquet"
    row = {"doc_a": "a.txt", "index_a": 0, "start_a": 0, "end_a": 5, "text_a": "Hello", "doc_b": "b.txt", "index_b": 2,
           "start_b": 10, "end_b": 15, "text_b": "Hello", "cosine": 1.0, "score": 1.0, "match": "exact", "reason": "x"}
    write_report(conform({k: [v] for k, v in row.items()}, PAIRS, "pairs"), empty(DOCUMENTS), out, {"k": 1})
    assert pd.read_parquet(out).iloc[0]["text_b"] == "Hello"
    assert pl.read_parquet(out)["match"].to_list() == ["exact"]
    assert duckdb.sql(f"SELECT doc_b, start_b FROM '{out}'").fetchall() == [("b.txt", 10)]


def _pair(doc_a, index_a, doc_b, index_b, score, match):
    return {"doc_a": doc_a, "index_a": index_a, "start_a": 0, "end_a": 1, "text_a": "x", "doc_b": doc_b,
            "index_b": index_b, "start_b": 0, "end_b": 1, "text_b": "y", "cosine": 0.9, "score": score,
            "match": match, "reason": "test"}


def _docs(sizes):
    return conform({"doc": list(sizes), "path": list(sizes), "status": ["scanned"] * len(sizes),
                    "reason": [None] * len(sizes), "format": ["text"] * len(sizes), "encoding": ["utf-8"] * len(sizes),
                    "bytes": [1] * len(sizes), "sha256": ["0"] * len(sizes), "chars": [1] * len(sizes),
                    "sentences": list(sizes.values()), "flagged_sentences": [0] * len(sizes),
                    "flagged_share": [0.0] * len(sizes)}, DOCUMENTS, "documents")


def test_pairs_by_doc_aggregates_and_ranks():
    pairs = conform(pa.Table.from_pylist([
        _pair("a", 0, "b", 0, 1.0, "exact"),
        _pair("a", 0, "b", 1, 0.8, "paraphrase"),   # sentence a:0 matched twice: counted once
        _pair("a", 2, "b", 3, 0.6, "paraphrase"),
        _pair("a", 5, "b", 5, 0.1, "rejected"),     # rejected rows never count
        _pair("a", 1, "c", 0, 0.9, "paraphrase"),
        _pair("c", 0, "c", 1, 0.7, "paraphrase"),   # a pair inside one document (scope within)
    ]), PAIRS, "pairs")
    table = pairs_by_doc(pairs, _docs({"a": 10, "b": 4, "c": 2}))
    rows = {(r["doc_a"], r["doc_b"]): r for r in table.to_pylist()}
    assert set(rows) == {("a", "b"), ("a", "c"), ("c", "c")}
    ab = rows[("a", "b")]
    assert (ab["flagged_pairs"], ab["sentences_a"], ab["sentences_b"]) == (3, 2, 3)
    assert ab["share_a"] == pytest.approx(0.2) and ab["share_b"] == pytest.approx(0.75)
    assert ab["max_share"] == pytest.approx(0.75)
    assert ab["mean_score"] == pytest.approx((1.0 + 0.8 + 0.6) / 3, rel=1e-6)
    assert ab["max_score"] == pytest.approx(1.0)
    assert (ab["exact_pairs"], ab["paraphrase_pairs"]) == (1, 2)
    cc = rows[("c", "c")]
    assert (cc["sentences_a"], cc["sentences_b"], cc["share_a"]) == (2, 2, 1.0)
    # ranked by the larger share: c-c (100%), then a-b (75%), then a-c (50% of c)
    assert [(r["doc_a"], r["doc_b"]) for r in table.to_pylist()] == [("c", "c"), ("a", "b"), ("a", "c")]
    assert table["rank"].to_pylist() == [1, 2, 3]


def test_pairs_by_doc_of_an_empty_report_is_empty_with_the_schema():
    table = pairs_by_doc(empty(PAIRS), _docs({"a": 3}))
    assert table.num_rows == 0 and table.schema.names == PAIRS_BY_DOC.names


def test_reports_get_the_permissions_of_a_new_file(tmp_path):
    import os
    import stat

    from scanner.report import atomic_write_bytes, atomic_write_table

    old = os.umask(0o027)
    try:
        atomic_write_table(pa.table({"x": [1]}), tmp_path / "r.parquet")
        atomic_write_bytes(b"<html></html>", tmp_path / "r.html")
    finally:
        os.umask(old)
    for name in ("r.parquet", "r.html"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.parquet"]
