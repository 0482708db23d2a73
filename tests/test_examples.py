"""End to end: the CLI on examples/docs with the real models finds every planted copy and paraphrase, and
flags none of the word-swap traps (examples/expected.json)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import REPO

from scanner.cli import cli

EXPECTED = json.loads((REPO / "examples" / "expected.json").read_text())


def pair_key(a, b):
    return frozenset([tuple(a), tuple(b)])


@pytest.fixture(scope="module")
def report(tmp_path_factory, examples_dir):
    out = tmp_path_factory.mktemp("examples") / "report.parquet"
    result = CliRunner().invoke(cli, [str(examples_dir), "--out", str(out), "--keep-rejected"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = pq.read_table(out).to_pylist()
    return {pair_key((r["doc_a"], r["text_a"]), (r["doc_b"], r["text_b"])): r for r in rows}, result.output


@pytest.mark.parametrize("case", EXPECTED["must_flag"], ids=lambda c: c["b"][1][:40])
def test_planted_reuse_is_flagged(report, case):
    rows, _ = report
    row = rows.get(pair_key(case["a"], case["b"]))
    assert row is not None, "pair was not even a candidate"
    assert row["match"] == case["match"], row["reason"]


@pytest.mark.parametrize("case", EXPECTED["must_not_flag"], ids=lambda c: c["b"][1][:40])
def test_word_swaps_are_not_flagged(report, case):
    rows, _ = report
    row = rows.get(pair_key(case["a"], case["b"]))
    assert row is None or row["match"] == "rejected", row["reason"]


def test_nothing_else_is_flagged(report):
    rows, output = report
    planted = {pair_key(c["a"], c["b"]) for c in EXPECTED["must_flag"]}
    extra = [k for k, r in rows.items() if r["match"] != "rejected" and k not in planted]
    assert not extra, extra
    assert "Documents: 6 scanned, 0 skipped" in output
