"""A few real training steps on a handful of pairs: the loss goes down, checkpoints resume, the model loads."""

from __future__ import annotations

import json

import numpy as np
import torch

from pipelines.data import Pair
from pipelines.metrics import best_threshold, classification_report, roc_auc
from pipelines.train_cross_encoder import TrainConfig, epoch_batches, order_agreement, train
from scanner.verify import DEFAULT_CROSS_ENCODER, load_cross_encoder, score_pairs

PAIRS = [
    Pair("I took a flight from New York to Paris.", "I flew to Paris from New York.", 1, "t"),
    Pair("I took a flight from New York to Paris.", "I took a flight from Paris to New York.", 0, "t"),
    Pair("The cat chased the dog around the yard.", "Around the yard, the cat chased the dog.", 1, "t"),
    Pair("The cat chased the dog around the yard.", "The dog chased the cat around the yard.", 0, "t"),
]


def test_training_reduces_loss_resumes_and_saves(tmp_path):
    config = TrainConfig(epochs=6, lr=3e-4, warmup=0.0, max_tokens=256, max_rows=2, eval_every=6, checkpoint_every=3,
                         max_steps=12, threads=2)
    summary = train(config, tmp_path, pairs=PAIRS, val=PAIRS)
    losses = summary["losses"]
    assert summary["steps"] == 12 and len(losses) == 12
    assert np.mean(losses[-4:]) < np.mean(losses[:4])
    # resuming a finished run does no more steps and keeps the history
    again = train(config, tmp_path, pairs=PAIRS, val=PAIRS)
    assert again["steps"] == 12 and again["losses"] == losses
    net, tok = load_cross_encoder(str(tmp_path / "best"), torch.device("cpu"))
    scores = score_pairs(net, tok, [p.a for p in PAIRS], [p.b for p in PAIRS])
    assert scores.shape == (4,) and np.all((scores >= 0) & (scores <= 1))
    assert json.loads((tmp_path / "best" / "validation.json").read_text())["n"] == 4


def test_epoch_batches_are_deterministic_and_cover_everything():
    lengths = list(np.random.default_rng(0).integers(5, 120, size=500))
    config = TrainConfig(max_tokens=1024, max_rows=32)
    a, b = epoch_batches(lengths, config, 0), epoch_batches(lengths, config, 0)
    assert [x.tolist() for x in a] == [x.tolist() for x in b]
    assert sorted(np.concatenate(a).tolist()) == list(range(500))
    assert [x.tolist() for x in epoch_batches(lengths, config, 1)] != [x.tolist() for x in a]


def test_metrics():
    labels = np.array([0, 0, 1, 1, 1, 0])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.9, 0.2])
    assert roc_auc(labels, scores) == 8 / 9
    thr = best_threshold(labels, scores)
    report = classification_report(labels, scores, thr)
    assert report["accuracy"] == 5 / 6
    assert report["per_class"]["paraphrase"]["precision"] == 1.0
    assert roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5


def test_warm_start_continues_from_a_trained_classifier(tmp_path):
    config = TrainConfig(epochs=2, lr=3e-4, warmup=0.0, max_tokens=256, max_rows=2, eval_every=4, checkpoint_every=4,
                         max_steps=4, threads=2)
    first = train(config, tmp_path / "first", pairs=PAIRS, val=PAIRS)
    warm = TrainConfig(**{**config.__dict__, "base_model": str(tmp_path / "first" / "best"), "lr": 0.0})
    net, tok = load_cross_encoder(str(tmp_path / "first" / "best"), torch.device("cpu"))
    before = score_pairs(net, tok, [p.a for p in PAIRS], [p.b for p in PAIRS])
    # with a zero learning rate the warm-started model scores exactly as the one it started from
    train(warm, tmp_path / "second", pairs=PAIRS, val=PAIRS)
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


def test_symmetric_training_narrows_the_order_gap(tmp_path):
    def logit_gap(folder):
        net, tok = load_cross_encoder(str(folder), torch.device("cpu"))
        a, b = [p.a for p in PAIRS], [p.b for p in PAIRS]
        forward, backward = (np.clip(score_pairs(net, tok, x, y), 1e-6, 1 - 1e-6) for x, y in ((a, b), (b, a)))
        return float(np.mean(np.abs(np.log(forward / (1 - forward)) - np.log(backward / (1 - backward)))))

    # the shipped model scores these pairs differently in the two orders; a few steps with a heavy symmetry
    # term pull the two orders' logits together
    before = logit_gap(DEFAULT_CROSS_ENCODER)
    assert before > 0.05
    sym = TrainConfig(base_model=DEFAULT_CROSS_ENCODER, epochs=1, lr=3e-5, warmup=0.0, max_tokens=512, max_rows=4,
                      eval_every=100, max_steps=4, threads=2, symmetric=50.0)
    summary = train(sym, tmp_path / "sym", pairs=PAIRS * 4, val=PAIRS)
    history = [json.loads(line) for line in (tmp_path / "sym" / "history.jsonl").read_text().splitlines()]
    assert summary["steps"] == 4 and "order_gap" in history[-1]
    assert logit_gap(tmp_path / "sym" / "best") < 0.8 * before


def test_alignment_head_trains_from_a_mean_pooling_model(tmp_path):
    from scanner.verify import AlignPairClassifier

    config = TrainConfig(base_model=DEFAULT_CROSS_ENCODER, pooling="align", epochs=6, lr=1e-5, head_lr=1e-2,
                         warmup=0.0, max_tokens=512, max_rows=8, eval_every=100, checkpoint_every=100, max_steps=6,
                         threads=2)
    summary = train(config, tmp_path, pairs=PAIRS, val=PAIRS)
    net, _tok = load_cross_encoder(str(tmp_path / "best"), torch.device("cpu"))
    assert type(net) is AlignPairClassifier
    hidden = net.encoder.config.hidden_size
    assert float(net.classifier.weight[0, hidden:].abs().sum()) > 0  # the difference features got weight
    assert summary["losses"][-1] < summary["losses"][0]
