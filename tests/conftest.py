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
