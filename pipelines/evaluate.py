"""Evaluate a cross-encoder on PAWS-Wiki test, MRPC test and the realistic validation set, beside the
bi-encoder cosine-only baseline.

    python -m pipelines.evaluate                      # the shipped model
    python -m pipelines.evaluate --model runs/v3/best

Every threshold comes from the validation slices (fixed groups of PAWS-Wiki dev and MRPC train pairs that
training never sees, ``pipelines.data.validation_pairs``): the cross-encoder uses the threshold recorded with
the model, the cosine baseline the cosine that maximises accuracy on the same slices. Nothing is tuned on a
test split or on the realistic set. "shipped decision" rows are exactly what ``scan`` and ``scan check``
decide (``scanner.match.decide``: the threshold, then the rules, on by default); the rows
without the rule are the model alone. The realistic set (``pipelines/realistic/validation.tsv``) is also
reported by kind: the share flagged of rewrites and near-copies (recall) and of each kind of meaning-changing
swap. Also measures how fast the model scores pairs against a roberta-base-sized model (same architecture
family, random weights: only the speed matters) on the same pairs and threads. Writes JSON and a Markdown
table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipelines.data import DEFAULT_DATA_DIR, Pair, mrpc, paws_wiki, realistic, validation_pairs
from pipelines.metrics import best_threshold, classification_report, order_agreement
from scanner.match import decide
from scanner.reasons import swap_rule_applies
from scanner.verify import DEFAULT_CROSS_ENCODER, VerifyConfig, load_cross_encoder, model_threshold, score_pairs

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "pipelines" / "results"


def cosine_scores(embedder: Any, pairs: list[Pair]) -> np.ndarray:
    a = embedder.embed([p.a for p in pairs])
    b = embedder.embed([p.b for p in pairs])
    return np.einsum("ij,ij->i", a, b)


def roberta_base_speed_ratio(net: Any, tokenizer: Any, pairs: list[Pair], repeats: int = 3) -> dict[str, float]:
    """Median seconds to score ``pairs`` with our model and with a roberta-base-sized classifier.

    roberta-base's weights are not available offline here, but its cost does not depend on them: a
    RobertaForSequenceClassification with roberta-base's configuration and random weights does exactly the
    same arithmetic. Both get the same token ids (ours), so the comparison is per pair at equal length.
    """
    from transformers import RobertaConfig, RobertaForSequenceClassification

    config = RobertaConfig(vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                           intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1, num_labels=1)
    roberta = RobertaForSequenceClassification(config).eval()

    class _Vocab:  # feed roberta the same ids (all below its vocabulary size), without token type ids
        def __init__(self, tok: Any) -> None:
            self.tok = tok

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            enc = self.tok(*args, **kwargs)
            enc.pop("token_type_ids", None)
            return enc

        def pad(self, *args: Any, **kwargs: Any) -> Any:
            return self.tok.pad(*args, **kwargs)

    a, b = [p.a for p in pairs], [p.b for p in pairs]
    timings: dict[str, list[float]] = {"model": [], "model_both_orders": [], "roberta_base": []}
    for _ in range(repeats):
        for name, model, tok, both in (("model", net, tokenizer, False), ("model_both_orders", net, tokenizer, True),
                                       ("roberta_base", roberta, _Vocab(tokenizer), False)):
            start = time.perf_counter()
            score_pairs(model, tok, a, b, both_orders=both)
            timings[name].append(time.perf_counter() - start)
    med = {k: float(np.median(v)) for k, v in timings.items()}
    return {"pairs": len(pairs), "model_seconds": med["model"], "roberta_base_seconds": med["roberta_base"],
            "model_pairs_per_second": len(pairs) / med["model"], "speedup_vs_roberta_base": med["roberta_base"] / med["model"],
            "both_orders_speedup_vs_roberta_base": med["roberta_base"] / med["model_both_orders"],
            "model_parameters": sum(p.numel() for p in net.parameters()),
            "roberta_base_parameters": sum(p.numel() for p in roberta.parameters()), "torch_threads": torch.get_num_threads()}


def by_kind(pairs: list[Pair], flagged: np.ndarray) -> dict[str, dict[str, float]]:
    """The share of pairs flagged per ``source`` (for the realistic set: per kind of rewrite or swap)."""
    out: dict[str, dict[str, float]] = {}
    for kind in sorted({p.source for p in pairs}):
        idx = [i for i, p in enumerate(pairs) if p.source == kind]
        out[kind.removeprefix("realistic-")] = {"pairs": len(idx), "label": pairs[idx[0]].label,
                                                "flagged_share": float(np.mean(flagged[idx]))}
    return out


def decision_scores(scores: np.ndarray, pairs: list[Pair], threshold: float, swap_rule: bool) -> np.ndarray:
    """Scores whose cut at ``threshold`` gives exactly ``scanner.match.decide``'s decisions (a pair a rule
    rejects counts as scored 0, one it flags as scored 1), so the usual metrics describe the decision itself."""
    decided = decide(scores, [p.a for p in pairs], [p.b for p in pairs], VerifyConfig(threshold=threshold,
                                                                                     swap_rule=swap_rule))
    return np.where(decided.flagged & ~decided.above, 1.0, np.where(~decided.flagged & decided.above, 0.0, scores))


def split_report(pairs: list[Pair], scores: np.ndarray, reverse: np.ndarray, cosine: np.ndarray, threshold: float,
                 threshold_both: float, cos_threshold: float) -> dict[str, Any]:
    """The metrics of one split: the cross-encoder alone, the decision with and without the swap rule (the
    shipped decision is the one with the scanner's default, ``VerifyConfig().swap_rule``), both sentence
    orders, the cosine baseline, how much scores depend on order, and the shares flagged per kind of pair."""
    labels = np.array([p.label for p in pairs])
    rule = np.array([swap_rule_applies(p.a, p.b) for p in pairs], dtype=bool)
    both = (scores + reverse) / 2
    shipped_rule = VerifyConfig().swap_rule
    decisions = {on: decision_scores(scores, pairs, threshold, on) for on in (True, False)}
    both_decision = decision_scores(both, pairs, threshold_both, shipped_rule)
    return {
        "kinds": {"shipped_decision": by_kind(pairs, decisions[shipped_rule] >= threshold),
                  "model_alone": by_kind(pairs, scores >= threshold), "cosine": by_kind(pairs, cosine >= cos_threshold)},
        "cross_encoder": classification_report(labels, scores, threshold),
        "decision_swap_rule": classification_report(labels, decisions[True], threshold),
        "decision_no_swap_rule": classification_report(labels, decisions[False], threshold),
        "cross_encoder_both_orders": classification_report(labels, both, threshold_both),
        "decision_both_orders": classification_report(labels, both_decision, threshold_both),
        "cosine": classification_report(labels, cosine, cos_threshold),
        "order": order_agreement(scores, reverse, threshold),
        "swap_rule": {"pairs": int(rule.sum()), "paraphrases_among_them": int(labels[rule].sum()),
                      "flagged_by_the_model": int((scores[rule] >= threshold).sum()), "shipped_on": shipped_rule},
    }


def evaluate(model: str, data_dir: Path, speed_pairs: int = 256, limit: int = 0) -> dict[str, Any]:
    """All metrics for ``model``. ``limit`` > 0 keeps only that many pairs per split (smoke runs only)."""
    from scanner.embed import EmbedConfig, SentenceEmbedder

    net, tokenizer = load_cross_encoder(model, torch.device("cpu"))
    threshold, threshold_both = model_threshold(model), model_threshold(model, both_orders=True)
    embedder = SentenceEmbedder(EmbedConfig())
    def cap(pairs: list[Pair]) -> list[Pair]:
        return pairs[:limit] if limit else pairs

    val = cap(validation_pairs(data_dir, mrpc_slice=True))
    val_labels = np.array([p.label for p in val])
    val_cos = cosine_scores(embedder, val)
    cos_threshold = best_threshold(val_labels, val_cos)
    shown = Path(model).resolve()
    shown_model = str(shown.relative_to(REPO)) if shown.is_relative_to(REPO) else model
    results: dict[str, Any] = {"model": shown_model, "threshold": threshold, "threshold_both_orders": threshold_both,
                               "cosine_threshold": cos_threshold, "splits": {}}
    val_scores = score_pairs(net, tokenizer, [p.a for p in val], [p.b for p in val])
    val_reverse = score_pairs(net, tokenizer, [p.b for p in val], [p.a for p in val])
    results["splits"]["validation (PAWS-Wiki dev + MRPC train slices)"] = split_report(
        val, val_scores, val_reverse, val_cos, threshold, threshold_both, cos_threshold)
    for name, pairs in (("PAWS-Wiki test", cap(paws_wiki("test", data_dir))), ("MRPC test", cap(mrpc("test", data_dir))),
                        ("realistic validation", cap(realistic("validation")))):
        start = time.perf_counter()
        scores = score_pairs(net, tokenizer, [p.a for p in pairs], [p.b for p in pairs])
        seconds = time.perf_counter() - start
        reverse = score_pairs(net, tokenizer, [p.b for p in pairs], [p.a for p in pairs])
        results["splits"][name] = split_report(pairs, scores, reverse, cosine_scores(embedder, pairs), threshold,
                                               threshold_both, cos_threshold)
        results["splits"][name]["cross_encoder"]["pairs_per_second"] = len(pairs) / seconds
    test = paws_wiki("test", data_dir)
    rng = np.random.default_rng(0)
    sample = [test[i] for i in rng.choice(len(test), size=min(speed_pairs, len(test)), replace=False)]
    results["speed"] = roberta_base_speed_ratio(net, tokenizer, sample)
    return results


def markdown(results: dict[str, Any]) -> str:
    rows = ["| split | model | accuracy | macro-F1 | P (para) | R (para) | P (not) | R (not) | ROC-AUC |",
            "|---|---|---|---|---|---|---|---|---|"]
    for split, by_model in results["splits"].items():
        shipped = "decision_swap_rule" if by_model["swap_rule"]["shipped_on"] else "decision_no_swap_rule"
        for label, key in (("cross-encoder alone", "cross_encoder"),
                           ("decision, swap rule on", "decision_swap_rule"),
                           ("decision, swap rule off", "decision_no_swap_rule"),
                           ("cross-encoder alone, both orders", "cross_encoder_both_orders"),
                           ("decision, both orders", "decision_both_orders"),
                           ("cosine only", "cosine")):
            if key not in by_model:
                continue
            r = by_model[key]
            pc, nc = r["per_class"]["paraphrase"], r["per_class"]["not_paraphrase"]
            label = f"**{label} (shipped)**" if key == shipped else label
            rows.append(f"| {split} | {label} (thr {r['threshold']:.3f}) | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | "
                        f"{pc['precision']:.3f} | {pc['recall']:.3f} | {nc['precision']:.3f} | {nc['recall']:.3f} | "
                        f"{r['roc_auc']:.4f} |")
    rows += ["", "How much one-order scores depend on sentence order (mean |p(A,B) - p(B,A)|; share of pairs decided "
             "alike in both orders at the model's threshold):", ""]
    rows += [f"- {split}: gap {by_model['order']['order_gap']:.3f}, agreement {by_model['order']['order_agreement']:.3f}"
             for split, by_model in results["splits"].items() if "order" in by_model]
    rows += ["", "Pairs the swap rule decides (only difference: two spans trading places; not flagged whatever the score):", ""]
    rows += [f"- {split}: {r['pairs']} pair{'' if r['pairs'] == 1 else 's'}, {r['paraphrases_among_them']} of them "
             f"paraphrase{'' if r['paraphrases_among_them'] == 1 else 's'}; the model alone flags "
             f"{r['flagged_by_the_model']}" for split, by_model in results["splits"].items()
             if (r := by_model.get("swap_rule"))]
    real = results["splits"].get("realistic validation")
    if real:
        rows += ["", "Realistic validation set, share flagged by kind (label 1: should be flagged; 0: should not):", "",
                 "| kind | label | pairs | shipped decision | model alone | cosine only |", "|---|---|---|---|---|---|"]
        kinds = real["kinds"]
        for kind, r in kinds["shipped_decision"].items():
            rows.append(f"| {kind} | {r['label']} | {r['pairs']} | {r['flagged_share']:.3f} | "
                        f"{kinds['model_alone'][kind]['flagged_share']:.3f} | {kinds['cosine'][kind]['flagged_share']:.3f} |")
    s = results["speed"]
    rows += ["", f"Speed ({s['torch_threads']} CPU threads, {s['pairs']} PAWS-Wiki test pairs, median of 3): "
             f"{s['model_pairs_per_second']:.1f} pairs/s, {s['speedup_vs_roberta_base']:.1f}x faster than a "
             f"roberta-base-sized cross-encoder ({s['model_parameters'] / 1e6:.1f}M vs "
             f"{s['roberta_base_parameters'] / 1e6:.1f}M parameters)"
             + (f"; scoring both orders: {s['both_orders_speedup_vs_roberta_base']:.1f}x." if "both_orders_speedup_vs_roberta_base" in s else ".")]
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_CROSS_ENCODER)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--speed-pairs", type=int, default=256)
    parser.add_argument("--limit", type=int, default=0, help="pairs per split, for smoke runs (0: all)")
    args = parser.parse_args()
    results = evaluate(args.model, args.data_dir, args.speed_pairs, args.limit)
    results["limit"] = args.limit
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "evaluation.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (args.out_dir / "evaluation.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
