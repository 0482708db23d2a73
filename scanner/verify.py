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
from scanner.modelfiles import looks_like_path as looks_like_path  # re-exported: it used to live here
from scanner.modelfiles import safe_model_folder

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_CROSS_ENCODER = str(WEIGHTS_DIR / "paws-minilm-l6")
#: written beside the weights by pipelines/ship_model.py; holds the threshold chosen on validation data
SCANNER_META = "scanner.json"
FALLBACK_THRESHOLD = 0.5
@dataclass(frozen=True)
class VerifyConfig:
    """Settings of the verify stage.

    ``threshold`` None means: the threshold recorded with the model (chosen on its validation slice).
    ``both_orders`` scores each pair as (a, b) and as (b, a) and averages the two: the score no longer depends
    on which sentence comes first, and the shipped model is more accurate so (see the README), at twice the
    cross-encoder work. It uses its own threshold, also chosen on the validation slice.
    ``swap_rule``: a pair whose only difference is two spans trading places ("from New York to Paris" / "from
    Paris to New York") is not flagged, whatever its score, unless the spans are parallel phrases or one word
    in two forms (``scanner.reasons.swap_rule_applies``).
    ``max_tokens`` bounds a padded batch (rows x longest row; None: the device's default,
    ``scanner.device.batch_tokens``): larger uses more memory, and on a GPU more parallelism; ``batch_size`` caps the rows; ``max_padding`` caps the padding share of a batch.
    """

    model: str = DEFAULT_CROSS_ENCODER
    threshold: float | None = None
    batch_size: int = 128
    max_tokens: int | None = None
    max_length: int = 128
    device: str = "auto"
    max_padding: float = 0.2
    both_orders: bool = False
    swap_rule: bool = True

    def cut(self) -> float:
        """The flagging threshold: the one given, else the model's own for this way of scoring."""
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


HEAD_FILE = "head.safetensors"


class _Output:
    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of each row's real (unpadded) token vectors."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class MeanPoolPairClassifier(torch.nn.Module):
    """A cross-encoder whose head reads the masked mean of the last hidden states, not the [CLS] vector.

    Both sentences still go through the encoder together (the encoder sees every cross-sentence
    interaction); only the pooling differs. It suits encoders pretrained for mean pooling such as
    all-MiniLM-L6-v2, whose [CLS] vector carries little information, so training starts from an informative
    representation. Saved as the encoder's own folder plus ``head.safetensors``; no custom code is loaded.
    """

    def __init__(self, encoder: Any, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = torch.nn.Dropout(dropout)
        self.classifier = torch.nn.Linear(encoder.config.hidden_size, 1)

    @property
    def config(self) -> Any:
        return self.encoder.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any) -> _Output:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        return _Output(self.classifier(self.dropout(masked_mean(hidden, attention_mask))))

    def head_state(self) -> dict[str, torch.Tensor]:
        return dict(self.classifier.state_dict())

    def load_head_state(self, state: dict[str, torch.Tensor]) -> None:
        self.classifier.load_state_dict({k: v.float() for k, v in state.items()})

    def save_pretrained(self, folder: str | Path, **kwargs: Any) -> None:
        from safetensors.torch import save_file

        self.encoder.save_pretrained(folder, safe_serialization=True)
        save_file({k: v.detach().contiguous() for k, v in self.head_state().items()}, str(Path(folder) / HEAD_FILE))

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> MeanPoolPairClassifier:
        """The pair classifier saved in ``folder``, of whichever kind its head file holds."""
        from safetensors.torch import load_file
        from transformers import AutoModel

        head = load_file(str(Path(folder) / HEAD_FILE))
        # an alignment head file loads as one; AlignPairClassifier.from_pretrained also warm-starts from a mean head
        kind = AlignPairClassifier if cls is AlignPairClassifier or ALIGN_SCALE in head else MeanPoolPairClassifier
        net = kind(AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=True,
                                             trust_remote_code=False, add_pooling_layer=False))
        if isinstance(net, AlignPairClassifier) and ALIGN_SCALE not in head:
            net.warm_start_from_mean(head)
        else:
            net.load_head_state(head)
        return net


ALIGN_SCALE = "align_log_scale"


