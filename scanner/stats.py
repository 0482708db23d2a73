"""Run statistics: stage timers and the metadata a report carries (models, settings, counts, timings).

Every kind of run (``scanner.scanning.run_scan``, ``scanner.reference.run_against``) times its stages with a
``Timer`` and describes itself with ``run_metadata``, so their reports have the same metadata.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from scanner import __version__
from scanner.embed import resolve_embedder
from scanner.modelfiles import model_fingerprint

if TYPE_CHECKING:
    import pyarrow as pa

    from scanner.scanning import ScanConfig


class Timer:
    """Wall time per named stage, in seconds (rounded to ms); a stage entered twice adds up."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - start, 3)


def run_metadata(config: ScanConfig, read: pa.Table, sent: pa.Table, pairs: pa.Table, stats: dict[str, Any],
                 segmenter: str, engine: str, timer: Timer, started: float) -> dict[str, Any]:
    """The report metadata of a run: tool, models (with weight fingerprints), settings, counts and timings.

    ``read``/``sent``: the run's read and sentences tables; ``stats``: the counts its matching stages returned;
    ``started``: its ``time.perf_counter()`` at the start (for the total time)."""
    statuses = read["status"].to_pylist()
    embedder = resolve_embedder(config.embed.model)
    counts = {
        "documents": len(statuses), "documents_scanned": statuses.count("scanned"),
        "documents_skipped": statuses.count("skipped"), "sentences": len(sent),
        "flagged_pairs": stats["exact_pairs"] + stats["paraphrase_pairs"],
        **{k: v for k, v in stats.items() if k not in ("threshold", "prefilter", "prefilter_estimate")},
    }
    return {
        "tool": "paraphrase-scanner", "version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "embedder": {"name": config.embed.model, "path": embedder, "sha256": model_fingerprint(embedder)},
        "cross_encoder": {"name": config.verify.model, "sha256": model_fingerprint(config.verify.model),
                          "both_orders": config.verify.both_orders, "swap_rule": config.verify.swap_rule},
        "threshold": stats["threshold"], "min_cosine": config.candidates.min_cosine, "top_k": config.candidates.top_k,
        "scope": config.candidates.scope, "min_words": config.candidates.min_words,
        "mutual": config.candidates.mutual, "candidate_budget": config.candidates.budget,
        "prefilter": stats.get("prefilter", False),  # scans against an index do not pre-filter
        "prefilter_estimated_kept": stats.get("prefilter_estimate"),
        "prefilter_min_cosine": config.candidates.prefilter_min_cosine,
        "search": config.candidates.method(stats["sentences_searched"]),
        "keep_rejected": config.keep_rejected, "segmenter": segmenter, "engine": engine, "counts": counts,
        "timings": {**timer.timings, "total": round(time.perf_counter() - started, 3)},
    }
