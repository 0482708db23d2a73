"""A static embedder for the candidate pre-filter: one vector per vocabulary token, a sentence is their mean.

Embedding every sentence with MiniLM is most of a scan's time, yet in a real collection most sentences have
no partner worth a closer look. A static embedder (in the spirit of model2vec) finds them hundreds of times
faster: each vocabulary token's vector is MiniLM's own output for that token alone (``[CLS] token [SEP]``,
mean-pooled, reduced by PCA), and a sentence's vector is the IDF-weighted mean of its tokens' vectors, with
IDF counted over the collection being scanned. Sentences with no static neighbour above a low floor are
then left out of the MiniLM stage (``scanner.scanning``); the pairs MiniLM would have found among the
others are unchanged.

The token table is distilled once per machine from the packaged MiniLM (tens of seconds on a CPU) and
cached beside the embedding cache, keyed by the model's weights, so nothing extra ships with the package.
The math (PCA, IDF, weighted means) is pure numpy and apart from the model code (``distill_table``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scanner.candidates import CandidateConfig, neighbour_pairs
from scanner.embed import unit_rows
from scanner.errors import ModelLoadError
from scanner.topk import scope_ok

#: dimensions kept by the PCA of the token table
STATIC_DIMS = 256


def pca(table: np.ndarray, dims: int) -> np.ndarray:
    """Rows of ``table`` centred and projected on their first ``dims`` principal axes (float32).

    The sign of each axis is fixed (largest loading positive), so the result is the same on every machine."""
    centred = np.asarray(table, dtype=np.float64)
    centred = centred - centred.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[: min(dims, vt.shape[0])]
    signs = np.sign(axes[np.arange(len(axes)), np.argmax(np.abs(axes), axis=1)])
    return (centred @ (axes * signs[:, None]).T).astype(np.float32)


def idf_weights(token_ids: Sequence[np.ndarray], vocab_size: int) -> np.ndarray:
    """Smoothed inverse document frequency per vocabulary id, counting each sentence as a document:
    ``log((1 + n) / (1 + df)) + 1``. Common tokens ("the", ",") weigh little, rare names and numbers much."""
    df = np.zeros(vocab_size, dtype=np.int64)
    for ids in token_ids:
        df[np.unique(ids)] += 1
    return (np.log((1 + len(token_ids)) / (1 + df)) + 1.0).astype(np.float32)


def mean_vectors(token_ids: Sequence[np.ndarray], table: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per sentence, the ``weights``-weighted mean of its tokens' rows of ``table``, L2-normalised (float32).

    A sentence with no tokens gets a zero vector (it matches nothing). One ``embedding_bag`` call: no
    (tokens x dims) intermediate is built."""
    import torch

    lengths = np.fromiter((len(ids) for ids in token_ids), dtype=np.int64, count=len(token_ids))
    if lengths.sum() == 0:
        return np.zeros((len(token_ids), table.shape[1]), dtype=np.float32)
    flat = torch.from_numpy(np.concatenate([np.asarray(ids, dtype=np.int64) for ids in token_ids]))
    offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)[:-1]]))
    w = torch.from_numpy(np.asarray(weights, dtype=np.float32))[flat]
    bag = torch.nn.functional.embedding_bag(flat, torch.from_numpy(np.asarray(table, dtype=np.float32)), offsets,
                                            mode="sum", per_sample_weights=w)
    return unit_rows(bag.numpy())  # the weighted mean's direction: dividing by the weight sum would not change it


