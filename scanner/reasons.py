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


#: the report's ``reason`` for pairs settled by hashing, without the models
EXACT_REASON = "identical after normalising case and whitespace"


def decision_reason(score: float, threshold: float, flagged: bool, a: str, b: str) -> str:
    """The report's ``reason`` for a cross-encoded pair: the score against the threshold (``flagged`` is the
    decision as the caller made it, so the text never contradicts the ``match`` column), and any numbers that
    differ between the two sentences."""
    reason = f"cross-encoder {score:.3f} {'>=' if flagged else '<'} threshold {threshold:.3f}"
    differ = number_difference(a, b)
    return f"{reason}; {differ}" if differ else reason
