"""The report's reasons and the notes for reviewers (pure text, no model)."""

from __future__ import annotations

from scanner.reasons import decision_reason, number_difference


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
