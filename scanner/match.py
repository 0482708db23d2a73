"""The match core: what happens to candidate pairs, whichever entry point found them.

Candidates come from a collection (``scan``), a collection against a reference index (``scan --against``),
queries against an index (``scan search``), or are given (``scan check``, ``dedupe``). From there on every
entry point takes the same path:

1. ``score_distinct``: each distinct pair of texts is cross-encoded once, in one orientation (smaller text key
   first), so the same two sentences get the same score in every kind of run and in either order;
2. ``decide``: the one place where a score becomes a decision: the threshold (``VerifyConfig.
   resolved_threshold``), then the decision rules in ``RULES`` (the near-copy rule, and the swap rule when it
   is on), then the label (``Match``) and the report's reason.

Pairs of identical sentences are settled by hashing before any of this (``Match.EXACT``, ``EXACT_REASON``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from scanner.candidates import text_key
from scanner.reasons import NEAR_COPY, SWAP_RULE, decision_reason, near_copy, swap_rule_applies
from scanner.schema import Match

if TYPE_CHECKING:
    from scanner.engine import Engine
    from scanner.verify import VerifyConfig

#: a decision rule: given a pair, the decision so far and the settings, a new decision and why, or None to
#: leave the decision as it is
Rule = Callable[[str, str, bool, "VerifyConfig"], "tuple[bool, str] | None"]


def swap_rule(a: str, b: str, flagged: bool, verify: VerifyConfig) -> tuple[bool, str] | None:
    """With ``--swap-rule``: a flagged pair whose only difference is two spans trading places is rejected
    (``scanner.reasons.swap_rule_applies``)."""
    if flagged and verify.swap_rule and swap_rule_applies(a, b):
        return False, SWAP_RULE
    return None


def near_copy_rule(a: str, b: str, flagged: bool, verify: VerifyConfig) -> tuple[bool, str] | None:
    """A pair that is a copy up to case, punctuation, articles and list numbering is flagged whatever its score
    (``scanner.reasons.near_copy``)."""
    if not flagged and near_copy(a, b):
        return True, NEAR_COPY
    return None


#: the rules ``decide`` applies after the threshold, in this order
RULES: list[Rule] = [swap_rule, near_copy_rule]


@dataclass(frozen=True)
class Decision:
    """``decide``'s verdict on cross-encoded pairs (a[i], b[i])."""

    scores: np.ndarray
    threshold: float
    #: the threshold's own decision (score >= threshold, in float32 as the scores are)
    above: np.ndarray
    flagged: np.ndarray
    #: why a rule overrode the threshold's decision, per pair (None: the threshold decided)
    overridden_by: tuple[str | None, ...]
    a: Sequence[str]
    b: Sequence[str]

    def matches(self, rows: np.ndarray | None = None) -> list[str]:
        """``paraphrase`` or ``rejected`` for the given rows (all by default)."""
        rows = np.arange(len(self.flagged)) if rows is None else rows
        return [(Match.PARAPHRASE if self.flagged[i] else Match.REJECTED).value for i in rows]

    def reasons(self, rows: np.ndarray | None = None) -> list[str]:
        """The report's ``reason`` for the given rows (all by default): score against threshold, the rule that
        decided otherwise, the reviewer's notes."""
        rows = np.arange(len(self.flagged)) if rows is None else rows
        return [decision_reason(float(self.scores[i]), self.threshold, bool(self.above[i]), self.a[i], self.b[i],
                                self.overridden_by[i]) for i in rows]


def decide(scores: np.ndarray, a: Sequence[str], b: Sequence[str], verify: VerifyConfig) -> Decision:
    """The decision on cross-encoded pairs (a[i], b[i]) with ``scores``: flagged at or above the threshold, then
    each rule of ``RULES`` in turn may change it. The only function where a score becomes a decision."""
    if not len(scores) == len(a) == len(b):
        raise ValueError(f"decide needs one score per pair, got {len(scores)} scores for {len(a)} and {len(b)} sentences")
    scores = np.asarray(scores, dtype=np.float32)
    threshold = verify.resolved_threshold()
    above = scores >= threshold
    flagged = above.copy()
    why: list[str | None] = [None] * len(scores)
    for i in range(len(scores)):
        for rule in RULES:
            verdict = rule(a[i], b[i], bool(flagged[i]), verify)
            if verdict is not None:
                flagged[i], why[i] = verdict
    return Decision(scores, threshold, above, flagged, tuple(why), a, b)


def score_distinct(a: Sequence[str], b: Sequence[str], verify: VerifyConfig, engine: Engine) -> tuple[np.ndarray, int]:
    """Cross-encoder scores of pairs (a[i], b[i]): each distinct pair of texts once, oriented with the smaller
    text key first, so the same two sentences score the same in every kind of run and in either order.
    Returns (scores in input order, number of distinct pairs cross-encoded)."""
    if not len(a):
        return np.zeros(0, np.float32), 0
    ka = np.fromiter((text_key(t) for t in a), np.int64, len(a))
    kb = np.fromiter((text_key(t) for t in b), np.int64, len(b))
    swap = ka > kb
    first = [y if s else x for x, y, s in zip(a, b, swap, strict=True)]
    second = [x if s else y for x, y, s in zip(a, b, swap, strict=True)]
    keys = np.stack([np.where(swap, kb, ka), np.where(swap, ka, kb)], axis=1)
    _, head, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    distinct = engine.score([first[h] for h in head], [second[h] for h in head], verify)
    return np.asarray(distinct, np.float32)[inverse.reshape(-1)], len(head)
