"""DeBERTa's attention bias over the relative positions a batch uses: the same logits as transformers' own."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, DebertaV2Config, DebertaV2ForSequenceClassification

from scanner.relative_attention import compact_relative_attention


def _deberta(**overrides) -> DebertaV2ForSequenceClassification:
    torch.manual_seed(0)
    settings = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                "intermediate_size": 64, "type_vocab_size": 0, "relative_attention": True, "position_buckets": 8,
                "max_relative_positions": 64, "pos_att_type": ["p2c", "c2p"], "norm_rel_ebd": "layer_norm",
                "share_att_key": True, "position_biased_input": False, "pooler_hidden_size": 32, "num_labels": 2}
    return DebertaV2ForSequenceClassification(DebertaV2Config(**{**settings, **overrides})).eval()


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
    net, fast = _deberta().train(), _deberta().train()
    compact_relative_attention(fast)
    ids = torch.randint(5, 100, (2, 20))
    for model in (net, fast):
        torch.manual_seed(2)  # the same dropout masks
        model(input_ids=ids, labels=torch.tensor([0, 1])).loss.backward()
    for (name, p), q in zip(net.named_parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-6, msg=name)


def test_other_models_are_left_as_they_are():
    bert = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=32))
    assert compact_relative_attention(bert) == 0
    assert compact_relative_attention(_deberta(relative_attention=False)) == 0
