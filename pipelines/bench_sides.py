"""The two sides of the benchmark, each run in its own process so that peak memory (RSS) does not mix.

``naive``: what the sentence-transformers tutorials show, in one Python process: every sentence through
``util.paraphrase_mining(model, sentences)`` with the packaged MiniLM, then the shipped cross-encoder over
the pairs it returns, in plain fixed-size batches in the order returned (padded to each batch's longest).
It gets the same cosine floor, top-k, threshold, minimum words and scope as ``scan`` (filters applied before
cross-encoding, which only helps it).

``scan``: ``scanner.run_scan`` on the same folder, with a fresh embedding cache.

    python -m pipelines.bench_sides naive DOCS OUT.json [--settings JSON]
    python -m pipelines.bench_sides scan DOCS OUT.json [--settings JSON]

Each writes the flagged pairs, counts, stage times, token counts, its peak RSS and a float32 matmul rate
measured at its end in the same process, so that the transformer stages' FLOP rate is compared with what
this machine does at that moment. ``pipelines.benchmark`` runs them and writes the table.
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULTS: dict[str, Any] = {"top_k": 5, "min_cosine": 0.55, "min_words": 4, "scope": "cross", "threshold": None,
                            "naive_batch": 32, "engine": "auto", "static_embedder": None}


def read_docs(folder: Path) -> list[tuple[str, str]]:
    """(doc, sentence) for every ``.txt`` file, split into sentences by the scanner's own segmenter, so that
    both sides compare the very same sentences."""
    from scanner.segment import SegmentConfig, load_segmenter, sentence_spans

    config = SegmentConfig()
    nlp, _ = load_segmenter(config.segmenter)
    out = []
    for path in sorted(folder.rglob("*.txt")):
        doc, text = path.relative_to(folder).as_posix(), path.read_text(encoding="utf-8")
        out += [(doc, text[s:e]) for s, e in sentence_spans(text, config, nlp)]
    return out


def flops_per_token(config: Any, seq_len: float) -> float:
    """Forward FLOPs per token of a BERT-style encoder (multiply-add = 2 FLOPs): the dense layers
    (Q, K, V, output: 4 h^2; feed-forward: 2 h i) plus attention scores and context (2 s h) per layer."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    return 2.0 * layers * (4 * h * h + 2 * h * i + 2 * seq_len * h)


def matmul_gflops(size: int = 2048, repeats: int = 3) -> float:
    """The best float32 matmul rate of ``repeats`` tries, in GFLOPS, with torch's current threads."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def dense_gflops(config: Any, rows: int = 2048, repeats: int = 10) -> float:
    """The best float32 rate of one layer's dense products at the model's own shapes (``rows`` tokens: Q, K, V
    and output projections, then the feed-forward pair), in GFLOPS: the ceiling the stages could reach if
    attention, GELU, layer norms and copies cost nothing. Compare it with ``matmul_gflops`` to see whether the
    model's narrow matrices, rather than the rest of the work, are what keeps a stage below the matmul rate."""
    import torch

    h, i = config.hidden_size, config.intermediate_size
    x, square, up, down = torch.randn(rows, h), torch.randn(h, h), torch.randn(i, h), torch.randn(h, i)

    def layer() -> None:
        for _ in range(4):
            torch.nn.functional.linear(x, square)
        torch.nn.functional.linear(torch.nn.functional.linear(x, up), down)

    layer()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        layer()
        best = min(best, time.perf_counter() - start)
    return 2 * rows * (4 * h * h + 2 * h * i) / best / 1e9


def token_stats(lengths: Sequence[int], batches: Sequence[np.ndarray]) -> dict[str, int]:
    """Real tokens, and tokens the model computed once each batch is padded to its longest row."""
    lens = np.asarray(lengths, dtype=np.int64)
    padded = sum(int(lens[b].max()) * len(b) for b in batches if len(b))
    return {"tokens": int(lens.sum()), "padded_tokens": padded}


def stage_rate(tokens: dict[str, int], seconds: float, fpt: float) -> dict[str, float]:
    """Achieved useful GFLOPS (real tokens only) and computed GFLOPS (padding included) of a stage."""
    return {"seconds": round(seconds, 3), **tokens,
            "useful_gflops": round(tokens["tokens"] * fpt / max(seconds, 1e-9) / 1e9, 2),
            "computed_gflops": round(tokens["padded_tokens"] * fpt / max(seconds, 1e-9) / 1e9, 2)}


