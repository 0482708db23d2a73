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
#: planted cases the shipped model still decides wrongly: strict xfails, so a better model that gets them right
#: fails these tests until the entry is removed. The lava/magma swap, which the model scores 0.96, is a pure span
#: swap that the swap rule rejects. "she guided" / "guided her" (a role swap through a pronoun's case, not a span
#: swap) scores 0.91 (model card, Limitations); the verifier before it happened to score it 0.25.
MODEL_MISSES: set[str] = {"The ship that guided her safely into the harbour was carrying two hundred passengers."}


def cases(kind: str) -> list:
    out = []
    for case in EXPECTED[kind]:
        marks = []
        if case["b"][1] in MODEL_MISSES:
            marks.append(pytest.mark.xfail(strict=True, reason="the shipped model decides this pair wrongly"))
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


#: pairs on one topic that say different things: both about the waggle dance, at cosine 0.62-0.64. The verifier
#: alone flags them (0.95 and 0.81: model card, Limitations); the low candidate band keeps them from it, since
#: neither is either sentence's nearest neighbour
WAGGLE_RUN = ("submissions/essay_ben.md", "The length of the waggle run tells the other bees how far away the flowers are.")
RELATED_PAIRS = {
    pair_key(("sources/honeybees.md", "Worker bees communicate the location of flowers through a waggle dance performed "
              "on the comb."), WAGGLE_RUN),
    pair_key(WAGGLE_RUN, ("submissions/notes_carla.txt", "Worker bees communicate the location of the comb through a "
                          "waggle dance performed on flowers.")),
}


@pytest.mark.parametrize("key", sorted(RELATED_PAIRS, key=sorted))
def test_related_sentences_that_say_different_things_are_not_flagged(report, key):
    rows, _ = report
    row = rows.get(key)
    assert row is None or row["match"] == "rejected", row["reason"]


def test_nothing_else_is_flagged(report):
    rows, output = report
    planted = {pair_key(c["a"], c["b"]) for c in EXPECTED["must_flag"]}
    # a word swap the model misses is also flagged against the other copies of its source sentence
    known_wrong = [k for k in rows if any(text in MODEL_MISSES for _doc, text in k)]
    extra = [k for k, r in rows.items() if r["match"] != "rejected" and k not in planted and k not in known_wrong]
    assert not extra, extra
    assert "Documents: 6 scanned, 0 skipped" in output
