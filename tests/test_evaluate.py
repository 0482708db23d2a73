"""The evaluation command end to end on made-up data with the shipped model: every split, both orders, the
order agreement, the speed comparison, and the JSON and Markdown it writes."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def test_evaluate_writes_every_split_and_the_order_agreement(data_dir, tmp_path):
    out = tmp_path / "results"
    run = subprocess.run([sys.executable, "-m", "pipelines.evaluate", "--data-dir", str(data_dir), "--out-dir", str(out),
                          "--speed-pairs", "4", "--limit", "12"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads((out / "evaluation.json").read_text())
    assert set(results["splits"]) == {"validation (PAWS-Wiki dev slice)", "PAWS-Wiki test", "MRPC test"}
    for split in results["splits"].values():
        assert {"cross_encoder", "cross_encoder_swap_rule", "cross_encoder_both_orders",
                "cross_encoder_both_orders_swap_rule", "cosine", "order", "swap_rule"} <= set(split)
        rule = split["swap_rule"]
        assert 0 <= rule["paraphrases_among_them"] <= rule["pairs"] <= 12 and rule["flagged_by_the_model"] <= rule["pairs"]
        assert split["cross_encoder"]["n"] == 12
        assert 0.0 <= split["order"]["order_gap"] <= 1.0 and 0.0 <= split["order"]["order_agreement"] <= 1.0
    assert results["speed"]["speedup_vs_roberta_base"] > 0
    table = (out / "evaluation.md").read_text()
    assert run.stdout.startswith(table) and "| PAWS-Wiki test | cross-encoder" in table and "agreement" in table
    assert "| MRPC test | cross-encoder + swap rule (thr" in table and "Pairs the swap rule decides" in table
