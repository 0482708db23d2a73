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
    assert set(results["splits"]) == {"validation (PAWS-Wiki dev + MRPC train slices)", "PAWS-Wiki test", "MRPC test",
                                      "realistic validation"}
    for split in results["splits"].values():
        assert {"cross_encoder", "decision_swap_rule", "decision_no_swap_rule", "cross_encoder_both_orders",
                "decision_both_orders", "cosine", "order", "swap_rule", "kinds"} <= set(split)
        rule = split["swap_rule"]
        assert 0 <= rule["paraphrases_among_them"] <= rule["pairs"] <= 12 and rule["flagged_by_the_model"] <= rule["pairs"]
        assert split["cross_encoder"]["n"] == 12
        assert 0.0 <= split["order"]["order_gap"] <= 1.0 and 0.0 <= split["order"]["order_agreement"] <= 1.0
    speed = results["speed"]
    # the verifier (12 layers, hidden 384) does about a sixth of roberta-base's dense arithmetic per token: 2.1x
    # faster on 256 pairs; on these 4 short pairs fixed costs weigh more, so the bound is looser
    assert speed["speedup_vs_roberta_base"] > 1.2 and speed["model_parameters"] < speed["roberta_base_parameters"]
    table = (out / "evaluation.md").read_text()
    assert run.stdout.startswith(table) and "| PAWS-Wiki test | cross-encoder" in table and "agreement" in table
    assert "| MRPC test | decision, swap rule off (thr" in table and "Pairs the swap rule decides" in table
    assert "(shipped)" in table and "Realistic validation set, share flagged by kind" in table
    kinds = results["splits"]["realistic validation"]["kinds"]["shipped_decision"]
    assert sum(k["pairs"] for k in kinds.values()) == 12 and all(0 <= k["flagged_share"] <= 1 for k in kinds.values())
