"""Device choice for the model stages: CUDA with fp16 when present, CPU with fp32 otherwise."""

from __future__ import annotations

from typing import Literal

import torch

from scanner.errors import ConfigError

DeviceName = Literal["auto", "cpu", "cuda"]


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``auto``/``cpu``/``cuda`` (or ``cuda:N``) into a torch device, checking that it exists."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name} was asked for but torch sees no CUDA device; use --device auto or cpu")
        return torch.device(name)
    raise ConfigError(f"unknown device {name!r}: expected auto, cpu or cuda")


def dtype_for(device: torch.device) -> torch.dtype:
    """fp16 on GPUs (tensor cores, half the memory); fp32 on CPU, where fp16 matmuls are slow."""
    return torch.float16 if device.type == "cuda" else torch.float32


#: padded tokens per batch when none is given: on a CPU, activations that stay in the caches (a 2,048-token
#: MiniLM batch embedded 20% faster here than an 8,192-token one, README "Performance"); on a GPU, wide batches
CPU_BATCH_TOKENS = 2048
GPU_BATCH_TOKENS = 16384


def batch_tokens(device: torch.device, max_tokens: int | None) -> int:
    """The padded-token budget of a batch: ``max_tokens`` if given, else the default for the device."""
    if max_tokens is not None:
        return max_tokens
    return GPU_BATCH_TOKENS if device.type == "cuda" else CPU_BATCH_TOKENS


def quiet_model_logs() -> None:
    """Silence the per-load progress bars and notices of transformers; the scanner reports progress itself."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
