"""Why a pair is in the report: the ``reason`` text of each row, and notes a reviewer should see.

Pure text functions, with no model code, so the HTML report and the CLI can use them without loading torch.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

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

#: words that join two spans into a relation that usually reads the same both ways ("cats and dogs", "X vs Y")
COORDINATORS = frozenset({"and", "or", "nor", "vs", "versus"})


@dataclass(frozen=True)
class Swap:
    """Two word spans trading places: sentence a reads ``before`` X M Y ``after``, sentence b ``before`` Y M X
    ``after`` (lowercased words)."""

    x: tuple[str, ...]
    middle: tuple[str, ...]
    y: tuple[str, ...]
    before: tuple[str, ...]
    after: tuple[str, ...]

    @property
    def parallel(self) -> bool:
        """Whether the middle only joins two parallel phrases, so the swap rarely changes the meaning. The middle
        must read R C L: R repeats the words after Y, C is a coordinator or nothing, L repeats the words before
        X: "cats and dogs", "born in 1863 in Ohio", "the cats and the dogs", "medical science and biomedical
        science", "a red haired parent and a black haired parent"."""
        m = self.middle
        for r in range(len(m) + 1):
            if m[:r] != self.after[:r]:
                break
            for c in (0, 1):
                if c and (r >= len(m) or m[r] not in COORDINATORS):
                    continue
                left = m[r + c :]
                if len(left) <= len(self.before) and self.before[len(self.before) - len(left) :] == left:
                    return True
        return False


#: contracted forms and the words they stand for ("I 'm" / "I am"): trading them is not a swap of meaning
CONTRACTIONS = {"m": "am", "s": "is", "re": "are", "ve": "have", "ll": "will", "d": "would", "nt": "not",
                "n't": "not", "t": "not"}


def same_word(x: tuple[str, ...], y: tuple[str, ...]) -> bool:
    """Whether two spans are one word in two forms, so trading them changes nothing: equal without punctuation
    ("US" / "U.S."), a contraction ("'m" / "am"), an initialism ("UK" / "United Kingdom") or a prefix of at
    least two letters ("be" / "become")."""
    def bare(span: tuple[str, ...]) -> str:
        return "".join(ch for word in span for ch in word if ch.isalnum())

    bx, by = bare(x), bare(y)
    if bx == by:
        return True
    if len(x) == 1 and len(y) == 1:
        wx, wy = CONTRACTIONS.get(x[0], x[0]), CONTRACTIONS.get(y[0], y[0])
        short, long = sorted((wx, wy), key=len)
        return wx == wy or (len(short) >= 2 and long.startswith(short))
    single, multi = (bx, y) if len(x) == 1 else (by, x) if len(y) == 1 else ("", ())
    return bool(single) and len(multi) > 1 and single == "".join(word[0] for word in multi)


def find_swap(a: str, b: str) -> Swap | None:
    """The swap that turns ``a`` into ``b`` when trading two word spans is the only difference, else None.

    Spans are found after the longest common start and end, with at least one word M between them: two
    adjacent spans trading places is a moved phrase ("In 1815 the eruption ..." / "The eruption ... in
    1815"), which rarely changes the meaning."""
    wa, wb = [w.lower() for w in _WORD.findall(a)], [w.lower() for w in _WORD.findall(b)]
    if len(wa) != len(wb) or wa == wb or sorted(wa) != sorted(wb):
        return None
    start = next(i for i, (x, y) in enumerate(zip(wa, wb, strict=True)) if x != y)
    end = len(wa) - next(i for i, (x, y) in enumerate(zip(reversed(wa), reversed(wb), strict=True)) if x != y)
    ma, mb = wa[start:end], wb[start:end]
    for nx in range(1, len(ma)):
        for ny in range(1, len(ma) - nx):
            x, middle, y = ma[:nx], ma[nx : len(ma) - ny], ma[len(ma) - ny :]
            if mb == y + middle + x:
                return Swap(tuple(x), tuple(middle), tuple(y), tuple(wa[:start]), tuple(wa[end:]))
    return None


