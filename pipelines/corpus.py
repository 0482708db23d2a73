"""Benchmark corpora: documents of real sentences with planted verbatim and paraphrased reuse across them.

The sentences come from the pair data sets in ``shared/data`` (PAWS-Wiki, PAWS-QQP, MRPC; read through
``pipelines.data``). Sentences linked by any pair form a group; the background text of the documents takes
one sentence per group, so the background holds no hidden paraphrases or word swaps. Reuse is then planted
across documents:

* ``verbatim``: a background sentence copied into another document;
* ``paraphrase``: the two sides of a positive pair (PAWS/MRPC label 1: real human-judged paraphrases) put
  in two different documents;
* ``swap``: the two sides of a negative pair (PAWS word swaps, label 0) put in two documents: must not be
  flagged by a correct model.

The data hold about 21,000 sentence groups. A corpus larger than that gets the rest of its background from
spliced sentences (the first half of one real sentence, the second half of another: unique text with real
vocabulary, counted in ``Corpus.background_spliced``), never from repeats, which would turn the background
into exact duplicates and flatter the hash-based exact matching.

Every document is written with one sentence per paragraph (blank lines between), so the scanner's
segmenter sees the sentence boundaries the generator meant.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.data import DEFAULT_DATA_DIR, Pair, mrpc, paws_qqp, paws_wiki


@dataclass(frozen=True)
class CorpusConfig:
    """``sentences``: target total; ``doc_sentences``: sentences per document; the ``*_share`` values are the
    number of planted pairs of each kind per sentence of the corpus."""

    sentences: int = 10_000
    doc_sentences: int = 40
    verbatim_share: float = 0.01
    paraphrase_share: float = 0.02
    swap_share: float = 0.01
    seed: int = 0


@dataclass
class Corpus:
    """Documents (id -> sentences, in order), the planted pairs ``(kind, doc_a, text_a, doc_b, text_b)``,
    and how many background sentences had to be spliced because the real ones ran out."""

    docs: dict[str, list[str]] = field(default_factory=dict)
    planted: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    background_spliced: int = 0

    @property
    def sentences(self) -> int:
        return sum(len(s) for s in self.docs.values())

    def write(self, folder: str | Path) -> Path:
        """One ``.txt`` file per document, a sentence per paragraph."""
        root = Path(folder)
        root.mkdir(parents=True, exist_ok=True)
        for doc, sentences in self.docs.items():
            (root / doc).write_text("\n\n".join(sentences) + "\n", encoding="utf-8")
        return root


def all_pairs(data_dir: Path = DEFAULT_DATA_DIR) -> list[Pair]:
    """Every labelled pair of the shared data sets (all splits: the benchmark trains nothing)."""
    return (paws_wiki("dev", data_dir) + paws_wiki("test", data_dir) + paws_qqp("train", data_dir)
            + paws_qqp("dev_and_test", data_dir) + mrpc("train", data_dir) + mrpc("test", data_dir))


def sentence_groups(pairs: list[Pair]) -> dict[str, int]:
    """Sentence -> group id, where two sentences share a group when any chain of pairs links them."""
    parent: dict[str, str] = {}

    def find(s: str) -> str:
        parent.setdefault(s, s)
        while parent[s] != s:
            parent[s] = parent[parent[s]]
            s = parent[s]
        return s

    for p in pairs:
        ra, rb = find(p.a), find(p.b)
        if ra != rb:
            parent[ra] = rb
    roots: dict[str, int] = {}
    return {s: roots.setdefault(find(s), len(roots)) for s in list(parent)}


def spliced(sentences: list[str], count: int, rng: random.Random) -> list[str]:
    """``count`` new sentences, each the first half (in words) of one sentence and the second half of
    another; every (first, second) combination is used at most once."""
    out: list[str] = []
    seen: set[str] = set(sentences)
    halves = [s.split() for s in sentences]
    while len(out) < count:
        order = list(range(len(halves)))
        rng.shuffle(order)
        for i, j in zip(range(len(halves)), order, strict=True):
            a, b = halves[i], halves[j]
            text = " ".join(a[: len(a) // 2] + b[len(b) // 2 :])
            if i != j and len(a) > 3 and len(b) > 3 and text not in seen:
                seen.add(text)
                out.append(text)
                if len(out) == count:
                    break
    return out


def build_corpus(config: CorpusConfig, data_dir: Path = DEFAULT_DATA_DIR) -> Corpus:
    """A corpus of about ``config.sentences`` sentences with planted reuse (deterministic for a seed)."""
    rng = random.Random(config.seed)
    pairs = [p for p in all_pairs(data_dir) if p.a.strip() and p.b.strip() and p.a != p.b]
    group = sentence_groups(pairs)
    n = config.sentences
    want = {"paraphrase": round(n * config.paraphrase_share), "swap": round(n * config.swap_share)}
    # planted pairs each use a group of their own, never used for background text
    rng.shuffle(pairs)
    used: set[int] = set()
    planted_pairs: dict[str, list[Pair]] = {"paraphrase": [], "swap": []}
    for p in pairs:
        kind = "paraphrase" if p.label == 1 else "swap"
        if len(planted_pairs[kind]) < want[kind] and group[p.a] not in used:
            used.add(group[p.a])
            planted_pairs[kind].append(p)
    by_group: dict[int, str] = {}
    for sentence in sorted(group):
        g = group[sentence]
        if g not in used and (g not in by_group or rng.random() < 0.5):
            by_group[g] = sentence
    background = list(by_group.values())
    rng.shuffle(background)
    n_plant_sides = 2 * sum(want.values()) + round(n * config.verbatim_share)
    n_background = max(0, n - n_plant_sides)
    corpus = Corpus(background_spliced=max(0, n_background - len(background)))
    stream = background[:n_background] + spliced(background, corpus.background_spliced, rng)
    n_docs = max(2, round(n / config.doc_sentences))
    names = [f"doc_{i:06d}.txt" for i in range(n_docs)]
    for i, name in enumerate(names):
        corpus.docs[name] = stream[i::n_docs]

    def insert(doc: str, text: str) -> None:
        sentences = corpus.docs[doc]
        sentences.insert(rng.randrange(len(sentences) + 1), text)

    def two_docs() -> tuple[str, str]:
        a, b = rng.sample(names, 2)
        return a, b

    for kind, chosen in planted_pairs.items():
        for p in chosen:
            da, db = two_docs()
            insert(da, p.a)
            insert(db, p.b)
            corpus.planted.append((kind, da, p.a, db, p.b))
    for _ in range(round(n * config.verbatim_share)):
        da, db = two_docs()
        if not corpus.docs[da]:
            continue
        text = rng.choice(corpus.docs[da])
        insert(db, text)
        corpus.planted.append(("verbatim", da, text, db, text))
    return corpus
