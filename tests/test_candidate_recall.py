"""The candidate-recall measurement, on hand-made vectors whose answer is known."""

from __future__ import annotations

import numpy as np

from pipelines.candidate_recall import candidate_recall
from pipelines.data import Pair


def unit(*v: float) -> np.ndarray:
    x = np.array(v, dtype=np.float32)
    return x / np.linalg.norm(x)


def test_recall_and_cost_follow_the_cosine_floor():
    texts = ["close a", "close b", "far a", "far b", "Same text.", "same   TEXT."]
    emb = np.stack([unit(1, 0.05, 0, 0), unit(1, 0, 0.05, 0),    # cosine ~0.997
                    unit(0, 0, 1, 0), unit(0, 0.75, 0.66, 0),    # cosine ~0.66
                    unit(0, 0, 0, 1), unit(0.9, 0, 0, -0.44)])   # identical after normalising, far apart as vectors
    sets = {"s": [Pair("close a", "close b", 1, "x"), Pair("far a", "far b", 1, "x"), Pair("Same text.", "same   TEXT.", 1, "x"),
                  Pair("close a", "far a", 0, "x")]}
    rows = {(r["min_cosine"], r["top_k"]): r for r in candidate_recall(sets, emb, texts, (0.6, 0.7), (1, 3))}
    assert rows[(0.6, 3)]["s"] == 1.0
    assert rows[(0.7, 3)]["s"] == 2 / 3  # the far pair is below the floor; the identical pair is found by hash
    assert rows[(0.7, 3)]["pairs_per_sentence"] < rows[(0.6, 3)]["pairs_per_sentence"]


def test_the_low_band_costs_less_and_keeps_each_sentences_best():
    # a: its paraphrase at cosine 0.6 is its best neighbour, a related sentence at 0.56 second, and that
    # sentence's own best is "c" (0.81): below 0.7, the a/related pair is nobody's best
    # sentence "d"'s best is "a" (0.55), but a's best is its rewrite: a pair of one side's best, not of both
    texts = ["a", "a rewrite", "a related", "b", "b rewrite", "c", "d"]
    emb = np.stack([unit(1, 0, 0, 0), unit(0.6, 0.8, 0, 0), unit(0.56, 0, 0.83, 0),
                    unit(0, 0, 0, 1), unit(0, 0.05, 0, 1), unit(0, 0, 1, 0.2), unit(0.55, 0, 0, -0.835)])
    sets = {"s": [Pair("a", "a rewrite", 1, "x"), Pair("b", "b rewrite", 1, "x")]}
    rows = candidate_recall(sets, emb, texts, (0.5,), (3,), bands=((0.7, 1, False), (0.7, 1, True)))
    plain, banded, mutual = rows
    assert (plain["band"], banded["band"], mutual["band"]) == ("none", "below 0.7: top 1 of either",
                                                               "below 0.7: top 1 of both")
    assert plain["s"] == banded["s"] == mutual["s"] == 1.0
    assert mutual["pairs_per_sentence"] < banded["pairs_per_sentence"] < plain["pairs_per_sentence"]
