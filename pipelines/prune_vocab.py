"""Prune a sentencepiece-unigram model's vocabulary (DeBERTa-v3: 128,100 pieces, two thirds of its weights)
to the pieces English text uses, with the matching embedding rows.

Kept: the special tokens, every single-character piece (so any text still tokenizes, into smaller pieces
where a longer one was dropped), every piece the given training texts use, and the most probable remaining
pieces by the unigram model's own log-probability up to ``size``. The unigram tokenizer picks the most
probable segmentation among the pieces it has, so a text whose pieces were all kept tokenizes exactly as
before (``pipelines/prune_vocab.py`` checks this on the texts it was given), and any other text falls back to
shorter pieces the model also knows. ``tests/test_prune_vocab.py`` checks both on a real tokenizer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch


def used_pieces(tokenizer: Any, texts: Iterable[str], batch: int = 2048) -> set[int]:
    """Ids of the pieces the tokenizer uses for ``texts``."""
    seen: set[int] = set()
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) == batch:
            for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"]:
                seen.update(ids)
            chunk = []
    if chunk:
        for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"]:
            seen.update(ids)
    return seen


def choose_pieces(vocab: list[list[Any]], used: set[int], size: int, specials: int = 4) -> list[int]:
    """Original ids to keep, ascending: specials, single characters, ``used``, then by log-probability."""
    keep = set(range(specials)) | set(used)
    keep |= {i for i, (piece, _score) in enumerate(vocab) if len(piece.lstrip("\u2581")) <= 1}
    by_score = sorted((i for i in range(len(vocab)) if i not in keep), key=lambda i: -vocab[i][1])
    keep.update(by_score[: max(0, size - len(keep))])
    return sorted(i for i in keep if i < len(vocab))


def prune(model_dir: Path, out: Path, texts: Iterable[str], size: int = 48000) -> dict[str, Any]:
    """Write ``model_dir``'s model (a transformers sequence classifier with a unigram ``tokenizer.json``) to
    ``out`` with a pruned vocabulary. Returns counts for the model card."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    spec = json.loads((model_dir / "tokenizer.json").read_text())
    if spec["model"]["type"] != "Unigram":
        raise ValueError(f"{model_dir}: only a Unigram tokenizer.json can be pruned, not {spec['model']['type']}")
    vocab = spec["model"]["vocab"]
    texts = list(texts)
    used = used_pieces(tokenizer, texts)
    keep = choose_pieces(vocab, used, size)
    new_id = {old: new for new, old in enumerate(keep)}
    extra = [t for t in spec["added_tokens"] if t["id"] >= len(vocab)]  # [MASK] sits after the unigram vocab
    for n, token in enumerate(extra):
        new_id[token["id"]] = len(keep) + n
    spec["model"]["vocab"] = [vocab[i] for i in keep]
    spec["model"]["unk_id"] = new_id[spec["model"]["unk_id"]]
    for token in spec["added_tokens"]:
        token["id"] = new_id[token["id"]]
    for special in spec.get("post_processor", {}).get("special_tokens", {}).values():
        special["ids"] = [new_id[i] for i in special["ids"]]

    net = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True)
    rows = torch.tensor(keep + [t_id for t_id in sorted(new_id) if t_id >= len(vocab)])
    old_emb = net.get_input_embeddings().weight.data
    emb = torch.nn.Embedding(len(rows), old_emb.shape[1], padding_idx=net.config.pad_token_id)
    emb.weight.data.copy_(old_emb[rows])
    net.set_input_embeddings(emb)
    net.config.vocab_size = len(rows)
    out.mkdir(parents=True, exist_ok=True)
    net.save_pretrained(out, safe_serialization=True)
    (out / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False))
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    config["added_tokens_decoder"] = {str(new_id[int(k)]): v for k, v in config.get("added_tokens_decoder", {}).items()}
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    pruned = AutoTokenizer.from_pretrained(out, local_files_only=True)
    changed = sum(
        [keep[i] if i < len(keep) else -1 for i in p] != o
        for p, o in zip(pruned(texts[:5000], add_special_tokens=False)["input_ids"],
                        tokenizer(texts[:5000], add_special_tokens=False)["input_ids"], strict=True))
    if changed:
        raise RuntimeError(f"pruning changed the tokenization of {changed} of the texts it kept every piece of")
    return {"pieces_before": len(vocab), "pieces_after": len(keep), "used_by_training_texts": len(used)}
