"""Verify stage: a cross-encoder reads both sentences of a candidate pair together and gives the
probability that they are paraphrases. This is what rejects "from New York to Paris" vs "from Paris to
New York", which any bag-of-words or bi-encoder score calls near-identical.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scanner.batching import token_batches
from scanner.device import CPU_BATCH_TOKENS, batch_tokens, dtype_for, quiet_model_logs, resolve_device
from scanner.errors import ConfigError, ModelLoadError
from scanner.modelfiles import safe_model_folder
from scanner.quantized import INT8_WEIGHTS, load_int8_sequence_classifier
from scanner.reasons import align_references
from scanner.relative_attention import compact_relative_attention
from scanner.unpadded import unpadded_feed_forward

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_CROSS_ENCODER = str(WEIGHTS_DIR / "paws-deberta-v3-xsmall")
#: written beside the weights by pipelines/ship_model.py; holds the threshold chosen on validation data
SCANNER_META = "scanner.json"
FALLBACK_THRESHOLD = 0.5


@dataclass(frozen=True)
class VerifyConfig:
    """Settings of the verify stage.

    ``threshold`` None means: the threshold recorded with the model (chosen on its validation slice).
    ``both_orders`` scores each pair as (a, b) and as (b, a) and averages the two: the score no longer depends
    on which sentence comes first, at twice the cross-encoder work. It uses its own threshold, also chosen on the
    validation slices.
    ``swap_rule``: a pair whose only difference is two spans trading places ("from New York to Paris" / "from
    Paris to New York") is not flagged, whatever its score, unless the spans are parallel phrases or one word
    in two forms (``scanner.reasons.swap_rule_applies``).
    ``max_length``: the longest pair the model reads at once; a longer pair is scored in windows
    (``score_pairs``). ``max_tokens`` bounds a padded batch (rows x longest row; None: the device's default,
    ``scanner.device.batch_tokens``): larger uses more memory, and on a GPU more parallelism; ``batch_size``
    caps the rows; ``max_padding`` caps the padding share of a batch.
    """

    model: str = DEFAULT_CROSS_ENCODER
    threshold: float | None = None
    batch_size: int = 128
    max_tokens: int | None = None
    max_length: int = 512
    device: str = "auto"
    max_padding: float = 0.2
    both_orders: bool = False
    swap_rule: bool = True

    def resolved_threshold(self) -> float:
        """The flagging threshold: the one given, else the model's own for this way of scoring (the one place
        where it is resolved)."""
        return self.threshold if self.threshold is not None else model_threshold(self.model, self.both_orders)

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"--threshold must be a probability in [0, 1], got {self.threshold}")


def model_threshold(model: str, both_orders: bool = False) -> float:
    """The flagging threshold recorded with a model, or 0.5 for models that record none. With ``both_orders``,
    the threshold recorded for averaged (a, b) and (b, a) scores, when the model records one."""
    meta = Path(model) / SCANNER_META
    if meta.is_file():
        recorded = json.loads(meta.read_text())
        return float(recorded.get("threshold_both_orders", recorded["threshold"]) if both_orders else recorded["threshold"])
    return FALLBACK_THRESHOLD


def load_cross_encoder(model: str, device: torch.device) -> tuple[Any, Any]:
    """Load a cross-encoder and its tokenizer offline, from safetensors only: any transformers
    sequence-classification model, stored as float (``model.safetensors``) or as int8 rows
    (``model.int8.safetensors``, ``scanner.quantized``: the shipped verifier)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    quiet_model_logs()
    folder = safe_model_folder(model, "cross-encoder", "--cross-encoder")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        if (folder / INT8_WEIGHTS).is_file():
            net = load_int8_sequence_classifier(folder)  # the shipped verifier (scanner.quantized)
        else:
            net = AutoModelForSequenceClassification.from_pretrained(
                folder, local_files_only=True, use_safetensors=True, trust_remote_code=False
            )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load cross-encoder {model!r} offline ({exc.__class__.__name__}: {str(exc).splitlines()[0]}). "
            "Pass --cross-encoder with a local folder holding config.json, model.safetensors and the tokenizer."
        ) from exc
    net = net.to(device=device, dtype=dtype_for(device)).eval()
    compact_relative_attention(net)  # DeBERTa: the same scores in about 60% of the time
    unpadded_feed_forward(net)  # DeBERTa: per-token layers skip the padding (15-25% faster on unsorted batches)
    return net, tokenizer


def paraphrase_probability(logits: torch.Tensor) -> torch.Tensor:
    """Probability of the paraphrase class: sigmoid for a one-logit head, softmax[1] for two labels."""
    logits = logits.float()
    if logits.shape[-1] == 1:
        return torch.sigmoid(logits[:, 0])
    return torch.softmax(logits, dim=-1)[:, 1]