def swapped_spans(a: str, b: str) -> tuple[str, str] | None:
    """The two spans of ``find_swap`` as text, e.g. ``("food", "sun")`` for "the direction of the food
    relative to the sun" / "... of the sun relative to the food"."""
    swap = find_swap(a, b)
    return (" ".join(swap.x), " ".join(swap.y)) if swap else None


def swap_note(a: str, b: str) -> str | None:
    """A reviewer's cue for a pair with the same words in which two spans trade places (``'food' and 'sun'
    swap places``). Such a pair may be a paraphrase ("cats and dogs" / "dogs and cats") or not ("from New York
    to Paris" / "from Paris to New York"): that is exactly where a small cross-encoder errs most."""
    spans = swapped_spans(a, b)
    return f"{spans[0]!r} and {spans[1]!r} swap places" if spans else None


def swap_rule_applies(a: str, b: str) -> bool:
    """The swap rule: a pair whose only difference is two spans trading places around a middle that does more
    than join two parallel phrases (``Swap.parallel``), such as "the direction of the food relative to the
    sun" / "... of the sun relative to the food", is not a paraphrase, whatever the cross-encoder says, unless
    the two spans are one word in two forms (``same_word``: "the US ... the U.S." / "the U.S. ... the US").
    PAWS builds its hardest negatives exactly this way, and the shipped model scores many of them above 0.9."""
    swap = find_swap(a, b)
    return swap is not None and not swap.parallel and not same_word(swap.x, swap.y)


#: list markers that numbering styles swap: "(i)", "(a)", "(2)", "b)", "iv)" anywhere, and "1." or "a." only
#: where a list item starts (so "vitamin C." keeps its letter)
_LIST_MARKER = re.compile(r"(?<!\w)\(?(?:[0-9]{1,2}|[a-z]|[ivx]{1,4})\)(?!\w)|^\s*(?:[0-9]{1,2}|[a-z]|[ivx]{1,4})\.(?=\s)",
                          re.IGNORECASE)
ARTICLES = frozenset({"a", "an", "the"})


def copy_skeleton(text: str) -> tuple[str, ...]:
    """The words of a sentence without what small copy edits touch: case, punctuation, whitespace and line
    breaks, list markers ("(i)", "(a)", "1.", "b)") and the articles "a", "an", "the". Word order, every other
    word, every number and every negation stay, so two sentences with the same skeleton say the same thing."""
    import unicodedata

    text = _LIST_MARKER.sub(" ", unicodedata.normalize("NFKC", text))
    return tuple(w for w in (w.casefold().replace("’", "'") for w in _WORD.findall(text)) if w not in ARTICLES)


_PLAIN_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")


