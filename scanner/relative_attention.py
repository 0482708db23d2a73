"""DeBERTa-v2/v3's disentangled attention, computed over the relative positions a batch uses.

DeBERTa adds to each attention score a content-to-position and a position-to-content term. transformers
computes both against every relative-position embedding the model has (512 rows for DeBERTa-v3: buckets
-256..255), copies the projected embeddings once per sentence of the batch, and then gathers the few columns
the batch's positions point to. A pair of 60 tokens uses 119 of the 512 rows. ``relative_attention_bias``
projects only the rows between the smallest and the largest position the batch uses and broadcasts them over
the batch instead of copying: the same dot products, so the same scores (bit for bit on the shipped verifier),
in about 60% of the time on CPU.

``compact_relative_attention`` installs it on a loaded model's attention modules. A model of another
architecture, or a transformers version whose attention module differs from the one this was written against,
is left as it is.
"""

from __future__ import annotations

import types
from typing import Any

import torch

#: what the replacement relies on; a module without all of these keeps transformers' own method
_NEEDED = ("pos_ebd_size", "share_att_key", "pos_att_type", "num_attention_heads", "position_buckets",
           "max_relative_positions", "transpose_for_scores", "query_proj", "key_proj", "disentangled_attention_bias")


def relative_attention_bias(self: Any, query_layer: torch.Tensor, key_layer: torch.Tensor,
                            relative_pos: torch.Tensor | None, rel_embeddings: torch.Tensor,
                            scale_factor: int) -> torch.Tensor:
    """The c2p + p2c attention bias of ``DisentangledSelfAttention`` (bound to the module as ``self``), from
    the relative-position embeddings the batch's positions use. Shapes as transformers': ``query_layer`` and
    ``key_layer`` (batch x heads, length, head size); returns (batch x heads, length, length)."""
    from transformers.models.deberta_v2.modeling_deberta_v2 import build_relative_position, scaled_size_sqrt

    if key_layer.size(-2) != query_layer.size(-2) or not {"c2p", "p2c"} & set(self.pos_att_type):
        # not self-attention, or no position terms: transformers' own path
        return self._full_attention_bias(query_layer, key_layer, relative_pos, rel_embeddings, scale_factor)
    if relative_pos is None:
        relative_pos = build_relative_position(query_layer, key_layer, bucket_size=self.position_buckets,
                                               max_position=self.max_relative_positions)
    length = query_layer.size(-2)
    relative_pos = relative_pos.to(device=query_layer.device, dtype=torch.long).reshape(-1, length, length)
    if relative_pos.size(0) != 1:  # positions per sentence: transformers' own path
        return self._full_attention_bias(query_layer, key_layer, relative_pos, rel_embeddings, scale_factor)
    span = self.pos_ebd_size
    c2p_pos = torch.clamp(relative_pos[0] + span, 0, span * 2 - 1)
    p2c_pos = torch.clamp(-relative_pos[0] + span, 0, span * 2 - 1)
    lo = int(torch.minimum(c2p_pos.min(), p2c_pos.min()))
    hi = int(torch.maximum(c2p_pos.max(), p2c_pos.max()))
    rel = rel_embeddings[lo : hi + 1, :].unsqueeze(0)

    heads = self.num_attention_heads
    batch = query_layer.size(0) // heads
    head_size = query_layer.size(-1)
    scale = scaled_size_sqrt(query_layer, scale_factor).to(dtype=query_layer.dtype)
    score = torch.zeros((), dtype=query_layer.dtype, device=query_layer.device)
    if "c2p" in self.pos_att_type:
        pos_key = self.transpose_for_scores(self.key_proj(rel) if self.share_att_key else self.pos_key_proj(rel), heads)
        c2p = torch.matmul(query_layer.view(batch, heads, length, head_size), pos_key.transpose(-1, -2).unsqueeze(0))
        score = score + torch.gather(c2p, -1, (c2p_pos - lo).expand(batch, heads, length, length)) / scale
    if "p2c" in self.pos_att_type:
        pos_query = self.transpose_for_scores(
            self.query_proj(rel) if self.share_att_key else self.pos_query_proj(rel), heads)
        p2c = torch.matmul(key_layer.view(batch, heads, length, head_size), pos_query.transpose(-1, -2).unsqueeze(0))
        score = score + torch.gather(p2c, -1, (p2c_pos - lo).expand(batch, heads, length, length)).transpose(-1, -2) / scale
    return score.reshape(batch * heads, length, length)


def compact_relative_attention(net: torch.nn.Module) -> int:
    """Install ``relative_attention_bias`` on every DeBERTa-v2 attention module of ``net``; returns how many.
    Other models, and modules that lack what it relies on, are left as they are (0)."""
    try:  # the helpers relative_attention_bias calls, too: a transformers without them keeps its own method
        from transformers.models.deberta_v2.modeling_deberta_v2 import (  # noqa: F401
            DisentangledSelfAttention,
            build_relative_position,
            scaled_size_sqrt,
        )
    except ImportError:
        return 0
    installed = 0
    for module in net.modules():
        if isinstance(module, DisentangledSelfAttention) and all(hasattr(module, name) for name in _NEEDED) \
                and getattr(module, "relative_attention", False):
            if not hasattr(module, "_full_attention_bias"):
                module._full_attention_bias = module.disentangled_attention_bias
                module.disentangled_attention_bias = types.MethodType(relative_attention_bias, module)
            installed += 1
    return installed
