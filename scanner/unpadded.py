"""DeBERTa-v2/v3's per-token layers computed on the real tokens of a batch only, not on its padding.

A batch of sentence pairs is padded to its longest pair, and transformers runs every layer over the padding too.
Most of a layer's work is per token: the query, key and value projections, the attention's output projection
and the feed-forward block (all of its matrix products but the attention's own, which stay on the padded batch,
where attention needs them). A batch of 8 pairs in arrival order holds about 1.4 times the tokens
its pairs have (PAWS-Wiki test: 1.28 for 4, 1.39 for 8, 1.49 for 16); length-sorted batches, as a scan makes,
about 1.04. ``unpadded_layer_forward`` gathers the real tokens of a layer's input, projects them to queries,
keys and values and scatters those back for the attention; it gathers the real tokens of the attention's result,
runs the per-token layers on them, and scatters them back, with zeros at the padding (only where padding is more
than a tenth of the batch):
padding positions are masked out of every attention (probability exactly 0), so what they hold never reaches a
real token, and the pooled first token's logits are those of transformers' own forward (to about 1e-6: matrix
products over fewer rows may round differently).

``unpadded_feed_forward`` installs it on a loaded model's layers. A model of another architecture, with a
convolution layer (DeBERTa-v2 with ``conv_kernel_size``), or from a transformers version whose layer differs
from the one this was written against, is left as it is.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any

import torch

#: what the replacement relies on; a layer without all of these keeps transformers' own forward
_NEEDED = ("attention", "intermediate", "output")
#: the attention's projections of the layer's input, computed on its real tokens
_PROJECTIONS = ("query_proj", "key_proj", "value_proj")
#: batches whose real tokens are more than this share of their positions run padded: on length-sorted batches
#: (about 4% padding) gathering and scattering the tokens cost more than the padding (measured: docs/serving.md)
WORTH_IT = 0.9


@dataclass
class _Rows:
    """A layer input's real tokens, while its attention runs: ``source`` (batch, length, hidden), the flat
    positions of its real tokens (``keep``) and those tokens' states (``packed``: real tokens x hidden)."""

    source: torch.Tensor
    keep: torch.Tensor
    packed: torch.Tensor


def unpadded_projection(self: Any, x: torch.Tensor) -> torch.Tensor:
    """``nn.Linear.forward`` of an attention projection (bound to it as ``self``): on the input of the layer that
    ``unpadded_layer_forward`` is running, only its real tokens are projected (the padding gets zeros); any
    other input (the relative-position embeddings, which the attention projects too) goes through as it is."""
    rows: _Rows | None = getattr(self, "_rows", None)
    if rows is None or x is not rows.source:
        return torch.nn.functional.linear(x, self.weight, self.bias)
    packed = torch.nn.functional.linear(rows.packed, self.weight, self.bias)
    out = packed.new_zeros(x.shape[0] * x.shape[1], packed.size(-1)).index_copy_(0, rows.keep, packed)
    return out.view(*x.shape[:-1], packed.size(-1))


def unpadded_layer_forward(self: Any, hidden_states: torch.Tensor, attention_mask: torch.Tensor,
                           query_states: torch.Tensor | None = None, relative_pos: torch.Tensor | None = None,
                           rel_embeddings: torch.Tensor | None = None,
                           output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``DebertaV2Layer.forward`` (bound to the layer as ``self``) with the query, key, value and attention output
    projections and the feed-forward block on the real tokens only. ``attention_mask`` is the encoder's (batch, 1, length, length)
    mask, whose diagonal marks the real tokens. In training (dropout), and when attention weights are asked
    for, transformers' own forward runs."""
    real = attention_mask[:, 0].diagonal(dim1=-2, dim2=-1).reshape(-1).bool() if attention_mask.dim() == 4 else None
    # with little to leave out, gathering would cost more than it saves
    if real is None or output_attentions or self.training or int(real.sum()) > WORTH_IT * real.numel():
        return self._padded_forward(hidden_states, attention_mask, query_states=query_states,
                                    relative_pos=relative_pos, rel_embeddings=rel_embeddings,
                                    output_attentions=output_attentions)
    size = hidden_states.size(-1)
    keep = real.nonzero().squeeze(1)
    rows = _Rows(hidden_states, keep, hidden_states.reshape(-1, size).index_select(0, keep))
    attention = self.attention.self
    projections = [getattr(attention, name) for name in _PROJECTIONS if hasattr(getattr(attention, name), "_rows")]
    for projection in projections:
        projection._rows = rows
    try:
        context, _ = attention(hidden_states, attention_mask, False, query_states=query_states,
                               relative_pos=relative_pos, rel_embeddings=rel_embeddings)
    finally:
        for projection in projections:
            projection._rows = None
    residual = rows.packed if query_states is None else query_states.reshape(-1, size).index_select(0, keep)
    attended = self.attention.output(context.reshape(-1, size).index_select(0, keep), residual)
    packed = self.output(self.intermediate(attended), attended)
    out = packed.new_zeros(real.numel(), size).index_copy_(0, keep, packed)
    return out.view(context.shape), None


def unpadded_feed_forward(net: torch.nn.Module) -> int:
    """Install ``unpadded_layer_forward`` on every DeBERTa-v2 layer of ``net``; returns how many. Other models,
    encoders with a convolution layer, and layers that lack what it relies on are left as they are (0)."""
    try:
        from transformers.models.deberta_v2.modeling_deberta_v2 import DebertaV2Encoder, DebertaV2Layer
    except ImportError:
        return 0
    installed = 0
    for encoder in net.modules():
        if not isinstance(encoder, DebertaV2Encoder) or getattr(encoder, "conv", None) is not None:
            continue
        for layer in encoder.layer:
            if isinstance(layer, DebertaV2Layer) and all(hasattr(layer, name) for name in _NEEDED):
                if not hasattr(layer, "_padded_forward"):
                    layer._padded_forward = layer.forward
                    layer.forward = types.MethodType(unpadded_layer_forward, layer)
                    for name in _PROJECTIONS:
                        projection = getattr(layer.attention.self, name, None)
                        if type(projection) is torch.nn.Linear:  # a quantised or adapted one keeps its forward
                            projection._rows = None
                            projection.forward = types.MethodType(unpadded_projection, projection)
                installed += 1
    return installed
