"""DeBERTa's per-token layers on the real tokens only: the same logits as transformers' own forward."""

from __future__ import annotations

import pytest
import torch
from tiny_deberta import assert_same_gradients, tiny_deberta
from transformers import BertConfig, BertForSequenceClassification, DebertaV2ForSequenceClassification

from scanner.relative_attention import compact_relative_attention
from scanner.unpadded import unpadded_feed_forward


def _deberta(**overrides) -> DebertaV2ForSequenceClassification:
    return tiny_deberta(3, **overrides)


def _batches() -> list[dict[str, torch.Tensor]]:
    """Pairs of very different lengths (most of the batch is padding), one unpadded batch, one of one pair."""
    torch.manual_seed(1)
    ids = torch.randint(5, 100, (4, 40))
    mask = torch.ones_like(ids)
    mask[1, 25:] = 0
    mask[2, 3:] = 0
    mask[3, 12:] = 0
    return [{"input_ids": ids, "attention_mask": mask}, {"input_ids": ids[:1], "attention_mask": mask[:1]},
            {"input_ids": ids[:3, :20], "attention_mask": mask[:3, :20]}]


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("overrides", [{}, {"relative_attention": False, "position_biased_input": True}])
def test_the_same_logits_as_transformers_own_forward(compact, overrides):
    net = _deberta(**overrides)
    with torch.inference_mode():
        before = [net(**x).logits for x in _batches()]
        if compact:
            compact_relative_attention(net)
        assert unpadded_feed_forward(net) == 3
        assert unpadded_feed_forward(net) == 3  # installing twice changes nothing
        after = [net(**x).logits for x in _batches()]
    for x, y in zip(before, after, strict=True):
        torch.testing.assert_close(y, x, rtol=0, atol=1e-5)


def test_padding_is_really_left_out(monkeypatch):
    """The query, key and value projections and the feed-forward block compute only the real tokens (13 + 25 + 3 +
    12 = 53 rows, not 4 x 40 = 160); the query and key projections also project the relative-position embeddings,
    as they are (DeBERTa-v3 shares them between tokens and positions)."""
    net = _deberta()
    unpadded_feed_forward(net)
    attention = net.deberta.encoder.layer[0].attention.self
    names = {id(getattr(attention, f"{n}_proj").weight): n for n in ("query", "key", "value")}
    names[id(net.deberta.encoder.layer[0].intermediate.dense.weight)] = "intermediate"
    rows: dict[str, list[int]] = {n: [] for n in names.values()}
    linear = torch.nn.functional.linear

    def counted(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        if id(weight) in names:
            rows[names[id(weight)]].append(x.reshape(-1, x.size(-1)).shape[0])
        return linear(x, weight, bias)

    monkeypatch.setattr(torch.nn.functional, "linear", counted)
    batch = _batches()[0]
    batch["attention_mask"][0, 13:] = 0
    with torch.inference_mode():
        net(**batch)
    positions = 2 * 8  # transformers' own attention projects all 2 x position_buckets relative-position embeddings
    assert rows == {"query": [53, positions], "key": [53, positions], "value": [53], "intermediate": [53]}


def test_attention_weights_when_asked_for_and_gradients_come_from_transformers_own_path():
    net, fast = _deberta(), _deberta()
    unpadded_feed_forward(fast)
    batch = _batches()[0]
    with torch.inference_mode():
        a, b = net(**batch, output_attentions=True), fast(**batch, output_attentions=True)
    torch.testing.assert_close(b.attentions[-1], a.attentions[-1])
    assert_same_gradients(net, fast, batch, torch.tensor([0, 1, 1, 0]), rtol=1e-4, atol=1e-5)


def test_other_models_and_layers_are_left_as_they_are():
    bert = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=32))
    assert unpadded_feed_forward(bert) == 0
    assert unpadded_feed_forward(_deberta(conv_kernel_size=3)) == 0  # a convolution reads the padded layer output
