"""A tiny random DeBERTa-v2 classifier for tests of the verifier's faster layers, and the gradient check they share."""

from __future__ import annotations

import torch
from transformers import DebertaV2Config, DebertaV2ForSequenceClassification


def tiny_deberta(layers: int, **overrides) -> DebertaV2ForSequenceClassification:
    """DeBERTa-v3's layout (shared keys, log buckets) at toy size, in eval mode; the same weights every call."""
    torch.manual_seed(0)
    settings = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": layers, "num_attention_heads": 4,
                "intermediate_size": 64, "type_vocab_size": 0, "relative_attention": True, "position_buckets": 8,
                "max_relative_positions": 64, "pos_att_type": ["p2c", "c2p"], "norm_rel_ebd": "layer_norm",
                "share_att_key": True, "position_biased_input": False, "pooler_hidden_size": 32, "num_labels": 2}
    return DebertaV2ForSequenceClassification(DebertaV2Config(**{**settings, **overrides})).eval()


def assert_same_gradients(net: torch.nn.Module, fast: torch.nn.Module, inputs: dict[str, torch.Tensor],
                          labels: torch.Tensor, rtol: float, atol: float) -> None:
    """One training step's gradients of ``fast`` are those of ``net`` (the same dropout masks in both)."""
    net.train(), fast.train()
    for model in (net, fast):
        torch.manual_seed(2)
        model(**inputs, labels=labels).loss.backward()
    for (name, p), q in zip(net.named_parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=rtol, atol=atol, msg=name)
