"""Binary classification metrics and threshold choice, numpy only (no scikit-learn dependency)."""

from __future__ import annotations

from typing import Any

import numpy as np


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum (Mann-Whitney U) statistic, ties averaged."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def classification_report(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1 and ROC-AUC of ``scores >= threshold``."""
    labels = np.asarray(labels).astype(int)
    pred = (np.asarray(scores) >= threshold).astype(int)
    per_class: dict[str, dict[str, float]] = {}
    for cls, name in ((1, "paraphrase"), (0, "not_paraphrase")):
        tp = int(((pred == cls) & (labels == cls)).sum())
        fp = int(((pred == cls) & (labels != cls)).sum())
        fn = int(((pred != cls) & (labels == cls)).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int((labels == cls).sum())}
    return {
        "n": len(labels),
        "threshold": float(threshold),
        "accuracy": float((pred == labels).mean()),
        "macro_f1": (per_class["paraphrase"]["f1"] + per_class["not_paraphrase"]["f1"]) / 2,
        "roc_auc": roc_auc(labels, np.asarray(scores)),
        "per_class": per_class,
    }


def best_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The threshold that maximises accuracy, midway between adjacent distinct scores (validation only)."""
    cuts, correct = _accuracy_by_cut(labels, scores)
    return float(cuts[int(np.argmax(correct))])


def plateau_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The middle of the near-optimal cuts: the median of every cut whose accuracy is within one standard error
    of the best (validation only). A verifier's accuracy is flat over a wide range of cuts, and the single best
    cut of a flat curve moves with a handful of pairs; the middle of that range does not."""
    cuts, correct = _accuracy_by_cut(labels, scores)
    n = len(np.asarray(labels))
    best = correct.max() / n
    near = correct / n >= best - np.sqrt(best * (1 - best) / n)
    return float(np.median(cuts[near]))


def _accuracy_by_cut(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every realisable cut (midway between adjacent distinct scores, and beyond both ends) and the number of
    pairs it decides correctly."""
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    # flagging the top i items: correct = positives among them + negatives outside them
    correct = np.concatenate([[0], np.cumsum(y)]) + np.concatenate([[int((y == 0).sum())], (y == 0).sum() - np.cumsum(y == 0)])
    cuts = np.concatenate([[s[0] + 1e-6], (s[:-1] + s[1:]) / 2, [s[-1] - 1e-6]])
    # only cut between distinct scores, else the cut is not realisable by a threshold
    valid = np.concatenate([[True], s[:-1] != s[1:], [True]])
    return cuts[valid], correct[valid]


def order_agreement(forward: np.ndarray, backward: np.ndarray, threshold: float) -> dict[str, float]:
    """How much a pair's score depends on sentence order: mean |p(A,B) - p(B,A)| and the share of pairs whose
    decision at ``threshold`` is the same in both orders."""
    forward, backward = np.asarray(forward), np.asarray(backward)
    return {"order_gap": float(np.mean(np.abs(forward - backward))),
            "order_agreement": float(np.mean((forward >= threshold) == (backward >= threshold)))}
