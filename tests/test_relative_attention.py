"""DeBERTa's attention bias over the relative positions a batch uses: the same logits as transformers' own."""

from __future__ import annotations

import pytest
import torch
from tiny_deberta import assert_same_gradients, tiny_deberta
from transformers import BertConfig, BertForSequenceClassification, DebertaV2ForSequenceClassification

from scanner.relative_attention import compact_relative_attention


def _deberta(**overrides) -> DebertaV2ForSequenceClassification:
    return tiny_deberta(2, **overrides)


@pytest.mark.parametrize("overrides", [
    {},                                                       # DeBERTa-v3's layout: shared keys, log buckets
    {"share_att_key": False},                                 # separate position projections
    {"pos_att_type": ["c2p"]},                                # one of the two terms
    {"position_buckets": -1, "max_relative_positions": 16},   # no buckets: positions clipped at the span
])
def test_the_same_logits_as_transformers_own_attention(overrides):
    net = _deberta(**overrides)
    torch.manual_seed(1)
    # lengths below and beyond the bucket span (8 buckets: positions past 4 are log-bucketed), with padding
    ids = torch.randint(5, 100, (3, 40))
    mask = torch.ones_like(ids)
    mask[1, 25:] = 0
    mask[2, 6:] = 0
    inputs = [{"input_ids": ids[:, :n], "attention_mask": mask[:, :n]} for n in (3, 6, 40)]
    with torch.inference_mode():
        before = [net(**x).logits for x in inputs]
        assert compact_relative_attention(net) == 2
        assert compact_relative_attention(net) == 2  # installing twice changes nothing
        after = [net(**x).logits for x in inputs]
    for x, y in zip(before, after, strict=True):
        torch.testing.assert_close(y, x, rtol=0, atol=1e-6)


def test_gradients_flow_as_through_transformers_own_attention():
    net, fast = _deberta(), _deberta()
    compact_relative_attention(fast)
    ids = torch.randint(5, 100, (2, 20))
    assert_same_gradients(net, fast, {"input_ids": ids}, torch.tensor([0, 1]), rtol=1e-5, atol=1e-6)


def test_other_models_are_left_as_they_are():
    bert = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=32))
    assert compact_relative_attention(bert) == 0
    assert compact_relative_attention(_deberta(relative_attention=False)) == 0
