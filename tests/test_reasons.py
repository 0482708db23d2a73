"""The report's reasons and the notes for reviewers (pure text, no model)."""

from __future__ import annotations

from scanner.reasons import (
    NEAR_COPY,
    SWAP_RULE,
    align_references,
    copy_skeleton,
    cross_references,
    decision_reason,
    find_swap,
    near_copy,
    number_difference,
    review_notes,
    same_word,
    swap_note,
    swap_rule_applies,
    swapped_spans,
)


def test_number_difference_names_what_each_side_has_alone():
    assert number_difference("Add support for Python 3.12.", "Add support for Python 3.14.") == \
        "numbers differ: 3.12 vs 3.14"
    # the same numbers in another order are not a difference (a swap is the model's to judge)
    assert number_difference("In 1815 it erupted; 1816 was cold.", "In 1816 it erupted; 1815 was cold.") is None
    assert number_difference("It has 1,000 rooms and 2 doors.", "It has 2 doors.") == "numbers differ: 1,000 vs none"
    assert number_difference("At 10:30 we met twice, 2 and 2.", "At 10:30 we met once, 2.") == \
        "numbers differ: 2 vs none"
    assert number_difference("No numbers here.", "None here either.") is None
    # digits inside a word are part of a name
    assert number_difference("Install httpcore with h2.", "Install httpcore2 with h2 and mp3 codecs.") is None
    assert number_difference("Uses HTTP/2 now.", "Uses HTTP/1.1 now.") == "numbers differ: 2 vs 1.1"


def test_decision_reason():
    assert decision_reason(0.9123, 0.5, True, "a b", "b a") == "cross-encoder 0.912 >= threshold 0.500"
    assert decision_reason(0.2, 0.5, False, "built in 1850", "built in 1852") == \
        "cross-encoder 0.200 < threshold 0.500; numbers differ: 1850 vs 1852"


def test_swapped_spans_finds_two_spans_trading_places():
    assert swapped_spans("The direction of the food relative to the sun.",
                         "The direction of the sun relative to the food.") == ("food", "sun")
    # spans of several words and of different lengths; case and punctuation do not count
    assert swapped_spans("I took a flight from New York to Paris.", "i took a flight from Paris, to New York") == \
        ("new york", "paris")
    assert swapped_spans("In 1815 it erupted; 1816 was cold.", "In 1816 it erupted; 1815 was cold.") == ("1815", "1816")
    assert swapped_spans("Cats and dogs play.", "Dogs and cats play.") == ("cats", "dogs")
    # a phrase moved to the other end (no word between the two spans) is not a swap
    assert swapped_spans("In 1815 the volcano erupted.", "The volcano erupted in 1815.") is None
    # other words, other counts, or the same sentence: nothing to say
    assert swapped_spans("The cat sat on the mat.", "The dog sat on the mat.") is None
    assert swapped_spans("a m b", "b m a m") is None
    assert swapped_spans("Same words here.", "same words, here") is None
    # the same words rearranged in some other way than one swap
    assert swapped_spans("a b c d e", "c a e b d") is None


def test_review_notes_and_reason_carry_every_cue():
    assert swap_note("from New York to Paris", "from Paris to New York") == "'new york' and 'paris' swap places"
    a, b = "In 1850 the mill fed the town, and in 1860 the town fed the mill.", \
        "In 1852 the town fed the mill, and in 1860 the mill fed the town."
    assert review_notes(a, b) == ["numbers differ: 1850 vs 1852"]  # other numbers: not only a swap
    a, b = "The mill fed the town in 1850.", "The town fed the mill in 1850."
    assert review_notes(a, b) == ["'mill' and 'town' swap places"]
    assert decision_reason(0.97, 0.5, True, a, b) == "cross-encoder 0.970 >= threshold 0.500; 'mill' and 'town' swap places"
    assert review_notes("built in 1850 by Ann for Bob", "built in 1852 by Bob for Ann") == ["numbers differ: 1850 vs 1852"]
    assert review_notes("built in 1850 by Ann for Bob", "built in 1850 by Bob for Ann") == ["'ann' and 'bob' swap places"]


def test_the_swap_rule_spares_parallel_phrases():
    # a coordinator, the words before X again, the words after Y again, or a mix: the swap reads the same
    for a, b in [("Cats and dogs play.", "Dogs and cats play."),
                 ("He was born in 1863 in Ohio.", "He was born in Ohio in 1863."),
                 ("We fed the cats and the dogs.", "We fed the dogs and the cats."),
                 ("What is medical science or biomedical science?", "What is biomedical science or medical science?"),
                 ("a child with a red haired parent and a black haired parent", "a child with a black haired parent and a red haired parent"),
                 ("Is tea vs coffee better?", "Is coffee vs tea better?")]:
        swap = find_swap(a, b)
        assert swap is not None and swap.parallel and not swap_rule_applies(a, b), a
    for a, b in [("I took a flight from New York to Paris.", "I took a flight from Paris to New York."),
                 ("The direction of the food relative to the sun.", "The direction of the sun relative to the food."),
                 ("In 1815 it erupted, and 1816 was cold.", "In 1816 it erupted, and 1815 was cold."),
                 ("The dog bit the man.", "The man bit the dog.")]:
        assert swap_rule_applies(a, b) and swap_rule_applies(b, a), a
    assert not swap_rule_applies("The cat sat.", "The dog sat.")  # not a swap at all


def test_a_rule_that_decided_against_the_threshold_is_named():
    a, b = "from New York to Paris", "from Paris to New York"
    assert decision_reason(0.9, 0.5, True, a, b, SWAP_RULE) == \
        "cross-encoder 0.900 >= threshold 0.500, rejected by the swap rule; 'new york' and 'paris' swap places"


