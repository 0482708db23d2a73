"""PAWS-style synthetic pairs built from training sentences (never from validation or test data).

PAWS negatives swap two spans of a sentence so that the words stay and the meaning changes ("Cumbria ...
Britain" -> "Britain ... Cumbria"); its positives move phrases without changing who did what. A model that
has not learned to tell the two apart sees a near-identical bag of words either way. These generators make
more of both kinds, balanced, so that "the sentence changed" alone predicts nothing:

* ``swap_negative``: swap two distinct entity spans (runs of capitalised tokens after the first word) or two
  distinct numbers;
* ``move_positive``: move a fronted time/place phrase ("In 1952 , ...") to the end of the sentence, or drop
  an adverb that carries no content ("also", "then", "later" ...);
* ``noun_swap_negative`` (spaCy tags and parse): swap two distinct common nouns with the same tag that are not
  conjuncts of each other ("the direction of the sun relative to the food" -> "... of the food relative to the
  sun");
* ``conjunct_swap_positive`` (spaCy parse): swap the two nouns of an "X and Y" coordination, which keeps the
  meaning ("salt and pepper" -> "pepper and salt"), so that swapped nouns alone do not mean "not a paraphrase".

Sentences are whitespace-tokenised, as PAWS text is.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import Any

from pipelines.data import Pair

FRONTED = {"In", "On", "At", "During", "After", "Before", "Since", "From", "By", "Until", "Throughout"}
DROPPABLE = {"also", "then", "later", "currently", "originally", "eventually", "still", "subsequently"}


def _units(tokens: list[str]) -> list[tuple[int, int]]:
    """Spans [start, end) of entity-like runs (capitalised tokens, not the first word) and of numbers."""
    spans: list[tuple[int, int]] = []
    i = 1
    while i < len(tokens):
        tok = tokens[i]
        if any(ch.isdigit() for ch in tok):
            spans.append((i, i + 1))
            i += 1
        elif tok[:1].isupper():
            j = i + 1
            while j < len(tokens) and tokens[j][:1].isupper():
                j += 1
            spans.append((i, j))
            i = j
        else:
            i += 1
    return spans


def swap_negative(sentence: str, rng: random.Random) -> str | None:
    tokens = sentence.split()
    spans = _units(tokens)
    def kind(span: tuple[int, int]) -> bool:
        return any(ch.isdigit() for ch in tokens[span[0]])

    # swap like with like: an entity with an entity, a number with a number
    options = [(a, b) for x, a in enumerate(spans) for b in spans[x + 1 :]
               if tokens[a[0] : a[1]] != tokens[b[0] : b[1]] and kind(a) == kind(b)]
    if not options:
        return None
    (a0, a1), (b0, b1) = rng.choice(options)
    swapped = tokens[:a0] + tokens[b0:b1] + tokens[a1:b0] + tokens[a0:a1] + tokens[b1:]
    out = " ".join(swapped)
    return out if out != sentence else None


def move_positive(sentence: str, rng: random.Random) -> str | None:
    tokens = sentence.split()
    if len(tokens) > 6 and tokens[0] in FRONTED and "," in tokens[1:13] and tokens[-1] in {".", "!", "?"}:
        comma = tokens.index(",", 1)
        phrase = [tokens[0].lower(), *tokens[1:comma]]
        rest = tokens[comma + 1 : -1]
        if rest and rest[0][:1].islower():
            rest[0] = rest[0][:1].upper() + rest[0][1:]
        if rest:
            return " ".join([*rest, *phrase, tokens[-1]])
    drops = [i for i, tok in enumerate(tokens) if tok.lower() in DROPPABLE]
    if drops:
        i = rng.choice(drops)
        return " ".join(tokens[:i] + tokens[i + 1 :])
    return None


NOUN_ROLES = {"nsubj", "nsubjpass", "dobj", "pobj", "attr", "appos"}


def _parsed(sentences: list[str], nlp: Any) -> Iterator[Any]:
    """spaCy docs over the whitespace tokens, so that token i of the doc is token i of ``sentence.split()``."""
    from spacy.tokens import Doc

    return nlp.pipe(Doc(nlp.vocab, words=s.split()) for s in sentences)


def _swap_tokens(tokens: list[str], i: int, j: int) -> str:
    out = list(tokens)
    out[i], out[j] = out[j], out[i]
    return " ".join(out)


def noun_swap_negative(doc: Any, rng: random.Random) -> str | None:
    """Swap two different common nouns (same tag, both heading a subject/object/complement, not conjuncts)."""
    nouns = [t for t in doc if t.tag_ in {"NN", "NNS"} and t.dep_ in NOUN_ROLES and t.is_alpha]
    options = [(a, b) for x, a in enumerate(nouns) for b in nouns[x + 1 :]
               if a.tag_ == b.tag_ and a.lower_ != b.lower_ and b not in a.conjuncts]
    if not options:
        return None
    a, b = rng.choice(options)
    return _swap_tokens([t.text for t in doc], a.i, b.i)


def conjunct_swap_positive(doc: Any, rng: random.Random) -> str | None:
    """Swap the nouns of "X and Y" (exactly two single-token conjuncts joined by "and", same tag)."""
    options = []
    for t in doc:
        if t.dep_ != "conj" or t.head.i != t.i - 2 or doc[t.i - 1].lower_ != "and" or not t.is_alpha:
            continue
        a = t.head
        if (a.is_alpha and a.tag_ == t.tag_ and a.tag_ in {"NN", "NNS", "NNP"} and len(a.conjuncts) == 1
                and a.lower_ != t.lower_ and not any(c.dep_ == "compound" for c in (*a.children, *t.children))):
            options.append((a.i, t.i))
    if not options:
        return None
    i, j = rng.choice(options)
    return _swap_tokens([t.text for t in doc], i, j)


def synthetic_pairs(sentences: Iterable[str], seed: int = 0, limit: int = 0, nlp: Any = None) -> list[Pair]:
    """Balanced synthetic positives and negatives from ``sentences`` (deduplicated, order-independent).

    With a spaCy pipeline ``nlp`` (tagger and parser), the noun-swap negatives and conjunct-swap positives are
    made as well."""
    rng = random.Random(seed)
    unique = sorted(set(sentences))
    negatives = [Pair(s, n, 0, "synthetic-swap") for s in unique if (n := swap_negative(s, rng))]
    positives = [Pair(s, p, 1, "synthetic-move") for s in unique if (p := move_positive(s, rng))]
    if nlp is not None:
        for s, doc in zip(unique, _parsed(unique, nlp), strict=True):
            if n := noun_swap_negative(doc, rng):
                negatives.append(Pair(s, n, 0, "synthetic-noun-swap"))
            if p := conjunct_swap_positive(doc, rng):
                positives.append(Pair(s, p, 1, "synthetic-conjunct-swap"))
    rng.shuffle(negatives)
    rng.shuffle(positives)
    n = min(len(negatives), len(positives))
    if limit:
        n = min(n, limit // 2)
    return negatives[:n] + positives[:n]