class AlignPairClassifier(MeanPoolPairClassifier):
    """A mean-pooling pair classifier that also compares each sentence's tokens with their soft alignment in
    the other sentence.

    Every token of one sentence is aligned (attention over cosine similarities of the last hidden states) to
    the tokens of the other; ``|h - aligned|`` is how differently a word reads in the two sentences. A word
    swap ("the direction of the food relative to the sun" / "... of the sun relative to the food") keeps the
    bag of words and most of the mean-pooled vector, but gives "sun" and "food" a large difference. The head
    reads ``[mean of all tokens, max of the differences, mean of the differences]``, pooled over the tokens of
    both sentences alike, so the head itself does not depend on sentence order. The alignment costs a
    (length x length) product per pair, little beside the encoder. Saved like the mean-pooling model, with a
    wider ``classifier`` and the alignment's learnt scale in ``head.safetensors``.
    """

    def __init__(self, encoder: Any, dropout: float = 0.1, scale: float = 20.0) -> None:
        super().__init__(encoder, dropout)
        hidden = encoder.config.hidden_size
        self.classifier = torch.nn.Linear(3 * hidden, 1)
        self.log_scale = torch.nn.Parameter(torch.tensor(math.log(scale)))

    def warm_start_from_mean(self, head: dict[str, torch.Tensor]) -> None:
        """Start from a mean-pooling model's head: the same logits until training gives the differences weight."""
        hidden = self.encoder.config.hidden_size
        with torch.no_grad():
            self.classifier.weight.zero_()
            self.classifier.weight[:, :hidden] = head["weight"].float()
            self.classifier.bias.copy_(head["bias"].float())

    def head_state(self) -> dict[str, torch.Tensor]:
        return {**self.classifier.state_dict(), ALIGN_SCALE: self.log_scale.detach().reshape(1)}

    def load_head_state(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        with torch.no_grad():
            self.log_scale.copy_(state.pop(ALIGN_SCALE).float().reshape(()))
        self.classifier.load_state_dict({k: v.float() for k, v in state.items()})

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any) -> _Output:
        segments = kwargs.get("token_type_ids")
        if segments is None:
            raise ValueError("AlignPairClassifier needs token_type_ids (tokenize the pairs with a BERT tokenizer)")
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        return _Output(self.classifier(self.dropout(align_features(hidden, attention_mask, segments,
                                                                   self.log_scale.exp()))))


def align_features(hidden: torch.Tensor, attention_mask: torch.Tensor, segments: torch.Tensor,
                   scale: torch.Tensor) -> torch.Tensor:
    """``[mean, max |h - aligned|, mean |h - aligned|]`` per pair (the math of ``AlignPairClassifier``).

    ``hidden`` is (pairs, tokens, dim); a token's aligned vector is the softmax(scale x cosine)-weighted mean
    of the other sentence's tokens (``segments`` tells the sentences apart; padding takes part nowhere)."""
    real = attention_mask.bool()
    mean = masked_mean(hidden, attention_mask)
    unit = torch.nn.functional.normalize(hidden, dim=-1)
    sims = scale * unit @ unit.transpose(1, 2)
    other = (segments.unsqueeze(2) != segments.unsqueeze(1)) & real.unsqueeze(2) & real.unsqueeze(1)
    sims = sims.masked_fill(~other, torch.finfo(sims.dtype).min)
    aligned = torch.softmax(sims, dim=-1) @ hidden
    has_other = other.any(-1, keepdim=True).to(hidden.dtype)  # tokens with something to align to
    diff = (hidden - aligned).abs() * has_other
    diff_max = diff.amax(1)
    diff_mean = diff.sum(1) / has_other.sum(1).clamp(min=1.0)
    return torch.cat([mean, diff_max, diff_mean], dim=-1)


def load_cross_encoder(model: str, device: torch.device) -> tuple[Any, Any]:
    """Load a cross-encoder and its tokenizer offline, from safetensors only: a mean-pooling pair classifier
    (folder with ``head.safetensors``) or any transformers sequence-classification model."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    quiet_model_logs()
    folder = safe_model_folder(model, "cross-encoder", "--cross-encoder")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        if (folder / HEAD_FILE).is_file():
            net = MeanPoolPairClassifier.from_pretrained(folder)  # or AlignPairClassifier, by its head file
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
    max_length: int = 128,
    max_tokens: int = CPU_BATCH_TOKENS,
    batch_size: int = 128,
    max_padding: float | None = 0.2,
    both_orders: bool = False,
) -> np.ndarray:
    """Paraphrase probabilities for pairs (a[i], b[i]), in input order, with length-sorted batches.

    ``both_orders``: the mean of the probabilities of (a[i], b[i]) and (b[i], a[i]), batched together."""
    if len(a) != len(b):
        raise ValueError(f"score_pairs needs as many first as second sentences, got {len(a)} and {len(b)}")
    if not a:
        return np.zeros(0, dtype=np.float32)
    if both_orders:
        both = score_pairs(net, tokenizer, [*a, *b], [*b, *a], max_length=max_length, max_tokens=max_tokens,
                           batch_size=batch_size, max_padding=max_padding)
        return ((both[: len(a)] + both[len(a) :]) / 2).astype(np.float32)
    device = next(net.parameters()).device
    enc = tokenizer(list(a), list(b), truncation=True, max_length=max_length)
    ids = enc["input_ids"]
    out = np.empty(len(ids), dtype=np.float32)
    with torch.inference_mode():
        for batch in token_batches([len(x) for x in ids], max_tokens, batch_size, max_padding):
            feats = tokenizer.pad({k: [enc[k][i] for i in batch] for k in enc}, return_tensors="pt")
            feats = {k: v.to(device) for k, v in feats.items()}
            out[batch] = paraphrase_probability(net(**feats).logits).cpu().numpy()
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
