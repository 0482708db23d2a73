"""The shipped cross-encoder: loads offline by default, keeps real paraphrases, rejects word swaps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scanner.errors import ModelLoadError
from scanner.verify import (
    DEFAULT_CROSS_ENCODER,
    CrossEncoderScorer,
    VerifyConfig,
    load_cross_encoder,
    model_threshold,
    paraphrase_probability,
    score_pairs,
)


@pytest.fixture(scope="module")
def scorer():
    return CrossEncoderScorer(VerifyConfig(device="cpu"))


def test_flight_example(scorer):
    threshold = model_threshold(DEFAULT_CROSS_ENCODER)
    a = "I took a flight from New York to Paris."
    same, swapped = scorer.score([a, a], ["I flew to Paris from New York.", "I took a flight from Paris to New York."])
    assert same >= threshold > swapped


def test_a_clause_copied_from_a_renumbered_document_is_reuse_but_swapped_articles_are_not(scorer):
    # Debian's MPL-1.1 and MPL-2.0: the cross-references renumbered and one phrase reworded (0.011 before the
    # references were aligned for the model; 0.981 with them aligned)
    threshold = model_threshold(DEFAULT_CROSS_ENCODER)
    a = ("In the event of termination under Sections 8.1 or 8.2 above, all end user license agreements (excluding "
         "distributors and resellers) which have been validly granted by You or any distributor hereunder prior to "
         "termination shall survive termination.")
    b = ("In the event of termination under Sections 5.1 or 5.2 above, all end user license agreements (excluding "
         "distributors and resellers) which have been validly granted by You or Your distributors under this "
         "License prior to termination shall survive termination.")
    swap = ("Article 12 of the regulation deals with data retention, and Article 15 sets out the right of appeal.",
            "Article 15 of the regulation deals with data retention, and Article 12 sets out the right of appeal.")
    copied, swapped = scorer.score([a, swap[0]], [b, swap[1]])
    assert copied >= threshold > swapped


def test_the_shipped_verifier_scores_with_the_compact_attention_as_with_transformers_own(scorer):
    net, tok = scorer.net, scorer.tokenizer
    modules = [m for m in net.modules() if hasattr(m, "_full_attention_bias")]
    assert len(modules) == net.config.num_hidden_layers
    a = ["I took a flight from New York to Paris.", " ".join(["The council closed the old bridge in May."] * 30)]
    b = ["I flew to Paris from New York.", " ".join(["In May, the old bridge was closed by the council."] * 30)]
    compact = score_pairs(net, tok, a, b)  # the second pair is past the 128 positions where buckets begin
    installed = [m.disentangled_attention_bias for m in modules]
    try:
        for m in modules:
            m.disentangled_attention_bias = m._full_attention_bias
        full = score_pairs(net, tok, a, b)
    finally:
        for m, method in zip(modules, installed, strict=True):
            m.disentangled_attention_bias = method
    np.testing.assert_allclose(compact, full, atol=1e-6)


def test_threshold_recorded_with_the_model():
    assert 0.0 < model_threshold(DEFAULT_CROSS_ENCODER) < 1.0


def test_batching_does_not_change_scores(scorer):
    a = ["Short one here.", "A much longer sentence that goes on and on about rivers, bridges and mills.", "Mid size text."] * 3
    b = ["Another short one.", "A long sentence that talks on and on about mills, rivers and bridges.", "Medium text."] * 3
    together = scorer.score(a, b)
    alone = np.array([scorer.score([x], [y])[0] for x, y in zip(a, b, strict=True)])
    tiny = score_pairs(scorer.net, scorer.tokenizer, a, b, max_tokens=16, batch_size=2)
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(together, tiny, atol=1e-5)


def test_both_orders_is_the_mean_of_the_two_orders_and_symmetric(scorer):
    a = ["The lava cooled into black rock.", "Bees tell the others where the flowers are."]
    b = ["Black rock formed when the lava cooled.", "The flowers are where the bees tell the others."]
    ab, ba = scorer.score(a, b), scorer.score(b, a)
    assert np.abs(ab - ba).max() > 1e-4  # the model alone is not symmetric, so the option does something
    both = score_pairs(scorer.net, scorer.tokenizer, a, b, both_orders=True)
    np.testing.assert_allclose(both, (ab + ba) / 2, atol=1e-5)
    np.testing.assert_allclose(score_pairs(scorer.net, scorer.tokenizer, b, a, both_orders=True), both, atol=1e-6)
    both_scorer = CrossEncoderScorer(VerifyConfig(device="cpu", both_orders=True))
    np.testing.assert_allclose(both_scorer.score(a, b), both, atol=1e-5)


def test_both_orders_has_its_own_threshold(tmp_path):
    (tmp_path / "scanner.json").write_text('{"threshold": 0.6, "threshold_both_orders": 0.7}')
    assert VerifyConfig(model=str(tmp_path)).resolved_threshold() == 0.6
    assert VerifyConfig(model=str(tmp_path), both_orders=True).resolved_threshold() == 0.7
    assert VerifyConfig(model=str(tmp_path), both_orders=True, threshold=0.2).resolved_threshold() == 0.2
    (tmp_path / "scanner.json").write_text('{"threshold": 0.6}')  # a model that records no both-orders threshold
    assert VerifyConfig(model=str(tmp_path), both_orders=True).resolved_threshold() == 0.6
    assert 0.0 < model_threshold(DEFAULT_CROSS_ENCODER, both_orders=True) < 1.0


def test_ray_batch_interface(scorer):
    out = scorer({"row": np.array([0, 1]), "text_a": np.array(["a b c d", "x y z"]), "text_b": np.array(["a b c d", "q r s"])})
    assert out["score"].shape == (2,) and list(out["row"]) == [0, 1]


def test_probability_heads():
    one = paraphrase_probability(torch.tensor([[0.0], [100.0]]))
    two = paraphrase_probability(torch.tensor([[0.0, 0.0], [-50.0, 50.0]]))
    np.testing.assert_allclose(one.numpy(), [0.5, 1.0])
    np.testing.assert_allclose(two.numpy(), [0.5, 1.0])


def test_missing_model_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_cross_encoder(str(tmp_path / "nothing"), torch.device("cpu"))


def test_uncached_hub_id_fails_offline_with_advice():
    with pytest.raises(ModelLoadError, match="--cross-encoder"):
        load_cross_encoder("someone/not-a-cached-model", torch.device("cpu"))


def test_standard_sequence_classification_folders_load(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from scanner.embed import packaged_minilm_path

    base = packaged_minilm_path()
    AutoModelForSequenceClassification.from_pretrained(base, num_labels=2).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(base).save_pretrained(tmp_path)
    net, tok = load_cross_encoder(str(tmp_path), torch.device("cpu"))
    scores = score_pairs(net, tok, ["one two three"], ["three two one"])
    assert 0.0 <= scores[0] <= 1.0
    assert model_threshold(str(tmp_path)) == 0.5  # no threshold recorded: the neutral default


def test_a_pair_longer_than_the_input_is_the_mean_of_its_windows(tiny_verifier):
    from scanner.verify import long_pair_windows

    net, tok = load_cross_encoder(str(tiny_verifier), torch.device("cpu"))
    a = " ".join(f"word{i} of the first sentence" for i in range(12))
    b = " ".join(f"token{i} in the second one" for i in range(12))
    short = ("A short pair.", "Still short.")
    tokens = len(tok(a, b)["input_ids"])
    windows = long_pair_windows(a, b, tokens, 40)
    assert len(windows) >= 2 and " ".join(w for w, _ in windows) == a and " ".join(w for _, w in windows) == b
    got = score_pairs(net, tok, [a, short[0]], [b, short[1]], max_length=40)
    each = score_pairs(net, tok, [w for w, _ in windows], [w for _, w in windows], max_length=40)
    np.testing.assert_allclose(got[0], each.mean(), atol=1e-6)
    np.testing.assert_allclose(got[1], score_pairs(net, tok, [short[0]], [short[1]], max_length=40)[0], atol=1e-6)
