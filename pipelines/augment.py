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

from pipelines.pairs import Pair

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


# --- edits that keep a copy a copy, and edits that change the claim ---------------------------------------------

SPELLING = {"colour": "color", "organise": "organize", "centre": "center", "analyse": "analyze",
            "behaviour": "behavior", "licence": "license", "programme": "program", "favour": "favor",
            "defence": "defense", "travelled": "traveled", "labour": "labor", "organisation": "organization"}
FILLERS = {"that", "very", "also", "just", "really", "quite", "then", "still"}
NUMBERING = [("(i)", "(a)"), ("(ii)", "(b)"), ("1.", "a)"), ("(1)", "(a)"), ("2.", "b)"), ("i.", "1.")]
ARTICLES = {"the", "a", "an"}
AUXILIARIES = {"is", "are", "was", "were", "can", "will", "should", "must", "could", "would", "may", "does", "did"}
ANTONYMS = {"increase": "decrease", "increases": "decreases", "increased": "decreased", "before": "after",
            "always": "never", "allowed": "forbidden", "more": "less", "higher": "lower", "larger": "smaller",
            "first": "last", "north": "south", "east": "west", "above": "below", "won": "lost", "rise": "fall",
            "rose": "fell", "earlier": "later", "include": "exclude", "includes": "excludes", "most": "fewest",
            "accepted": "rejected", "approved": "rejected", "gained": "lost", "strong": "weak", "older": "younger",
            "permitted": "prohibited", "success": "failure", "inside": "outside", "maximum": "minimum"}
ANTONYMS.update({v: k for k, v in list(ANTONYMS.items())})


def _case_like(word: str, model: str) -> str:
    return word[:1].upper() + word[1:] if model[:1].isupper() else word


def near_copy_positive(sentence: str, rng: random.Random) -> str | None:
    """The sentence with one to three small edits that leave it a copy: punctuation, an article, list
    numbering, a filler word, British/American spelling, capitalisation or a typo."""
    tokens = sentence.split()
    if len(tokens) < 5:
        return None
    for _ in range(rng.randint(1, 3)):
        edit = rng.randrange(8)
        words = [i for i, t in enumerate(tokens) if t.isalpha()]
        if edit == 0 and (commas := [i for i, t in enumerate(tokens) if t in {",", ";"} or t.endswith(",")]):
            i = rng.choice(commas)
            tokens[i] = tokens[i].rstrip(",;") if tokens[i] not in {",", ";"} else ("," if tokens[i] == ";" else "")
        elif edit == 0 and len(words) > 3:
            i = rng.choice(words[1:-1])
            tokens[i] += ","
        elif edit == 1 and (arts := [i for i, t in enumerate(tokens) if t.lower() in ARTICLES and i > 0]):
            tokens[rng.choice(arts)] = ""
        elif edit == 1 and len(words) > 2:
            i = rng.choice(words[1:])
            tokens.insert(i, "the")
        elif edit == 2:
            old, new = rng.choice(NUMBERING)
            if old in tokens:
                tokens[tokens.index(old)] = new
            else:
                tokens.insert(0, rng.choice([old, new]))
        elif edit == 3 and (fill := [i for i, t in enumerate(tokens) if t.lower() in FILLERS]):
            tokens[rng.choice(fill)] = ""
        elif edit == 4:
            for i, t in enumerate(tokens):
                low = t.lower()
                swap = SPELLING.get(low) or next((k for k, v in SPELLING.items() if v == low), None)
                if swap:
                    tokens[i] = _case_like(swap, t)
                    break
            else:
                tokens[-1] = tokens[-1].rstrip(".") if tokens[-1].endswith(".") and len(tokens[-1]) > 1 else tokens[-1]
        elif edit == 5:
            tokens = [t.lower() for t in tokens] if rng.random() < 0.5 else [t.upper() if t.isalpha() and
                                                                              rng.random() < 0.1 else t for t in tokens]
        elif edit == 6 and (long := [i for i in words if len(tokens[i]) > 5]):
            i = rng.choice(long)
            w = tokens[i]
            k = rng.randrange(1, len(w) - 2)
            tokens[i] = w[:k] + w[k + 1] + w[k] + w[k + 2 :]
        elif edit == 7:
            tokens = [t.replace('"', "\u201c", 1) if '"' in t else t.replace("'s", "\u2019s") for t in tokens]
        tokens = [t for t in tokens if t]
    out = " ".join(tokens)
    return out if out != sentence else None


def negation_negative(sentence: str, rng: random.Random) -> str | None:
    """The sentence with its claim reversed: an auxiliary negated (or its "not" removed), or one word turned
    into its antonym ("increases" -> "decreases", "before" -> "after")."""
    tokens = sentence.split()
    options: list[tuple[str, int]] = []
    for i, t in enumerate(tokens[:-1]):
        nxt = tokens[i + 1].lower()
        if t.lower() in AUXILIARIES and nxt not in {"not", "n't", "no", "never"}:
            options.append(("negate", i))
        if t.lower() in {"not", "never"} and i > 0 and tokens[i - 1].lower() in AUXILIARIES:
            options.append(("drop", i))
    options += [("antonym", i) for i, t in enumerate(tokens) if t.lower() in ANTONYMS]
    if not options:
        return None
    kind, i = rng.choice(options)
    if kind == "negate":
        tokens.insert(i + 1, "not")
    elif kind == "drop":
        del tokens[i]
    else:
        tokens[i] = _case_like(ANTONYMS[tokens[i].lower()], tokens[i])
    return " ".join(tokens)


def edit_pairs(sentences: Iterable[str], seed: int = 0, near_copies: int = 0, negations: int = 0) -> list[Pair]:
    """Up to ``near_copies`` near-copy positives and ``negations`` negation negatives from ``sentences``."""
    rng = random.Random(seed)
    unique = sorted(set(sentences))
    rng.shuffle(unique)
    copies = [Pair(s, c, 1, "synthetic-near-copy") for s in unique[: near_copies * 2]
              if (c := near_copy_positive(s, rng))][:near_copies]
    rng.shuffle(unique)
    negated = [Pair(s, n, 0, "synthetic-negation") for s in unique[: negations * 3]
               if (n := negation_negative(s, rng))][:negations]
    return copies + negated
