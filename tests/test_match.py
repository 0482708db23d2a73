"""The match core: one score per distinct pair in either order, one decision with its rules and labels, and
the same decision in every entry point (scan, scan --against, search, check): a stub rule swapped into
``scanner.match.RULES`` takes effect in all four."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FakeScores, write

import scanner
from scanner import match
from scanner.match import Decision, decide, score_distinct
from scanner.pair_check import check, check_pairs
from scanner.scanning import ScanConfig, run_scan
from scanner.schema import MATCH_KINDS, Match
from scanner.verify import VerifyConfig

FAST = {"embedder": "hashing", "min_cosine": 0.1}


def test_labels_come_from_one_enumeration():
    assert MATCH_KINDS == ("exact", "paraphrase", "rejected") and Match("rejected") is Match.REJECTED


def test_each_distinct_pair_is_scored_once_in_one_orientation():
    engine = FakeScores()
    a = ["the cat sat on the mat", "a dog ran", "the cat sat on the mat", "x y z"]
    b = ["a dog ran", "the cat sat on the mat", "a dog ran", "x y w"]
    scores, distinct = score_distinct(a, b, VerifyConfig(threshold=0.5), engine)
    assert distinct == 2 and len(engine.scored) == 2
    assert scores[0] == scores[1] == scores[2]
    assert score_distinct([], [], VerifyConfig(threshold=0.5), engine) == (pytest.approx(np.zeros(0)), 0)


def test_decide_applies_the_threshold_then_the_rules():
    a = ["I flew from New York to Paris.", "For the purposes of this Licence, (i) the power.", "Bees dance.", "Cats purr."]
    b = ["I flew from Paris to New York.", "For purposes of this Licence, (a) the power.", "Bees dance a lot.", "Dogs bark."]
    got = decide(np.array([0.95, 0.10, 0.70, 0.69]), a, b, VerifyConfig(threshold=0.7))
    assert isinstance(got, Decision) and got.threshold == 0.7
    assert got.flagged.tolist() == [False, True, True, False]
    assert got.matches() == ["rejected", "paraphrase", "paraphrase", "rejected"]
    reasons = got.reasons()
    assert reasons[0].startswith("cross-encoder 0.950 >= threshold 0.700, rejected by the swap rule")
    assert reasons[1].startswith("cross-encoder 0.100 < threshold 0.700, flagged as a near-copy")
    assert reasons[2] == "cross-encoder 0.700 >= threshold 0.700" and reasons[3] == "cross-encoder 0.690 < threshold 0.700"
    # without the swap rule the swap is flagged by its score; the near-copy rule always applies
    off = decide(np.array([0.95, 0.10]), a[:2], b[:2], VerifyConfig(threshold=0.7, swap_rule=False))
    assert off.flagged.tolist() == [True, True]
    with pytest.raises(ValueError, match="one score per pair"):
        decide(np.array([0.5]), a, b, VerifyConfig(threshold=0.5))


@pytest.fixture()
def no_zebras(monkeypatch):
    """A stub rule: a pair that mentions zebras is never flagged."""
    def rule(a, b, flagged, verify):
        return (False, "rejected by the zebra rule") if flagged and "zebra" in (a + b).lower() else None

    monkeypatch.setattr(match, "RULES", [*match.RULES, rule])


ZEBRA = ("The zebra crossed the wide river at dawn with its herd.", "At dawn the zebra crossed the wide river with its herd.")
HORSE = ("The horse crossed the wide river at dawn with its herd.", "At dawn the horse crossed the wide river with its herd.")


def test_a_stub_rule_takes_effect_in_every_entry_point(no_zebras, tmp_path):
    engine = FakeScores()
    # check
    assert check(*ZEBRA, threshold=0.5, engine=engine).match == "rejected"
    assert check(*HORSE, threshold=0.5, engine=engine).match == "paraphrase"
    table = check_pairs([ZEBRA[0], HORSE[0]], [ZEBRA[1], HORSE[1]], threshold=0.5, engine=engine)
    assert table["match"].to_pylist() == ["rejected", "paraphrase"]
    # scan
    docs = tmp_path / "docs"
    write(docs / "a.txt", f"{ZEBRA[0]}\n\n{HORSE[0]}\n")
    write(docs / "b.txt", f"{ZEBRA[1]}\n\n{HORSE[1]}\n")
    config = ScanConfig.from_options(threshold=0.5, keep_rejected=True, **FAST)
    report = run_scan([docs], config, tmp_path / "r.parquet", engine=engine).pairs
    by_text = {r["text_a"]: r for r in report.to_pylist()}
    assert by_text[ZEBRA[0]]["match"] == "rejected" and "zebra rule" in by_text[ZEBRA[0]]["reason"]
    assert by_text[HORSE[0]]["match"] == "paraphrase"
    # an index, then scan --against and search
    write(tmp_path / "ref" / "src.txt", f"{ZEBRA[0]}\n\n{HORSE[0]}\n")
    write(tmp_path / "new" / "b.txt", f"{ZEBRA[1]}\n\n{HORSE[1]}\n")
    scanner.update_index([tmp_path / "ref"], tmp_path / "index", ScanConfig.from_options(embedder="hashing"),
                         engine=engine)
    result = scanner.run_against([tmp_path / "new"], scanner.ReferenceConfig(index=str(tmp_path / "index")), config,
                                 tmp_path / "against.parquet", engine=engine)
    rows = {r["text_b"]: r["match"] for r in result.pairs.to_pylist()}
    assert rows == {ZEBRA[1]: "rejected", HORSE[1]: "paraphrase"}
    hits = scanner.search([ZEBRA[1], HORSE[1]], against=tmp_path / "index", threshold=0.5, engine=engine,
                          embedder="hashing", min_cosine=0.1)
    assert hits["query"].to_pylist() == [HORSE[1]]
