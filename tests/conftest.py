"""Shared fixtures. Models load offline only; every cache and output goes to a temporary folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# the embedding cache of the whole test session lives in a temporary folder, never in ~/.cache
os.environ["PARAPHRASE_SCANNER_CACHE"] = tempfile.mkdtemp(prefix="scanner-test-cache-")

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "docs"


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    return EXAMPLES


@pytest.fixture(scope="session")
def local_engine():
    """One in-process engine for the session, so each model loads once."""
    from scanner.engine import LocalEngine

    engine = LocalEngine()
    yield engine
    engine.close()


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


class FakeScores:
    """Stands in for a local engine's cross-encoder with a pure function of the two texts (their word overlap),
    and counts the pairs it scores: for tests of the plumbing around the model, not of the model. Everything
    else (reading, embedding) is the real local engine's."""

    def __new__(cls):
        from scanner.engine import LocalEngine

        class _Engine(LocalEngine):
            def __init__(self) -> None:
                super().__init__()
                self.scored: list[tuple[str, str]] = []

            def score(self, a, b, config):
                import numpy as np

                self.scored += list(zip(a, b, strict=True))
                return np.array([len(set(x.split()) & set(y.split())) / len(set(x.split()) | set(y.split()))
                                 for x, y in zip(a, b, strict=True)], dtype=np.float32)

        return _Engine()


TOPICS = ["river", "mountain", "library", "engine", "garden", "harbour", "violin", "desert", "comet", "bakery"]


def fake_data(root: Path, pairs_per_file: int = 30) -> Path:
    """A shared/data look-alike: every file the readers expect, with distinct made-up sentences."""
    n = 0

    def rows(count: int) -> list[tuple[str, str, int]]:
        nonlocal n
        out = []
        for _ in range(count):
            t = TOPICS[n % len(TOPICS)]
            a = f"The old {t} number {n} was admired by visitors from the {n % 7}th district for many years."
            b = (f"For many years visitors from the {n % 7}th district admired old {t} number {n}." if n % 2 else
                 f"The old district number {n} was admired by visitors from the {t} for many years.")
            out.append((a, b, n % 2))
            n += 1
        return out

    for sub, name in [("paws-wiki", "dev.tsv"), ("paws-wiki", "test.tsv"), ("paws-qqp", "train.tsv"),
                      ("paws-qqp", "dev_and_test.tsv")]:
        (root / sub).mkdir(parents=True, exist_ok=True)
        body = "".join(f"{i}\t{a}\t{b}\t{label}\n" for i, (a, b, label) in enumerate(rows(pairs_per_file)))
        (root / sub / name).write_text("id\tsentence1\tsentence2\tlabel\n" + body, encoding="utf-8")
    (root / "mrpc").mkdir(exist_ok=True)
    for split in ("train", "test"):
        body = "".join(f"{label}\t{i}\t{i}\t{a}\t{b}\n" for i, (a, b, label) in enumerate(rows(pairs_per_file)))
        (root / "mrpc" / f"msr_paraphrase_{split}.txt").write_text(
            "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n" + body, encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A made-up stand-in for ../shared/data, so pipeline tests never depend on the real data sets."""
    return fake_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def hashing_index(tmp_path_factory, examples_dir) -> Path:
    """A reference index of ``examples/docs/sources`` built with the hashing embedder (no model); tests only read
    it (``--against``, search, the service, the MLflow flavour)."""
    from scanner.index import update_index
    from scanner.scanning import ScanConfig

    where = tmp_path_factory.mktemp("hashing-index") / "index"
    update_index([examples_dir / "sources"], where, ScanConfig.from_options(embedder="hashing"))
    return where


@pytest.fixture(scope="session")
def tiny_verifier(tmp_path_factory) -> Path:
    """A tiny randomly initialised DeBERTa-v2 with a two-label head (like the NLI base the verifier is trained
    from) and the shipped verifier's tokenizer: real training and loading code, in seconds."""
    import shutil

    import torch
    from transformers import AutoTokenizer, DebertaV2Config, DebertaV2ForSequenceClassification

    from scanner.verify import DEFAULT_CROSS_ENCODER

    folder = tmp_path_factory.mktemp("tiny-verifier")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(DEFAULT_CROSS_ENCODER) / name, folder / name)
    vocab = len(AutoTokenizer.from_pretrained(folder, local_files_only=True))
    torch.manual_seed(0)
    config = DebertaV2Config(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                             intermediate_size=64, type_vocab_size=0, relative_attention=True, position_buckets=32,
                             pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm", share_att_key=True,
                             position_biased_input=False, pooler_hidden_size=32, num_labels=2)
    DebertaV2ForSequenceClassification(config).save_pretrained(folder)
    return folder


# --- the fast tier: tests are marked slow by their measured duration --------------------------------------------

#: per-test seconds (setup + call + teardown) measured on the project's 2-core machine by a full run with
#: ``pytest --record-durations``; ``make test-fast`` (``pytest -m "not slow"``) runs the tests measured below
#: SLOW_SECONDS, and a test not measured yet counts as slow until the next recording
DURATIONS = Path(__file__).resolve().parent / "durations.json"
SLOW_SECONDS = 2.0


def pytest_addoption(parser):
    parser.addoption("--record-durations", action="store_true",
                     help=f"write every test's measured seconds to {DURATIONS.name} (run the whole suite)")


def pytest_collection_modifyitems(config, items):
    import json

    measured = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    for item in items:
        seconds = measured.get(item.nodeid)
        if seconds is None or seconds >= SLOW_SECONDS:
            item.add_marker(pytest.mark.slow)


_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    _SECONDS[report.nodeid] = _SECONDS.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session, exitstatus):
    import json

    if session.config.getoption("--record-durations") and _SECONDS:
        DURATIONS.write_text(json.dumps({k: round(v, 2) for k, v in sorted(_SECONDS.items())}, indent=1) + "\n")
