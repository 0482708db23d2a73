"""A few real training steps on a handful of pairs, on a tiny DeBERTa: the loss goes down, checkpoints resume,
warm starts continue exactly, the NLI head folds into one logit, and the model loads as the scanner loads it."""

from __future__ import annotations

import json

import numpy as np
import torch

from pipelines.data import Pair
from pipelines.metrics import best_threshold, classification_report, plateau_threshold, roc_auc
from pipelines.train_cross_encoder import TrainConfig, epoch_batches, fold_nli_head, order_agreement, train
from scanner.verify import load_cross_encoder, score_pairs

PAIRS = [
    Pair("I took a flight from New York to Paris.", "I flew to Paris from New York.", 1, "t"),
    Pair("I took a flight from New York to Paris.", "I took a flight from Paris to New York.", 0, "t"),
    Pair("The cat chased the dog around the yard.", "Around the yard, the cat chased the dog.", 1, "t"),
    Pair("The cat chased the dog around the yard.", "The dog chased the cat around the yard.", 0, "t"),
]


def config(base, **kw) -> TrainConfig:
    defaults = dict(base_model=str(base), epochs=6, lr=1e-3, warmup=0.0, max_tokens=256, max_rows=2, eval_every=6,
                    checkpoint_every=3, max_steps=12, threads=2)
    return TrainConfig(**{**defaults, **kw})


def test_training_reduces_loss_resumes_and_saves(tmp_path, tiny_verifier):
    cfg = config(tiny_verifier)
    summary = train(cfg, tmp_path, pairs=PAIRS, val=PAIRS)
    losses = summary["losses"]
    assert summary["steps"] == 12 and len(losses) == 12
    assert np.mean(losses[-4:]) < np.mean(losses[:4])
    # resuming a finished run does no more steps and keeps the history
    again = train(cfg, tmp_path, pairs=PAIRS, val=PAIRS)
    assert again["steps"] == 12 and again["losses"] == losses
    net, tok = load_cross_encoder(str(tmp_path / "best"), torch.device("cpu"))
    assert net.config.num_labels == 1
    scores = score_pairs(net, tok, [p.a for p in PAIRS], [p.b for p in PAIRS])
    assert scores.shape == (4,) and np.all((scores >= 0) & (scores <= 1))
    assert json.loads((tmp_path / "best" / "validation.json").read_text())["n"] == 4


def test_the_nli_head_folds_into_entailed_minus_not(tiny_verifier):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    nli = AutoModelForSequenceClassification.from_pretrained(tiny_verifier).eval()
    tok = AutoTokenizer.from_pretrained(tiny_verifier)
    feats = tok([p.a for p in PAIRS], [p.b for p in PAIRS], padding=True, return_tensors="pt")
    with torch.inference_mode():
        two = nli(**feats).logits
        one = fold_nli_head(nli)(**feats).logits
    assert one.shape == (4, 1) and nli.config.num_labels == 1
    torch.testing.assert_close(one[:, 0], two[:, 0] - two[:, 1], atol=1e-5, rtol=1e-5)


def test_epoch_batches_are_deterministic_and_cover_everything():
    lengths = list(np.random.default_rng(0).integers(5, 120, size=500))
    cfg = TrainConfig(max_tokens=1024, max_rows=32)
    a, b = epoch_batches(lengths, cfg, 0), epoch_batches(lengths, cfg, 0)
    assert [x.tolist() for x in a] == [x.tolist() for x in b]
    assert sorted(np.concatenate(a).tolist()) == list(range(500))
    assert [x.tolist() for x in epoch_batches(lengths, cfg, 1)] != [x.tolist() for x in a]


def test_metrics():
    labels = np.array([0, 0, 1, 1, 1, 0])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.9, 0.2])
    assert roc_auc(labels, scores) == 8 / 9
    thr = best_threshold(labels, scores)
    report = classification_report(labels, scores, thr)
    assert report["accuracy"] == 5 / 6
    assert report["per_class"]["paraphrase"]["precision"] == 1.0
    assert roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5


def test_plateau_threshold_takes_the_middle_of_the_near_best_cuts():
    # 91 pairs: every cut from 0.25 to 0.8 is right on 84 or 85 of them (a zigzag of alternating labels); the
    # single best cut (86) lies above the two negatives at the top, at 0.83
    rng = np.random.default_rng(0)
    middle = np.round(np.arange(0.3, 0.81, 0.05), 2)
    middle_labels = np.array([1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0], dtype=float)
    scores = np.r_[rng.uniform(0.0, 0.2, 40), rng.uniform(0.85, 1.0, 40), middle]
    labels = np.r_[np.zeros(40), np.ones(40), middle_labels]
    best, plateau = best_threshold(labels, scores), plateau_threshold(labels, scores)
    assert best > 0.8
    assert 0.45 < plateau < 0.7

    def accuracy(t: float) -> float:
        return float(((scores >= t) == labels).mean())

    assert accuracy(plateau) >= accuracy(best) - np.sqrt(accuracy(best) * (1 - accuracy(best)) / len(labels))


def test_warm_start_continues_from_a_trained_verifier(tmp_path, tiny_verifier):
    first = train(config(tiny_verifier, epochs=2, eval_every=4, checkpoint_every=4, max_steps=4), tmp_path / "first",
                  pairs=PAIRS, val=PAIRS)
    net, tok = load_cross_encoder(str(tmp_path / "first" / "best"), torch.device("cpu"))
    before = score_pairs(net, tok, [p.a for p in PAIRS], [p.b for p in PAIRS])
    # with a zero learning rate the warm-started model scores exactly as the one it started from
    train(config(tmp_path / "first" / "best", epochs=2, eval_every=4, checkpoint_every=4, max_steps=4, lr=0.0),
          tmp_path / "second", pairs=PAIRS, val=PAIRS)
    net2, tok2 = load_cross_encoder(str(tmp_path / "second" / "best"), torch.device("cpu"))
    after = score_pairs(net2, tok2, [p.a for p in PAIRS], [p.b for p in PAIRS])
    assert first["steps"] == 4
    np.testing.assert_allclose(after, before, atol=1e-5)


def test_order_agreement():
    forward = np.array([0.9, 0.2, 0.6, 0.4])
    backward = np.array([0.7, 0.2, 0.4, 0.4])
    got = order_agreement(forward, backward, 0.5)
    assert got["order_gap"] == np.mean([0.2, 0.0, 0.2, 0.0])
    assert got["order_agreement"] == 0.75
