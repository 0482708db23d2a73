"""Why a pair is in the report: the ``reason`` text of each row, and notes a reviewer should see.

Pure text functions, with no model code, so the HTML report and the CLI can use them without loading torch.
"""

from __future__ import annotations

import re
from collections import Counter

#: a number written in digits, with its decimal, thousands or time separators ("3.12", "1,000", "10:30"), and
#: not part of a word ("httpcore2", "h2", "mp3" are names, not quantities)
_NUMBER = re.compile(r"(?<![^\W\d])\d+(?:[.,:]\d+)*(?![^\W\d])")


def number_difference(a: str, b: str) -> str | None:
    """The numbers (in digits) that one sentence has and the other lacks, e.g. ``numbers differ: 3.12 vs 3.14``;
    None when both hold the same numbers (in any order). A reviewer's cue: a pair that reads alike but states
    other quantities, versions or dates is often a changed copy rather than a faithful paraphrase."""
    in_a, in_b = Counter(_NUMBER.findall(a)), Counter(_NUMBER.findall(b))
    if in_a == in_b:
        return None
    only_a, only_b = sorted((in_a - in_b).elements()), sorted((in_b - in_a).elements())
    return f"numbers differ: {', '.join(only_a) or 'none'} vs {', '.join(only_b) or 'none'}"


#: a word for the swap check: letters or digits, with inner apostrophes, hyphens or decimal points ("don't",
#: "pre-imperial", "3.12"); punctuation and case do not count
_WORD = re.compile(r"\w+(?:['’.-]\w+)*")


def swapped_spans(a: str, b: str) -> tuple[str, str] | None:
    """The two word spans that trade places between ``a`` and ``b`` when that is the only difference, e.g.
    ``("food", "sun")`` for "the direction of the food relative to the sun" / "... of the sun relative to the
    food"; None otherwise. Spans are found after the longest common start and end: ``a`` must read X M Y where
    ``b`` reads Y M X, with at least one word M between them (two adjacent spans trading places is a moved
    phrase, "In 1815 the eruption ..." / "The eruption ... in 1815", which rarely changes the meaning)."""
    wa, wb = [w.lower() for w in _WORD.findall(a)], [w.lower() for w in _WORD.findall(b)]
    if len(wa) != len(wb) or wa == wb or sorted(wa) != sorted(wb):
        return None
    start = next(i for i, (x, y) in enumerate(zip(wa, wb, strict=True)) if x != y)
    end = len(wa) - next(i for i, (x, y) in enumerate(zip(reversed(wa), reversed(wb), strict=True)) if x != y)
    ma, mb = wa[start:end], wb[start:end]
    for nx in range(1, len(ma)):
        for ny in range(1, len(ma) - nx):
            x, y, mid = ma[:nx], ma[len(ma) - ny :], ma[nx : len(ma) - ny]
            if mb == y + mid + x:
                return " ".join(x), " ".join(y)
    return None


def swap_note(a: str, b: str) -> str | None:
    """A reviewer's cue for a pair with the same words in which two spans trade places (``food and sun swap
    places``). Such a pair may be a paraphrase ("cats and dogs" / "dogs and cats") or not ("from New York to
    Paris" / "from Paris to New York"): that is exactly where a small cross-encoder errs most."""
    spans = swapped_spans(a, b)
    return f"{spans[0]!r} and {spans[1]!r} swap places" if spans else None


def review_notes(a: str, b: str) -> list[str]:
    """Every cue for a reviewer about the pair (numbers that differ, swapped spans), in a fixed order."""
    return [note for note in (number_difference(a, b), swap_note(a, b)) if note]


#: the report's ``reason`` for pairs settled by hashing, without the models
EXACT_REASON = "identical after normalising case and whitespace"


def decision_reason(score: float, threshold: float, flagged: bool, a: str, b: str) -> str:
    """The report's ``reason`` for a cross-encoded pair: the score against the threshold (``flagged`` is the
    decision as the caller made it, so the text never contradicts the ``match`` column), then the
    ``review_notes``."""
    reason = f"cross-encoder {score:.3f} {'>=' if flagged else '<'} threshold {threshold:.3f}"
    return "; ".join([reason, *review_notes(a, b)])
