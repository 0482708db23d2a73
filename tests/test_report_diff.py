"""Reports compared apart from timings: two runs of the same scan are equal; a changed decision, a changed row
or changed settings are not. And the bundled examples' report equals the recorded one (``tests/golden``), so
a refactoring that changes what is flagged, or how it is explained, fails here."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from conftest import EXAMPLES, FakeScores, write

from pipelines.report_diff import report_differences, stable
from scanner.report import sidecar_path
from scanner.scanning import ScanConfig, run_scan

GOLDEN = Path(__file__).resolve().parent / "golden" / "examples-report.json"
FAST = {"embedder": "hashing", "min_cosine": 0.1, "keep_rejected": True}


def test_volatile_metadata_is_left_out():
    meta = {"timings": {"embed": 1.2}, "wall_seconds": 3, "counts": {"pairs": 2, "embed_seconds": 1},
            "models": [{"path": "/x", "sha": "ab"}]}
    assert stable(meta) == {"counts": {"pairs": 2}, "models": [{"sha": "ab"}]}


def test_two_runs_are_equal_and_a_changed_run_is_not(tmp_path):
    docs = tmp_path / "docs"
    write(docs / "a.txt", "The old mill stood by the river for a century.\n\nBees dance to show the way to food.\n")
    write(docs / "b.txt", "For a century the old mill stood by the river.\n\nBees dance to show where food is.\n")
    runs = {}
    for name, threshold in (("one", 0.5), ("two", 0.5), ("other", 0.9)):
        out = tmp_path / name / "report.parquet"
        out.parent.mkdir()
        run_scan([docs], ScanConfig.from_options(threshold=threshold, **FAST), out, engine=FakeScores())
        runs[name] = out
    assert report_differences(runs["one"], runs["two"]) == []
    problems = report_differences(runs["one"], runs["other"])
    assert any(p.startswith("pairs.match") or p.startswith("pairs.reason") for p in problems), problems
    assert any("metadata" in p for p in problems)
    sidecar_path(runs["two"], "docs").unlink()
    assert "docs: present in only one report" in report_differences(runs["one"], runs["two"])


def rows(path: Path) -> dict[str, list[dict]]:
    docs = pq.read_table(sidecar_path(path, "docs")).to_pylist()
    for row in docs:  # the absolute path depends on where the checkout lies
        row.pop("path")
    return {"pairs": pq.read_table(path).to_pylist(), "docs": docs,
            "pairs_by_doc": pq.read_table(sidecar_path(path, "pairs_by_doc")).to_pylist()}


def same(got, want) -> bool:
    """Equal, with floats equal to 1e-5 (scores can move in the last bits with the machine's BLAS kernels)."""
    if isinstance(want, float) and isinstance(got, float):
        return abs(got - want) <= 1e-5
    if isinstance(want, dict) and isinstance(got, dict):
        return want.keys() == got.keys() and all(same(got[k], want[k]) for k in want)
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(same(g, w) for g, w in zip(got, want, strict=True))
    return got == want


def test_the_examples_report_is_the_recorded_one(tmp_path, local_engine):
    """Regenerate after a deliberate change of behaviour (a new model, a new rule) with
    ``python -m pipelines.report_diff --record-examples``; never to make a refactoring pass."""
    out = tmp_path / "report.parquet"
    run_scan([EXAMPLES], ScanConfig(), out, engine=local_engine)
    recorded = json.loads(GOLDEN.read_text())
    got = rows(out)
    for kind in ("pairs", "docs", "pairs_by_doc"):
        assert same(got[kind], recorded[kind]), kind