def peak_rss_mb() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mb": round(own, 1), "peak_rss_children_mb": round(children, 1)}


def _threshold(settings: dict[str, Any]) -> float:
    from scanner.verify import DEFAULT_CROSS_ENCODER, model_threshold

    return settings["threshold"] if settings["threshold"] is not None else model_threshold(DEFAULT_CROSS_ENCODER)


def run_naive(docs: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The tutorial pipeline: paraphrase_mining, then the cross-encoder in fixed batches of ``naive_batch``."""
    import torch
    from sentence_transformers import SentenceTransformer, util

    from scanner.candidates import word_counts
    from scanner.embed import packaged_minilm_path
    from scanner.verify import DEFAULT_CROSS_ENCODER, load_cross_encoder, paraphrase_probability

    started = time.perf_counter()
    rows = read_docs(docs)
    texts = [t for _, t in rows]
    model = SentenceTransformer(packaged_minilm_path(), device="cpu")
    t0 = time.perf_counter()
    mined = util.paraphrase_mining(model, texts, top_k=settings["top_k"], batch_size=32, show_progress_bar=False)
    t_mine = time.perf_counter() - t0
    words = word_counts(texts)
    keep = [(s, i, j) for s, i, j in mined if s >= settings["min_cosine"] and rows[i][0] != rows[j][0]
            and words[i] >= settings["min_words"] and words[j] >= settings["min_words"]]
    net, tok = load_cross_encoder(DEFAULT_CROSS_ENCODER, torch.device("cpu"))
    bs = settings["naive_batch"]
    scores = np.zeros(len(keep), dtype=np.float32)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(keep), bs):
            part = keep[start : start + bs]
            feats = tok([texts[i] for _, i, _ in part], [texts[j] for _, _, j in part], padding=True,
                        truncation=True, max_length=128, return_tensors="pt")
            scores[start : start + bs] = paraphrase_probability(net(**feats).logits).numpy()
    t_verify = time.perf_counter() - t0
    threshold = _threshold(settings)
    flagged = [[rows[i][0], texts[i], rows[j][0], texts[j]] for (_, i, j), s in zip(keep, scores, strict=True) if s >= threshold]
    total = time.perf_counter() - started
    rss = peak_rss_mb()
    # tokens, counted after the clock stopped: encode sorts by length and batches 32; the verify batches as run
    emb_lens = [min(len(x), 256) for x in model.tokenizer(texts)["input_ids"]]
    order = np.argsort([-len(t) for t in texts], kind="stable")
    emb_batches = [order[s : s + 32] for s in range(0, len(order), 32)]
    ce_lens = [len(x) for x in tok([texts[i] for _, i, _ in keep], [texts[j] for _, _, j in keep], truncation=True, max_length=128)["input_ids"]] if keep else []
    ce_batches = [np.arange(s, min(s + bs, len(keep))) for s in range(0, len(keep), bs)]
    return _side_result("naive", total, len(texts), len(mined), len(keep), flagged, threshold,
                        model[0].auto_model.config, net.config, rss,
                        (emb_lens, emb_batches, t_mine), (ce_lens, ce_batches, t_verify))


class CountingEngine:
    """Wraps an engine and remembers what the model stages were given, to count tokens after the run."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.description = inner.description
        self.embedded: list[str] = []
        self.scored: tuple[list[str], list[str]] = ([], [])

    def read(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.read(*args, **kwargs)

    def embed(self, texts: Sequence[str], config: Any, on_chunk: Any = None) -> np.ndarray:
        self.embedded += list(texts)
        return self.inner.embed(texts, config, on_chunk=on_chunk)

    def score(self, a: Sequence[str], b: Sequence[str], config: Any) -> np.ndarray:
        self.scored[0].extend(a)
        self.scored[1].extend(b)
        return self.inner.score(a, b, config)

    def close(self) -> None:
        self.inner.close()


def run_scan_side(docs: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """``scanner.run_scan`` on ``docs`` with a fresh cache; tokens counted as the stages batch them."""
    import torch
    from transformers import AutoConfig, AutoTokenizer

    from scanner.batching import token_batches
    from scanner.device import batch_tokens
    from scanner.embed import EmbedConfig, packaged_minilm_path
    from scanner.engine import open_engine
    from scanner.scanning import ScanConfig, run_scan
    from scanner.verify import VerifyConfig

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
        if settings.get("static_cache"):  # the static pre-filter's table, distilled once per machine like an
            shutil.copytree(Path(settings["static_cache"]) / "static", Path(cache) / "static")  # installed model
        config = ScanConfig.from_options(top_k=settings["top_k"], min_cosine=settings["min_cosine"],
                                         min_words=settings["min_words"], scope=settings["scope"],
                                         threshold=settings["threshold"], engine=settings["engine"], cache_dir=cache,
                                         mutual=settings.get("mutual"), budget=settings.get("budget"),
                                         prefilter=settings.get("prefilter"),
                                         keep_rejected=True)  # rejected rows cost nothing: they tell misses apart
        engine = CountingEngine(open_engine(config.engine, input_bytes=sum(p.stat().st_size for p in docs.rglob("*.txt"))))
        try:
            result = run_scan([docs], config, engine=engine)
        finally:
            engine.close()
    total = time.perf_counter() - started
    table = result.pairs.select(["doc_a", "text_a", "doc_b", "text_b", "match"]).to_pylist()
    flagged = [[r["doc_a"], r["text_a"], r["doc_b"], r["text_b"]] for r in table if r["match"] != "rejected"]
    rejected = [[r["doc_a"], r["text_a"], r["doc_b"], r["text_b"]] for r in table if r["match"] == "rejected"]
    rss = peak_rss_mb()
    counts, timings = result.counts, result.metadata["timings"]
    # tokens, counted after the clock stopped, batched as the stages batch them (default EmbedConfig/VerifyConfig)
    emb_cfg, ce_cfg = EmbedConfig(), VerifyConfig()
    emb_budget = batch_tokens(torch.device("cpu"), emb_cfg.max_tokens)
    ce_budget = batch_tokens(torch.device("cpu"), ce_cfg.max_tokens)
    emb_path = packaged_minilm_path()
    emb_tok = AutoTokenizer.from_pretrained(emb_path, local_files_only=True)
    emb_lens = [min(len(x), 256) for x in emb_tok(engine.embedded)["input_ids"]] if engine.embedded else []
    ce_tok = AutoTokenizer.from_pretrained(ce_cfg.model, local_files_only=True)
    a, b = engine.scored
    ce_lens = [len(x) for x in ce_tok(a, b, truncation=True, max_length=ce_cfg.max_length)["input_ids"]] if a else []
    out = _side_result("scan", total, counts["sentences"], counts["candidate_pairs"], counts["pairs_cross_encoded"],
                       flagged, result.metadata["threshold"], AutoConfig.from_pretrained(emb_path, local_files_only=True),
                       AutoConfig.from_pretrained(ce_cfg.model, local_files_only=True), rss,
                       (emb_lens, token_batches(emb_lens, emb_budget, emb_cfg.batch_size, emb_cfg.max_padding), timings.get("embed", 0.0)),
                       (ce_lens, token_batches(ce_lens, ce_budget, ce_cfg.batch_size, ce_cfg.max_padding), timings.get("verify", 0.0)))
    out.update(counts=counts, timings=timings, engine=result.metadata["engine"], rejected=rejected)
    return out


def _side_result(side: str, total: float, sentences: int, candidates: int, cross_encoded: int,
                 flagged: list[list[str]], threshold: float, emb_config: Any, ce_config: Any, rss: dict[str, float],
                 embed: tuple[list[int], Sequence[np.ndarray], float],
                 verify: tuple[list[int], Sequence[np.ndarray], float]) -> dict[str, Any]:
    stages = {}
    for name, (lens, batches, seconds), cfg in (("embed", embed, emb_config), ("verify", verify, ce_config)):
        fpt = flops_per_token(cfg, float(np.mean(lens)) if lens else 0.0)
        stages[name] = stage_rate(token_stats(lens, batches), seconds, fpt) if lens else {"seconds": round(seconds, 3)}
    return {"side": side, "seconds_in_process": round(total, 3), "sentences": sentences, "candidates": candidates,
            "pairs_cross_encoded": cross_encoded, "pairs_flagged": len(flagged), "threshold": threshold,
            "flagged": flagged, "stages": stages, "matmul_gflops": round(matmul_gflops(), 2),
            "dense_gflops": round(dense_gflops(emb_config), 2), **rss}


def main(argv: Sequence[str]) -> None:
    side, docs, out = argv[0], Path(argv[1]), Path(argv[2])
    settings = {**DEFAULTS, **(json.loads(argv[4]) if len(argv) > 4 and argv[3] == "--settings" else {})}
    result = run_naive(docs, settings) if side == "naive" else run_scan_side(docs, settings)
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
