"""Redundancy removal: the planted summary (repeats to remove, word swaps to keep), the greedy grouping, the
text layout, and the ``scan dedupe`` command."""

from __future__ import annotations

import pyarrow as pa
import pytest
from click.testing import CliRunner
from conftest import write

from scanner.cli import cli
from scanner.redundancy import DedupeResult, Group, Removed, _groups, dedupe
from scanner.schema import PAIRS, conform

#: (sentence, whether a correct model removes it) in reading order; paragraphs after sentences 2 and 6
SUMMARY = [
    ("Worker bees communicate the location of flowers through a waggle dance performed on the comb.", False),
    ("The queen is the only female in the hive that lays eggs, and she may lay two thousand of them in a single day.", False),
    ("When magma reaches the surface it is called lava, and it can flow for many kilometres before it cools.", False),
    # a paraphrase of sentence 1
    ("The queen, who is the only female in the hive that lays eggs, can lay two thousand of them in one day.", True),
    # word swaps of sentences 0 and 2: same words, another meaning; they stay
    ("Worker bees communicate the location of the comb through a waggle dance performed on flowers.", False),
    ("When lava reaches the surface it is called magma, and it can flow for many kilometres before it cools.", False),
    # a verbatim repeat of sentence 0
    ("Worker bees communicate the location of flowers through a waggle dance performed on the comb.", True),
    ("Rising sea temperatures have caused repeated mass bleaching of the reef's corals.", False),
    # a paraphrase of sentence 7
    ("The reef's corals have suffered repeated mass bleaching because of rising sea temperatures.", True),
    ("The angle of the dance tells the other bees the direction of the food relative to the sun.", False),
    # a word swap of sentence 9
    ("The angle of the dance tells the other bees the direction of the sun relative to the food.", False),
    ("The council closed the old bridge in May.", False),
    ("Traffic now crosses the river on the ferry further north.", False),
    # sentence 11 in the passive voice, the time fronted
    ("In May, the old bridge was closed by the council.", True),
]
PARAGRAPH_AFTER = {2, 6, 10}
#: sentences the shipped model decides wrongly: strict xfails, so a better model shows up as passes to update
MODEL_MISSES: set[int] = set()


def _text(keep=lambda i: True) -> str:
    """The summary with only the kept sentences; a paragraph break after a removed sentence stays (the layout is
    kept, only sentences go)."""
    out = ""
    for i, (sentence, _) in enumerate(SUMMARY):
        if keep(i):
            out += sentence + " "
        if i in PARAGRAPH_AFTER:
            out = out.rstrip(" ") + "\n\n"
    return out.rstrip() + "\n"


@pytest.fixture(scope="module")
def result(local_engine):
    return dedupe(_text(), engine=local_engine)


def _cases():
    for i, (sentence, removed) in enumerate(SUMMARY):
        marks = [pytest.mark.xfail(strict=True, reason="the shipped model decides this wrongly")] \
            if i in MODEL_MISSES else []
        yield pytest.param(i, removed, marks=marks, id=f"{i}-{'remove' if removed else 'keep'}-{sentence[:30]}")


@pytest.mark.parametrize("index,removed", list(_cases()))
def test_planted_summary(result, index, removed):
    assert result.sentences[index] == SUMMARY[index][0]
    assert (index in result.removed_indices) == removed


def test_verbatim_repeat_is_removed_into_the_first_sentence_group(result):
    group = next(g for g in result.groups if g.index == 0)
    assert [(r.index, r.match, r.score) for r in group.removed] == [(6, "exact", 1.0)]


def test_cleaned_text_is_the_summary_without_its_repeats(result):
    assert result.text == _text(keep=lambda i: not SUMMARY[i][1])


def test_a_list_of_sentences_gives_the_kept_list(local_engine):
    sentences = ["Bees make honey from the nectar of flowers.", "The hive is kept warm in winter by the bees.",
                 "Bees make honey from the nectar of flowers."]
    got = dedupe(sentences, engine=local_engine)
    assert got.kept == sentences[:2]
    assert got.text == " ".join(sentences[:2])


def _pairs(edges):
    rows = [{"doc_a": "text", "index_a": i, "start_a": 0, "end_a": 1, "text_a": "x", "doc_b": "text", "index_b": j,
             "start_b": 0, "end_b": 1, "text_b": "y", "cosine": 0.9, "score": s, "match": m, "reason": "t"}
            for i, j, s, m in edges]
    return conform(pa.Table.from_pylist(rows), PAIRS, "pairs")


def test_grouping_keeps_the_first_and_never_removes_along_a_chain():
    texts = ["A", "B", "C", "D", "E"]
    # A~B, B~C (but not A~C): B goes with A, C stays; D~E rejected: both stay; E~A: E goes with A
    groups = _groups(texts, _pairs([(0, 1, 0.9, "paraphrase"), (1, 2, 0.95, "paraphrase"),
                                    (3, 4, 0.3, "rejected"), (0, 4, 1.0, "exact")]))
    assert [(g.index, [r.index for r in g.removed]) for g in groups] == [(0, [1, 4])]


def test_removal_keeps_the_layout():
    source = "One a. Two b.\nThree c.\nOne a.\nFour d. One a.\n\nFive e."
    spans = [(0, 6), (7, 13), (14, 22), (23, 29), (30, 37), (38, 44), (46, 53)]
    removed = (Removed(3, "One a.", 1.0, "exact"), Removed(5, "One a.", 1.0, "exact"))
    got = DedupeResult(sentences=[source[s:e] for s, e in spans], kept=[], groups=[Group(0, "One a.", removed)],
                       threshold=0.5, spans=spans, source=source)
    assert got.text == "One a. Two b.\nThree c.\nFour d.\n\nFive e."
    assert "".join(p for p, _ in got.pieces()) == source  # nothing is lost from the marked-up view


FAST = ["--embedder", "hashing", "--threshold", "1.0"]


def test_dedupe_command_prints_the_cleaned_text(tmp_path):
    path = write(tmp_path / "notes.txt", "Bees make honey from nectar. The hive stays warm in winter.\n"
                                         "Bees make honey from nectar.\n")
    result = CliRunner().invoke(cli, ["dedupe", str(path), *FAST], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout == "Bees make honey from nectar. The hive stays warm in winter.\n"
    assert "Removed 1 of 3 sentences (1 exact, 0 paraphrase)" in result.stderr


def test_dedupe_command_reads_stdin_and_shows_why(tmp_path):
    text = "Bees make honey from nectar. The hive stays warm in winter. Bees make honey from nectar."
    result = CliRunner().invoke(cli, ["dedupe", "-", "--show", *FAST], input=text, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert 'The hive stays warm in winter. [REMOVED exact 1.00 of sentence 1 "Bees make honey from nectar.": ' \
           'Bees make honey from nectar.]' in result.stdout


def test_dedupe_command_missing_file_is_an_input_error(tmp_path):
    result = CliRunner().invoke(cli, ["dedupe", str(tmp_path / "nope.txt")])
    assert result.exit_code == 3 and "No such file" in result.output