def score_pairs(
    net: Any,
    tokenizer: Any,
    a: Sequence[str],
    b: Sequence[str],
    *,
    max_length: int = 512,
    max_tokens: int = CPU_BATCH_TOKENS,
    batch_size: int = 128,
    max_padding: float | None = 0.2,
    both_orders: bool = False,
) -> np.ndarray:
    """Paraphrase probabilities for pairs (a[i], b[i]), in input order, with length-sorted batches.

    A pair longer than ``max_length`` tokens is never judged on a truncated head: it is cut into as many
    windows as it needs (``long_pair_windows``: the n-th part of a's words with the n-th part of b's) and scores
    the mean of its windows. ``both_orders``: the mean of the probabilities of (a[i], b[i]) and (b[i], a[i]),
    batched together. The model reads each pair with its cross-reference numbers aligned
    (``scanner.reasons.align_references``): a clause copied from a renumbered document is not a changed fact."""
    if len(a) != len(b):
        raise ValueError(f"score_pairs needs as many first as second sentences, got {len(a)} and {len(b)}")
    if not a:
        return np.zeros(0, dtype=np.float32)
    kwargs: dict[str, Any] = {"max_length": max_length, "max_tokens": max_tokens, "batch_size": batch_size,
                              "max_padding": max_padding}
    if both_orders:
        both = score_pairs(net, tokenizer, [*a, *b], [*b, *a], **kwargs)
        return ((both[: len(a)] + both[len(a) :]) / 2).astype(np.float32)
    b = [align_references(x, y) for x, y in zip(a, b, strict=True)]
    enc = tokenizer(list(a), list(b), truncation=False, verbose=False)
    ids = enc["input_ids"]
    long = [i for i, x in enumerate(ids) if len(x) > max_length]
    if long:
        return _score_with_windows(net, tokenizer, a, b, long, [len(x) for x in ids], **kwargs)
    return _batched_scores(net, tokenizer, enc, max_tokens, batch_size, max_padding)


def _batched_scores(net: Any, tokenizer: Any, enc: Any, max_tokens: int, batch_size: int,
                    max_padding: float | None) -> np.ndarray:
    """Probabilities for tokenized pairs, in length-sorted batches of at most ``max_tokens`` padded tokens."""
    device = next(net.parameters()).device
    out = np.empty(len(enc["input_ids"]), dtype=np.float32)
    with torch.inference_mode():
        for batch in token_batches([len(x) for x in enc["input_ids"]], max_tokens, batch_size, max_padding):
            feats = tokenizer.pad({k: [enc[k][i] for i in batch] for k in enc}, return_tensors="pt")
            out[batch] = paraphrase_probability(net(**{k: v.to(device) for k, v in feats.items()}).logits).cpu().numpy()
    return out


def long_pair_windows(a: str, b: str, tokens: int, max_length: int) -> list[tuple[str, str]]:
    """A pair of ``tokens`` tokens cut into ``ceil(tokens / (0.9 max_length))`` windows: the k-th window pairs
    the k-th equal share of a's words with the k-th share of b's (a long near-copy or rewrite keeps its order
    closely enough for that; the 10% margin absorbs uneven shares)."""
    n = math.ceil(tokens / (0.9 * max_length))
    wa, wb = a.split(), b.split()

    def share(words: list[str], k: int) -> str:
        return " ".join(words[len(words) * k // n : len(words) * (k + 1) // n])

    return [(share(wa, k), share(wb, k)) for k in range(n)]


def _score_with_windows(net: Any, tokenizer: Any, a: Sequence[str], b: Sequence[str], long: list[int],
                        lengths: list[int], **kwargs: Any) -> np.ndarray:
    """``score_pairs`` for a batch holding pairs longer than the model's input: those are scored as the mean
    of their windows (``long_pair_windows``), the rest as they are, all in one call."""
    long_set = set(long)
    xa = [x for i, x in enumerate(a) if i not in long_set]
    xb = [x for i, x in enumerate(b) if i not in long_set]
    owner: list[int] = []
    for i in long:
        for wa, wb in long_pair_windows(a[i], b[i], lengths[i], kwargs["max_length"]):
            xa.append(wa)
            xb.append(wb)
            owner.append(i)
    # windows that are still too long (one side far longer than the other) are truncated as a last resort
    enc_len = [len(x) for x in tokenizer(xa, xb, truncation=False, verbose=False)["input_ids"]]
    if max(enc_len) > kwargs["max_length"]:
        enc = tokenizer(xa, xb, truncation=True, max_length=kwargs["max_length"])
        scores = _batched_scores(net, tokenizer, enc, kwargs["max_tokens"], kwargs["batch_size"], kwargs["max_padding"])
    else:
        scores = score_pairs(net, tokenizer, xa, xb, **kwargs)
    out = np.empty(len(a), dtype=np.float32)
    short = [i for i in range(len(a)) if i not in long_set]
    out[short] = scores[: len(short)]
    window_scores = scores[len(short) :]
    for i in long:
        out[i] = float(np.mean([s for s, o in zip(window_scores, owner, strict=True) if o == i]))
    return out


class CrossEncoderScorer:
    """Callable stage for Ray Data ``map_batches`` (or a plain loop): loads the model once, then scores
    batches with columns ``text_a`` and ``text_b``, adding a ``score`` column."""

    def __init__(self, config: VerifyConfig, torch_threads: int | None = None) -> None:
        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.config = config
        self.device = resolve_device(config.device)
        self.max_tokens = batch_tokens(self.device, config.max_tokens)
        self.net, self.tokenizer = load_cross_encoder(config.model, self.device)

    def score(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        c = self.config
        return score_pairs(
            self.net, self.tokenizer, a, b, max_length=c.max_length, max_tokens=self.max_tokens, batch_size=c.batch_size,
            max_padding=c.max_padding, both_orders=c.both_orders,
        )

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = dict(batch)
        batch["score"] = self.score([str(x) for x in batch["text_a"]], [str(x) for x in batch["text_b"]])
        return batch
