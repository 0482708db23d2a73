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


def split_wiki_dev(data_dir: Path = DEFAULT_DATA_DIR) -> tuple[list[Pair], list[Pair]]:
    """Split PAWS-Wiki dev into (train part, validation slice of ``VALIDATION_SIZE`` pairs, stratified).

    The slice is the only data used for checkpoint selection, the flagging threshold and baseline
    thresholds. It is a fixed function of the file and ``VALIDATION_SEED``.
    """
    dev = paws_wiki("dev", data_dir)
    rng = random.Random(VALIDATION_SEED)
    by_label: dict[int, list[int]] = {0: [], 1: []}
    for i, pair in enumerate(dev):
        by_label[pair.label].append(i)
    val_idx: set[int] = set()
    for _label, idx in by_label.items():
        k = round(VALIDATION_SIZE * len(idx) / len(dev))
        val_idx.update(rng.sample(idx, k))
    train = [p for i, p in enumerate(dev) if i not in val_idx]
    val = [p for i, p in enumerate(dev) if i in val_idx]
    return train, val


def training_pairs(data_dir: Path = DEFAULT_DATA_DIR, use_mrpc: bool = True, wiki_repeats: int = 1) -> list[Pair]:
    """PAWS-QQP train + PAWS-Wiki dev (minus the validation slice, ``wiki_repeats`` times: it is the only
    in-domain data for the PAWS-Wiki target) + optionally MRPC train."""
    pairs = paws_qqp("train", data_dir) + split_wiki_dev(data_dir)[0] * wiki_repeats
    if use_mrpc:
        pairs += mrpc("train", data_dir)
    return pairs


def validation_pairs(data_dir: Path = DEFAULT_DATA_DIR) -> list[Pair]:
    return split_wiki_dev(data_dir)[1]
