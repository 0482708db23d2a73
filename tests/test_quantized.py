"""Int8 row storage: the round trip error is bounded by half a step of each row, and a model saved int8 loads
back as an ordinary transformers model with the same outputs (up to that rounding)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scanner.quantized import INT8_WEIGHTS, dequantize_rows, load_int8_sequence_classifier, quantize_rows, save_int8


def test_round_trip_error_is_at_most_half_a_step_per_row():
    torch.manual_seed(0)
    state = {"w": torch.randn(7, 33) * torch.linspace(0.01, 10, 7).unsqueeze(1), "b": torch.randn(7)}
    stored = quantize_rows(state)
    assert stored["w"].dtype == torch.int8 and stored["w.row_scale"].dtype == torch.float16
    assert stored["b"].dtype == torch.float16
    back = dequantize_rows(stored)
    step = stored["w.row_scale"].float().unsqueeze(1)
    assert torch.all((back["w"] - state["w"]).abs() <= step / 2 + 1e-3 * state["w"].abs().amax(1, keepdim=True))
    torch.testing.assert_close(back["b"], state["b"], atol=5e-3, rtol=1e-3)


def test_a_zero_row_stays_zero():
    back = dequantize_rows(quantize_rows({"w": torch.zeros(2, 4)}))
    assert torch.count_nonzero(back["w"]) == 0


def tiny_deberta():
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    torch.manual_seed(1)
    config = DebertaV2Config(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                             intermediate_size=64, max_position_embeddings=64, type_vocab_size=0,
                             relative_attention=True, position_buckets=16, pos_att_type=["p2c", "c2p"],
                             norm_rel_ebd="layer_norm", share_att_key=True, position_biased_input=False,
                             pooler_hidden_size=32, num_labels=1)
    return DebertaV2ForSequenceClassification(config).eval()


def test_a_saved_model_loads_back_with_the_same_logits(tmp_path):
    net = tiny_deberta()
    net.config.save_pretrained(tmp_path)
    save_int8(net, tmp_path)
    assert (tmp_path / INT8_WEIGHTS).is_file() and not (tmp_path / "model.safetensors").exists()
    back = load_int8_sequence_classifier(tmp_path).eval()
    ids = torch.tensor([[1, 5, 9, 2, 7, 2], [1, 4, 4, 2, 8, 2]])
    with torch.inference_mode():
        want, got = net(input_ids=ids).logits, back(input_ids=ids).logits
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=0.05 * float(want.abs().max()) + 1e-3)


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    net = tiny_deberta()
    net.config.save_pretrained(tmp_path)
    save_int8(net, tmp_path)
    net.config.num_hidden_layers = 3
    net.config.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="does not fit its config"):
        load_int8_sequence_classifier(tmp_path)
