"""Int8 storage of a model's weight matrices, so the shipped cross-encoder is small in the repository and its
history, and loads back as an ordinary float transformers model.

Each 2-D weight (every ``nn.Linear`` and the embedding tables) is stored as int8 with one float16 scale per
row (``q = round(w / s)``, ``s = max |w_row| / 127``); everything else (biases, layer norms) as float16. The
file is a plain safetensors file, ``model.int8.safetensors``: a matrix ``W`` is ``W`` (int8) plus
``W.row_scale`` (float16). Per-row scales keep the rounding error of each output unit at about 0.4% of its
largest weight; the evaluation of the shipped model is run on the weights as loaded back from this file.
Only storage is int8: the model computes in float32 on CPU and float16 on GPU, as any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

INT8_WEIGHTS = "model.int8.safetensors"
SCALE_SUFFIX = ".row_scale"


def quantize_rows(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The int8 form of a state dict: 2-D float tensors as int8 rows with a float16 scale each, the rest float16."""
    out: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        value = value.detach().float().cpu()
        if value.dim() == 2:
            scale = (value.abs().amax(dim=1) / 127.0).clamp(min=1e-12).half()
            out[name] = torch.round(value / scale.float().unsqueeze(1)).clamp(-127, 127).to(torch.int8).contiguous()
            out[name + SCALE_SUFFIX] = scale.contiguous()
        else:
            out[name] = value.half().contiguous()
    return out


def dequantize_rows(stored: dict[str, torch.Tensor], dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """The float state dict back from ``quantize_rows``'s output."""
    state: dict[str, torch.Tensor] = {}
    for name, value in stored.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        scale = stored.get(name + SCALE_SUFFIX)
        state[name] = (value.float() * scale.float().unsqueeze(1) if scale is not None else value.float()).to(dtype)
    return state


def save_int8(net: torch.nn.Module, folder: str | Path) -> Path:
    """Write ``net``'s weights to ``folder/model.int8.safetensors`` (its config is saved by the caller)."""
    from safetensors.torch import save_file

    path = Path(folder) / INT8_WEIGHTS
    save_file(quantize_rows(net.state_dict()), str(path), metadata={"format": "pt", "storage": "int8-rows"})
    return path


def load_int8_sequence_classifier(folder: Path) -> Any:
    """A transformers sequence-classification model built from ``folder/config.json`` (no custom code) with the
    weights of ``folder/model.int8.safetensors``."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    net = AutoModelForSequenceClassification.from_config(config)
    state = dequantize_rows(load_file(str(folder / INT8_WEIGHTS)))
    missing, unexpected = net.load_state_dict(state, strict=False)
    # tied or derived buffers (position ids) may be absent from the file; real weights may not
    if unexpected or [m for m in missing if not m.endswith("position_ids")]:
        raise ValueError(f"{folder / INT8_WEIGHTS} does not fit its config.json: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")
    return net