def near_copy(a: str, b: str) -> bool:
    """Whether ``b`` is ``a`` up to small copy edits (``copy_skeleton``): "For the purposes of this definition,
    (i) the power ..." / "For purposes of this definition, (a) the power ...", or a copy whose numbers were
    changed ("version 2 of the License" / "version 3 ...", "Copyright (C) 1989, 1991" / "(C) 1991, 1999"), also where
    one side has more of them ("Version 1.2, November 2002" / "Version 1.3, 3 November 2008"); a number where the
    other side has none is not a copy edit ("Take pills." / "Take 2 pills."). Numbers
    that only trade places are a swap, not a copy edit ("from 5% in 2010 to 9% in 2020" / "from 9% in 2010 to 5%
    in 2020"). Such a pair is reuse whatever its length and whatever a cross-encoder makes of it; a changed
    number also gets its ``numbers differ`` note."""
    sa, sb = copy_skeleton(a), copy_skeleton(b)
    if not sa or not sb:
        return False
    if sa == sb:
        return True

    def split(words: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
        return (tuple(w for w in words if not _PLAIN_NUMBER.fullmatch(w)),
                sorted(w for w in words if _PLAIN_NUMBER.fullmatch(w)))

    (wa, na), (wb, nb) = split(sa), split(sb)
    return bool(wa and na and nb) and wa == wb and na != nb


#: a cross-reference: a reference word ("Section", "Sections", "§", "Article", "clause", "paragraph", ...) and
#: the numbers it points to, one or a list ("Sections 8.1 or 8.2", "§§ 3, 4 and 7(b)", "Articles 2-5")
_REF_NUMBER = r"\d+(?:\.\d+)*(?:\s?\([a-z0-9]{1,4}\))*"
_REFERENCE = re.compile(
    r"(?:\b(?:sections?|subsections?|articles?|clauses?|subclauses?|paragraphs?|subparagraphs?|chapters?|appendix|"
    r"appendices|annex(?:es)?|exhibits?|schedules?|sec|art|para)\.?|§§?)\s*"
    rf"{_REF_NUMBER}(?:\s*(?:,|,?\s*(?:and|or|to|through)|-|–)\s*{_REF_NUMBER})*", re.IGNORECASE)
_REF_NUMBER_RE = re.compile(_REF_NUMBER)


def cross_references(text: str) -> list[tuple[int, int]]:
    """Where the numbers of the sentence's cross-references are (``_REFERENCE``), as (start, end) offsets in
    order: "under Sections 8.1 or 8.2 above" has two, at "8.1" and "8.2". Other numbers (dates, amounts,
    versions) are not cross-references."""
    spans = []
    for ref in _REFERENCE.finditer(text):
        # the numbers after the reference word (a word such as "sec" has no digits to match)
        spans += [(ref.start() + m.start(), ref.start() + m.end()) for m in _REF_NUMBER_RE.finditer(ref.group())]
    return spans


def align_references(a: str, b: str) -> str:
    """``b`` with its cross-reference numbers replaced by ``a``'s, where both have as many and they differ
    ("termination under Sections 8.1 or 8.2" / "... Sections 5.1 or 5.2"); ``b`` itself otherwise. A copy of a
    clause from a renumbered document is still the clause: the cross-encoder reads the pair with the numbering
    aligned, so that renumbering is not taken for a changed fact, while every other number (dates, amounts,
    versions) stays as written. References that only trade places are a swap, not a renumbering ("Article 12
    ... retention, and Article 15 ... appeal" / "Article 15 ... retention, and Article 12 ..."), and stay.
    ``number_difference`` still tells the reviewer that the numbers differ."""
    ra, rb = cross_references(a), cross_references(b)
    na, nb = (["".join(text[s:e].split()) for s, e in spans] for text, spans in ((a, ra), (b, rb)))
    if not ra or len(ra) != len(rb) or sorted(na) == sorted(nb):
        return b
    out, last = [], 0
    for (sa, ea), (sb, eb) in zip(ra, rb, strict=True):
        out += [b[last:sb], a[sa:ea]]
        last = eb
    return "".join([*out, b[last:]])


def review_notes(a: str, b: str) -> list[str]:
    """Every cue for a reviewer about the pair (numbers that differ, swapped spans), in a fixed order."""
    return [note for note in (number_difference(a, b), swap_note(a, b)) if note]


#: the report's ``reason`` for pairs settled by hashing, without the models
EXACT_REASON = "identical after normalising case and whitespace"


#: what the decision rules (``scanner.match.RULES``) add to the reason when they decide against the threshold
SWAP_RULE = "rejected by the swap rule"
NEAR_COPY = ("flagged as a near-copy (the same words in the same order, up to case, punctuation, articles, list "
             "numbering and changed numbers)")


def decision_reason(score: float, threshold: float, above: bool, a: str, b: str, rule: str | None = None) -> str:
    """The report's ``reason`` for a cross-encoded pair: the score against the threshold (``above`` is the
    threshold's decision as the caller computed it, so the text never contradicts the ``match`` column at
    float32 ties), then, when a decision rule (``scanner.match.RULES``) decided otherwise, the ``rule``'s words,
    then the ``review_notes``."""
    reason = f"cross-encoder {score:.3f} {'>=' if above else '<'} threshold {threshold:.3f}"
    if rule is not None:
        reason += f", {rule}"
    return "; ".join([reason, *review_notes(a, b)])