def centre(vectors: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Unit vectors with their common direction removed (the mean over ``rows``, or all), renormalised.

    Mean vectors of sentences share a large common component; removing it spreads static cosines out so
    a floor separates related from unrelated sentences."""
    if len(vectors) == 0:
        return vectors
    mean = vectors[rows].mean(axis=0) if rows is not None and len(rows) else vectors.mean(axis=0)
    return unit_rows(vectors - mean)


def distill_table(model_path: str, dims: int = STATIC_DIMS, batch_rows: int = 1024) -> np.ndarray:
    """MiniLM's output for every vocabulary token on its own (``[CLS] token [SEP]``, mean over the three
    positions, as the sentence pooling does), reduced to ``dims`` by PCA. Rows are vocabulary ids."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from scanner.device import quiet_model_logs

    quiet_model_logs()
    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    model = AutoModel.from_pretrained(model_path, local_files_only=True, use_safetensors=True).eval()
    vocab = len(tokenizer)
    out = np.empty((vocab, model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, vocab, batch_rows):
            ids = torch.arange(start, min(start + batch_rows, vocab))
            ends = [torch.full_like(ids, tokenizer.cls_token_id), ids, torch.full_like(ids, tokenizer.sep_token_id)]
            hidden = model(input_ids=torch.stack(ends, dim=1)).last_hidden_state
            out[start : start + len(ids)] = hidden.mean(dim=1).float().numpy()
    return pca(out, dims)


@dataclass
class StaticEmbedder:
    """The token table and the tokenizer of the model it was distilled from."""

    table: np.ndarray
    tokenizer: Any  # tokenizers.Tokenizer

    @classmethod
    def load(cls, model_path: str, cache_root: str | os.PathLike[str] | None, fingerprint: str) -> StaticEmbedder:
        """The table for ``model_path`` from ``cache_root``, distilled and stored there on first use
        (``cache_root`` None: distilled in memory for this run only)."""
        from tokenizers import Tokenizer

        tok_file = Path(model_path) / "tokenizer.json"
        if not tok_file.is_file():
            raise ModelLoadError(f"the static pre-filter needs {tok_file} (a fast tokenizer) beside the embedder; "
                                 "pass --prefilter off for this embedder")
        folder = Path(cache_root or ".") / "static" / f"{Path(model_path).name}-{fingerprint}-{STATIC_DIMS}"
        table_file = folder / "table.npy"
        if cache_root is not None and table_file.is_file():
            table = np.load(table_file)
        else:
            try:
                table = distill_table(model_path).astype(np.float16)
            except (OSError, ValueError) as exc:
                raise ModelLoadError(f"cannot distill the static pre-filter from {model_path} ({exc}); "
                                     "pass --prefilter off for this embedder") from exc
            if cache_root is not None:
                folder.mkdir(parents=True, exist_ok=True)
                tmp = folder / f"table.{os.getpid()}.npy"
                np.save(tmp, table)
                os.replace(tmp, table_file)  # atomic: a concurrent run sees the whole file or none
                (folder / "about.json").write_text(json.dumps({"model": model_path, "dims": STATIC_DIMS}))
        tokenizer = Tokenizer.from_file(str(tok_file))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        return cls(table=np.asarray(table, dtype=np.float32), tokenizer=tokenizer)

    def token_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int64) for e in encodings]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Centred unit vectors for ``texts``, weighted by IDF over ``texts`` themselves."""
        ids = self.token_ids(texts)
        return centre(mean_vectors(ids, self.table, idf_weights(ids, len(self.table))))


#: from this many searched rows on (with ``search="auto"``), the pre-filter's own search is the clustered
#: ``ivf`` one: a missed static neighbour only costs a sentence MiniLM would have embedded anyway, and an
#: exact top-1 search at a low floor is quadratic (228 s for 113k sentences here, README "Performance")
PREFILTER_IVF_ROWS = 20_000
#: rows sampled to estimate the share the pre-filter would keep, before paying for its search
ESTIMATE_SAMPLE = 2000


def kept_share_estimate(vectors: np.ndarray, rows: np.ndarray, groups: np.ndarray, keys: np.ndarray,
                        config: CandidateConfig, sample: int = ESTIMATE_SAMPLE) -> float:
    """The share of ``rows`` with a static neighbour at >= ``config.prefilter_min_cosine`` (another text, in
    scope), measured exactly on a fixed-seed sample of ``sample`` rows searched against all ``rows``."""

    pick = rows if len(rows) <= sample else np.sort(np.random.default_rng(0).choice(rows, sample, replace=False))
    best = np.full(len(pick), -np.inf, dtype=np.float32)
    for start in range(0, len(rows), config.corpus_chunk):
        cols = rows[start : start + config.corpus_chunk]
        scores = vectors[pick] @ vectors[cols].T
        ok = scope_ok(groups[pick][:, None], groups[cols][None, :], config.scope) & (keys[pick][:, None] != keys[cols][None, :])
        best = np.maximum(best, np.where(ok, scores, -np.inf).max(axis=1))
    return float(np.mean(best >= config.prefilter_min_cosine))


def prefilter(embedder: StaticEmbedder, texts: Sequence[str], groups: np.ndarray, keys: np.ndarray,
              active: np.ndarray, config: CandidateConfig) -> tuple[np.ndarray, float | None]:
    """The active rows worth the full model: those whose text has a static neighbour (another text, in the
    scope) at cosine >= ``config.prefilter_min_cosine``. Rows with the same text are kept or dropped together.

    Each distinct text is embedded once; the search is the candidate stage's own (``neighbour_pairs``), with
    one neighbour per sentence: a sentence is kept by its best static match. With ``config.prefilter`` auto,
    the share it would keep is first estimated on a sample; above ``config.prefilter_max_kept`` (a collection
    where nearly every sentence has a near neighbour) the search would cost more than it saves, and every
    active row is returned. Returns (rows to embed, the estimate or None when none was made)."""
    rows = np.flatnonzero(active)
    kept = np.zeros(len(texts), dtype=bool)
    if len(rows) < 2:
        kept[rows] = True
        return kept, None
    uniq, first, inverse = np.unique(keys[rows], return_index=True, return_inverse=True)
    vectors = np.zeros((len(texts), embedder.table.shape[1]), dtype=np.float32)
    vectors[rows] = embedder.embed([texts[rows[f]] for f in first])[inverse.reshape(-1)]
    estimate = None
    if config.prefilter == "auto" and len(rows) > ESTIMATE_SAMPLE:
        estimate = kept_share_estimate(vectors, rows, groups, keys, config)
        if estimate > config.prefilter_max_kept:
            return active.copy(), estimate
    method = "ivf" if config.search == "auto" and len(rows) >= PREFILTER_IVF_ROWS else config.search
    # a sentence is kept by its own best match: no mutual pairs, no mutual band
    search = dataclasses.replace(config, top_k=1, min_cosine=config.prefilter_min_cosine, mutual=False, budget=None,
                                 band_mutual=False, search=method)
    i, j, _ = neighbour_pairs(vectors, groups, search, keys=keys, active=active)
    hit = np.zeros(len(uniq), dtype=bool)
    hit[np.searchsorted(uniq, keys[i])] = True
    hit[np.searchsorted(uniq, keys[j])] = True
    kept[rows] = hit[inverse.reshape(-1)]
    return kept, estimate
