"""Where a model's files are, and whether they are safe to load.

Models are loaded offline from a local folder (or a Hugging Face id already in the local cache), from
safetensors only: a folder whose weights exist only in a pickle format (``pytorch_model.bin``, ``*.pt``...)
is refused before any loader sees it, because unpickling can run arbitrary code. Custom model code is never
run (``trust_remote_code=False`` at every load). ``preflight`` checks both models of a scan before any work
starts, so a wrong name fails in a second, not after the embeddings are done. ``model_fingerprint`` names the
exact weights a report, an index or a cache entry was made with.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from scanner.errors import ModelLoadError

#: file types that torch/transformers/sentence-transformers would unpickle
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"})


def looks_like_path(name: str) -> bool:
    """A hub id is ``name`` or ``owner/name``; anything else (absolute, ./, ~, deeper) is a local path."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or Path(name).exists()


def locate_model(name: str, role: str, option: str) -> Path:
    """The local folder of model ``name``: a path, or a Hugging Face id found in the local cache (no network).

    ``role`` ("embedder", "cross-encoder") and ``option`` ("--embedder") word the error message.
    """
    if looks_like_path(name):
        folder = Path(name).expanduser()
        if not folder.is_dir():
            raise ModelLoadError(f"{role} folder {name!r} does not exist: pass {option} with a local model folder")
        return folder
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError, an invalid id, a damaged cache
        raise ModelLoadError(
            f"{role} {name!r} is neither a local folder nor in the local Hugging Face cache, and models are never "
            f"downloaded: pass {option} with the path of a local model folder (for example one saved with "
            "save_pretrained, holding config.json, model.safetensors and the tokenizer)"
        ) from exc


def check_safe_weights(folder: Path, role: str, option: str) -> None:
    """Refuse a model folder whose weights are not all available as safetensors.

    Every folder holding a pickle-format weight file must also hold a ``.safetensors`` file (the loaders then
    take that one and never open the pickle; ``training_args.bin`` beside the safetensors is never loaded),
    and the model must have at least one ``.safetensors`` file.
    """
    files = [p for p in folder.rglob("*") if p.is_file()]
    safe_dirs = {p.parent for p in files if p.suffix == ".safetensors"}
    pickled = sorted(p for p in files if p.suffix in PICKLE_SUFFIXES and p.parent not in safe_dirs)
    if pickled or not safe_dirs:
        what = f"{pickled[0].relative_to(folder)} is a pickle file" if pickled else "it has no .safetensors weights"
        raise ModelLoadError(
            f"refusing to load {role} {str(folder)!r}: {what}, and the scanner loads weights from safetensors only "
            "(unpickling can run code). Convert it once with transformers (model.save_pretrained(folder, "
            f"safe_serialization=True)) in a trusted environment, then pass {option} with that folder"
        )


def safe_model_folder(name: str, role: str, option: str) -> Path:
    """``locate_model`` then ``check_safe_weights``: the folder to hand to a loader."""
    folder = locate_model(name, role, option)
    check_safe_weights(folder, role, option)
    return folder


@functools.lru_cache(maxsize=16)
def model_fingerprint(name: str) -> str:
    """sha256 of a model's weight files (the first 16 hex digits), so a report says exactly which model ran."""
    if name == "hashing":  # scanner.embed.HASHING, the built-in embedder: no files (embed imports this module)
        return "hashing-v1"
    folder = Path(name)
    files = sorted(folder.rglob("*.safetensors")) if folder.is_dir() else []
    if not files:
        return "unknown"
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def preflight(embedder: str | None, cross_encoder: str) -> None:
    """Check, before a scan starts, that both models exist locally and are safe to load.

    ``embedder`` None means no embedding model (the hashing embedder). The default embedder is resolved by
    the caller to the packaged copy.
    """
    if embedder is not None:
        safe_model_folder(embedder, "embedder", "--embedder")
    safe_model_folder(cross_encoder, "cross-encoder", "--cross-encoder")
