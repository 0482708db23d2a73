from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scanner.errors import OutputError
from scanner.report import atomic_write_table, check_writable, read_metadata, sidecar_path, write_report
from scanner.schema import DOCUMENTS, PAIRS, SENTENCES, conform, empty


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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.docs.parquet", "r.parquet"]


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
