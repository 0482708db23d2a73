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
#: planted cases the shipped model (v2) still decides wrongly: strict xfails, so a better model that gets them
#: right fails these tests until the entry is removed. See the model card and issue #3.
#: The two other swaps it scores above 0.9 (Tambora's years, the sun and the food) are pure span swaps, which the
#: swap rule rejects (scanner.reasons.swap_rule_applies); this one changes "she" to "her", so the rule cannot see it.
MODEL_MISSES: set[str] = {
    "The ship that guided her safely into the harbour was carrying two hundred passengers.",
}


def cases(kind: str) -> list:
    out = []
    for case in EXPECTED[kind]:
        marks = []
        if case["b"][1] in MODEL_MISSES:
            marks.append(pytest.mark.xfail(strict=True, reason="the shipped model (v2) decides this pair wrongly (issue #3)"))
        out.append(pytest.param(case, marks=marks, id=case["b"][1][:40]))
    return out


def pair_key(a, b):
    return frozenset([tuple(a), tuple(b)])


@pytest.fixture(scope="module")
def report(tmp_path_factory, examples_dir):
    out = tmp_path_factory.mktemp("examples") / "report.parquet"
    result = CliRunner().invoke(cli, [str(examples_dir), "--out", str(out), "--keep-rejected"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = pq.read_table(out).to_pylist()
    return {pair_key((r["doc_a"], r["text_a"]), (r["doc_b"], r["text_b"])): r for r in rows}, result.output


@pytest.mark.parametrize("case", cases("must_flag"))
def test_planted_reuse_is_flagged(report, case):
    rows, _ = report
    row = rows.get(pair_key(case["a"], case["b"]))
    assert row is not None, "pair was not even a candidate"
    assert row["match"] == case["match"], row["reason"]


@pytest.mark.parametrize("case", cases("must_not_flag"))
def test_word_swaps_are_not_flagged(report, case):
    rows, _ = report
    row = rows.get(pair_key(case["a"], case["b"]))
    assert row is None or row["match"] == "rejected", row["reason"]


#: the Tambora year swap against the paraphrase of its source (a moved phrase and swapped years together): no
#: longer a pure swap, so the rule does not see it and the decision is the model's, which flags it (0.95)
TAMBORA_SWAP = ("submissions/notes_carla.txt", "In 1816 the eruption of Mount Tambora cooled the climate so much that "
                "1815 became known as the year without a summer.")
TAMBORA_PARAPHRASE = ("submissions/essay_anna.txt", "The eruption of Mount Tambora in 1815 cooled the climate so much "
                      "that 1816 became known as the year without a summer.")
MODEL_WRONG_PAIRS = {pair_key(TAMBORA_SWAP, TAMBORA_PARAPHRASE)}


@pytest.mark.xfail(strict=True, reason="the shipped model (v2) flags this pair (issue #3)")
def test_a_swap_is_not_flagged_against_a_paraphrase_of_its_source(report):
    rows, _ = report
    row = rows.get(pair_key(TAMBORA_SWAP, TAMBORA_PARAPHRASE))
    assert row is None or row["match"] == "rejected", row["reason"]


def test_nothing_else_is_flagged(report):
    rows, output = report
    planted = {pair_key(c["a"], c["b"]) for c in EXPECTED["must_flag"]}
    # a word swap the model misses is also flagged against the other copies of its source sentence
    known_wrong = [k for k in rows if any(text in MODEL_MISSES for _doc, text in k)] + list(MODEL_WRONG_PAIRS)
    extra = [k for k, r in rows.items() if r["match"] != "rejected" and k not in planted and k not in known_wrong]
    assert not extra, extra
    assert "Documents: 6 scanned, 0 skipped" in output
