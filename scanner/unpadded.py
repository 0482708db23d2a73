"""DeBERTa-v2/v3's per-token layers computed on the real tokens of a batch only, not on its padding.

A batch of sentence pairs is padded to its longest pair, and transformers runs every layer over the padding too.
Most of a layer's work is per token: the attention's output projection and the feed-forward block (together
three quarters of its matrix products; the query, key and value projections and the attention itself stay on the
padded batch, where attention needs them). A batch of 8 pairs in arrival order holds about 1.4 times the tokens
its pairs have (PAWS-Wiki test: 1.28 for 4, 1.39 for 8, 1.49 for 16); length-sorted batches, as a scan makes,
about 1.04. ``unpadded_layer_forward`` gathers the real tokens after attention, runs the per-token layers on
them, and scatters them back, with zeros at the padding (only where padding is more than a tenth of the batch):
padding positions are masked out of every attention (probability exactly 0), so what they hold never reaches a
real token, and the pooled first token's logits are those of transformers' own forward (to about 1e-6: matrix
products over fewer rows may round differently).

``unpadded_feed_forward`` installs it on a loaded model's layers. A model of another architecture, with a
convolution layer (DeBERTa-v2 with ``conv_kernel_size``), or from a transformers version whose layer differs
from the one this was written against, is left as it is.
"""

from __future__ import annotations

import types
from typing import Any

import torch

#: what the replacement relies on; a layer without all of these keeps transformers' own forward
_NEEDED = ("attention", "intermediate", "output")
#: batches whose real tokens are more than this share of their positions run padded: on length-sorted batches
#: (about 4% padding) gathering and scattering the tokens cost more than the padding (measured: docs/serving.md)
WORTH_IT = 0.9


def unpadded_layer_forward(self: Any, hidden_states: torch.Tensor, attention_mask: torch.Tensor,
                           query_states: torch.Tensor | None = None, relative_pos: torch.Tensor | None = None,
                           rel_embeddings: torch.Tensor | None = None,
                           output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``DebertaV2Layer.forward`` (bound to the layer as ``self``) with the attention output projection and the
    feed-forward block on the real tokens only. ``attention_mask`` is the encoder's (batch, 1, length, length)
    mask, whose diagonal marks the real tokens. In training (dropout), and when attention weights are asked
    for, transformers' own forward runs."""
    real = attention_mask[:, 0].diagonal(dim1=-2, dim2=-1).reshape(-1).bool() if attention_mask.dim() == 4 else None
    # with little to leave out, gathering would cost more than it saves
    if real is None or output_attentions or self.training or int(real.sum()) > WORTH_IT * real.numel():
        return self._padded_forward(hidden_states, attention_mask, query_states=query_states,
                                    relative_pos=relative_pos, rel_embeddings=rel_embeddings,
                                    output_attentions=output_attentions)
    context, _ = self.attention.self(hidden_states, attention_mask, False, query_states=query_states,
                                     relative_pos=relative_pos, rel_embeddings=rel_embeddings)
    residual = hidden_states if query_states is None else query_states
    size = context.size(-1)
    keep = real.nonzero().squeeze(1)
    attended = self.attention.output(context.reshape(-1, size).index_select(0, keep),
                                     residual.reshape(-1, size).index_select(0, keep))
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
                installed += 1
    return installed