def test_trading_two_forms_of_one_word_is_not_a_swap_of_meaning():
    for x, y in [("us", "u.s"), ("m", "am"), ("s", "is"), ("be", "become"), ("uk", "united kingdom")]:
        assert same_word(tuple(x.split()), tuple(y.split())) and same_word(tuple(y.split()), tuple(x.split())), (x, y)
    for x, y in [("food", "sun"), ("1815", "1816"), ("new york", "paris"), ("lava", "magma"), ("a", "an")]:
        assert not same_word(tuple(x.split()), tuple(y.split())), (x, y)
    a, b = "I am trying to learn it and I 'm 18 years old.", "I 'm trying to learn it and I am 18 years old."
    assert find_swap(a, b) is not None and not swap_rule_applies(a, b)
    assert not swap_rule_applies("Why does the US have it? Ask the U.S. people.", "Why does the U.S. have it? Ask the US people.")


def test_near_copies_differ_only_in_what_copy_edits_touch():
    assert near_copy('For the purposes of this definition, "control" means (i) the power to direct',
                     'For purposes of this definition, "control" means (a) the power to direct')
    assert near_copy("1. The Licensee shall keep the notice.", "b) the licensee shall keep the notice")
    assert near_copy("The software is provided as is,\nwithout warranty.", "The software is provided as is, without warranty")
    assert near_copy("It doesn\u2019t apply.", "It doesn't apply.")
    # a swap, a negation or another word are not copy edits
    assert not near_copy("A flight from New York to Paris.", "A flight from Paris to New York.")
    assert not near_copy("Smoking is allowed here.", "Smoking is not allowed here.")
    assert near_copy("Version 2 of the License.", "Version 3 of the License.")  # a changed number: a copy edit
    assert not near_copy("1990", "2000")  # nothing but numbers: nothing left to compare
    assert not near_copy("Take vitamin C daily.", "Take vitamin D daily.")
    assert not near_copy("Take vitamin C.", "Take vitamin D.")  # a letter ending a sentence is not a list marker
    assert not near_copy("The.", "A.")  # nothing left to compare
    assert copy_skeleton("(iv) An apple, the pear") == ("apple", "pear")


def test_a_near_copy_reason_names_the_rule():
    reason = decision_reason(0.05, 0.5, False, "For the purposes of it, (i) power.", "For purposes of it, (a) power.",
                             NEAR_COPY)
    assert reason.startswith("cross-encoder 0.050 < threshold 0.500, flagged as a near-copy")


def test_a_copy_with_changed_numbers_is_a_near_copy_but_swapped_numbers_are_not():
    assert near_copy("Copyright (C) 1989, 1991 Free Software Foundation, Inc.",
                     "Copyright (C) 1991, 1999 Free Software Foundation, Inc.")
    assert near_copy("either version 2 of the License, or any later version.",
                     "either version 3 of the License, or any later version.")
    assert not near_copy("It rose from 5% in 2010 to 9% in 2020.", "It rose from 9% in 2010 to 5% in 2020.")
    assert not near_copy("In 1815 it erupted, and 1816 was cold.", "In 1816 it erupted, and 1815 was cold.")
    assert not near_copy("Take 2 pills.", "Take two pills.")
    # two versions of a licence's title: the numbers changed and one was added (a version number and a date)
    assert near_copy("Version 1.2, November 2002", "Version 1.3, 3 November 2008")
    assert not near_copy("Take pills daily.", "Take 2 pills daily.")  # a number where the other side has none


def test_cross_references_are_the_numbers_a_reference_word_points_to():
    def found(text: str) -> list[str]:
        return [text[s:e] for s, e in cross_references(text)]

    assert found("termination under Sections 8.1 or 8.2 above") == ["8.1", "8.2"]
    assert found("see § 3(b), 4 and 7; Articles 2-5 apply") == ["3(b)", "4", "7", "2", "5"]
    assert found("see clause 7 (b) (ii) for details") == ["7 (b) (ii)"]
    assert found("Sec. 12.3 says 5 dollars, paid in 1998") == ["12.3"]  # amounts and years are not references
    assert found("The flight left at 10:30 in 2010, see the second paragraph.") == []


def test_renumbered_references_are_aligned_but_other_numbers_and_swapped_references_stay():
    a = "In the event of termination under Sections 8.1 or 8.2 above, licences granted by any distributor survive."
    b = "In the event of termination under Sections 5.1 or 5.2 above, licences granted by Your distributors survive."
    assert align_references(a, b) == b.replace("5.1", "8.1").replace("5.2", "8.2")
    # only the references move: a changed year or amount is still there for the cross-encoder to read
    assert align_references("Under section 4, the fee was $5 in 2010.", "Under section 9, the fee was $7 in 2011.") == \
        "Under section 4, the fee was $7 in 2011."
    # references that trade places are a swap of meaning, not a renumbering
    swap = ("Article 12 of the regulation deals with data retention, and Article 15 sets out the right of appeal.",
            "Article 15 of the regulation deals with data retention, and Article 12 sets out the right of appeal.")
    assert align_references(*swap) == swap[1]
    # the same reference written with other spacing, or another number of references, is left as it is
    assert align_references("see clause 7 (b) (ii) for details", "see clause 7(b)(ii) for details") == \
        "see clause 7(b)(ii) for details"
    assert align_references("under Sections 8.1 or 8.2", "under Section 5") == "under Section 5"
    assert align_references("no references here", "none at all") == "none at all"
