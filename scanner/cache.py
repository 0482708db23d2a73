"""Embedding cache: sentence vectors keyed by a hash of the exact text and the embedding model's fingerprint.

A scan embeds only what the cache does not hold, and writes what it embeds in shards as it goes, each shard
atomically (temporary file + rename). A run killed half-way therefore keeps every finished shard, and the
next run computes only the rest; since the vectors are the ones the model produced, the final report is the
same as an uninterrupted run's.

Layout: ``CACHE_DIR/embeddings/<model fingerprint>/<shard>.npz`` with arrays ``keys`` (uint64) and
``vectors`` (float32). Delete the folder to clear it. ``embed_with_cache`` is how every run (scan, index
update, scan against an index, search) embeds sentences through the cache.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from scanner.embed import HASHING, resolve_embedder
from scanner.modelfiles import model_fingerprint

if TYPE_CHECKING:
    from scanner.engine import Engine
    from scanner.scanning import ScanConfig


def default_cache_dir() -> Path:
    """``$PARAPHRASE_SCANNER_CACHE``, else ``$XDG_CACHE_HOME/paraphrase-scanner``, else ``~/.cache/paraphrase-scanner``."""
    if os.environ.get("PARAPHRASE_SCANNER_CACHE"):
        return Path(os.environ["PARAPHRASE_SCANNER_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "paraphrase-scanner"


def content_key(text: str) -> int:
    """64-bit hash of the exact text (not normalised: the embedder sees case and spacing)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


#: a temporary shard this old was left by a killed run (a live run renames its shard within seconds)
STALE_SECONDS = 3600


def _remove_stale_temporaries(folder: Path) -> None:
    import time

    for tmp in folder.glob(".shard-*.npz"):
        try:
            if time.time() - tmp.stat().st_mtime > STALE_SECONDS:
                tmp.unlink()
        except OSError:  # removed meanwhile by another run
            pass


class EmbeddingCache:
    """Vectors of one embedding model. Reads every shard once when opened; ``add`` writes a new shard."""

    def __init__(self, root: str | os.PathLike[str], model_fingerprint: str) -> None:
        self.folder = Path(root) / "embeddings" / model_fingerprint
        self._vectors: dict[int, np.ndarray] = {}
        if self.folder.is_dir():
            _remove_stale_temporaries(self.folder)
            # finished shards only: ".shard-*" files are being written by a run (maybe a concurrent one)
            for shard in sorted(self.folder.glob("[!.]*.npz")):
                try:
                    with np.load(shard) as data:
                        for key, vec in zip(data["keys"].tolist(), data["vectors"], strict=True):
                            self._vectors[key] = vec
                except (OSError, ValueError, KeyError):
                    shard.unlink(missing_ok=True)  # a damaged shard is recomputed, never trusted

    def __len__(self) -> int:
        return len(self._vectors)

    def lookup(self, keys: Sequence[int]) -> tuple[np.ndarray, np.ndarray | None]:
        """(found mask, vectors for the found keys in order) for ``keys``."""
        found = np.fromiter((k in self._vectors for k in keys), dtype=bool, count=len(keys))
        if not found.any():
            return found, None
        return found, np.stack([self._vectors[k] for k, f in zip(keys, found, strict=True) if f])

    def add(self, keys: Sequence[int], vectors: np.ndarray) -> None:
        """Store vectors for ``keys`` as one new shard, atomically."""
        if not len(keys):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        arr_keys = np.asarray(keys, dtype=np.uint64)
        arr_vecs = np.asarray(vectors, dtype=np.float32)
        fd, tmp = tempfile.mkstemp(prefix=".shard-", suffix=".npz", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, keys=arr_keys, vectors=arr_vecs)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.folder / f"{uuid.uuid4().hex}.npz")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for key, vec in zip(arr_keys.tolist(), arr_vecs, strict=True):
            self._vectors[key] = vec


def embed_with_cache(texts: list[str], config: ScanConfig, engine: Engine) -> tuple[np.ndarray, int]:
    """Vectors for ``texts``: cached ones reused, the rest embedded and cached chunk by chunk as they finish.

    The cache is not used with ``config.cache`` off, nor for the hashing embedder.
    Returns (vectors, how many came from the cache)."""
    if not config.cache or config.embed.model == HASHING or not texts:
        return engine.embed(texts, config.embed), 0
    root = config.cache_dir or default_cache_dir()
    model = resolve_embedder(config.embed.model)
    cache = EmbeddingCache(root, f"{Path(model).name}-{model_fingerprint(model)}")
    keys = [content_key(t) for t in texts]
    found, hits = cache.lookup(keys)
    missing = np.flatnonzero(~found)

    def store(rows: np.ndarray, vecs: np.ndarray) -> None:
        cache.add([keys[missing[r]] for r in rows], vecs)

    fresh = engine.embed([texts[i] for i in missing], config.embed, on_chunk=store) if len(missing) else None
    dim = hits.shape[1] if hits is not None else fresh.shape[1]  # type: ignore[union-attr]
    out = np.empty((len(texts), dim), dtype=np.float32)
    if hits is not None:
        out[found] = hits
    if fresh is not None:
        out[missing] = fresh
    return out, int(found.sum())
