"""Shipping keeps the whole training history, also through intermediate runs that were never shipped."""

from __future__ import annotations

import json

from pipelines.ship_model import training_record
from scanner.verify import SCANNER_META


def test_training_record_follows_unshipped_runs_back_to_the_shipped_model(tmp_path):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / SCANNER_META).write_text(json.dumps({"threshold": 0.7, "training": {"steps": 100, "config": {}}}))
    run = tmp_path / "stage3"
    (run / "best").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"steps": 50, "losses": [0.5, 0.4],
                                                  "config": {"base_model": str(shipped)}}))
    record = training_record(run / "best")
    assert record == {"steps": 50, "config": {"base_model": str(shipped)},
                      "warm_start_from": {"steps": 100, "config": {}}}
    assert training_record(shipped) == {"steps": 100, "config": {}}
    # a base model we did not train, and a folder that is not a run's best checkpoint
    assert training_record(tmp_path / "minilm") is None
    assert training_record(run) is None
