"""The scan: ingest -> segment -> embed -> candidates -> verify -> report, on an engine.

``scan()`` is the Python API; the CLI is a thin layer over ``run_scan()``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scanner.cache import default_cache_dir, embed_with_cache
from scanner.candidates import CandidateConfig, exact_pairs, neighbour_pairs, text_key, word_counts
from scanner.embed import HASHING, EmbedConfig, resolve_embedder
from scanner.engine import Engine, EngineConfig, open_engine
from scanner.errors import ConfigError, InputError
from scanner.ingest import IngestConfig, discover
from scanner.match import decide, score_distinct
from scanner.modelfiles import model_fingerprint, preflight
from scanner.reasons import EXACT_REASON
from scanner.report import check_writable, documents_table, write_report
from scanner.schema import PAIRS, SENTENCES, Match, conform
from scanner.segment import SegmentConfig
from scanner.stats import Timer, run_metadata
from scanner.verify import VerifyConfig


@dataclass(frozen=True)
class ScanConfig:
    """All settings of a scan, one frozen config per stage. ``keep_rejected`` also reports rejected pairs;
    ``cache``/``cache_dir``: reuse sentence embeddings across runs (see ``scanner.cache``)."""

    ingest: IngestConfig = field(default_factory=IngestConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    candidates: CandidateConfig = field(default_factory=CandidateConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    keep_rejected: bool = False
    cache: bool = True
    cache_dir: str | None = None  # None: scanner.cache.default_cache_dir()

    def __post_init__(self) -> None:
        if self.candidates.prefilter == "on" and self.embed.model == HASHING:
            raise ConfigError("--prefilter on needs a transformer embedder (its static table is distilled from it); "
                              "the 'hashing' embedder is already as cheap as a pre-filter: use --prefilter auto or off")

    #: keyword -> (stage, field) for options whose name differs from the stage's field, or that set two stages
    ALIASES = {  # noqa: RUF012 - a class constant of a frozen dataclass
        "embedder": (("embed", "model"),),
        "cross_encoder": (("verify", "model"),),
        "device": (("embed", "device"), ("verify", "device")),
        "batch_size": (("embed", "batch_size"), ("verify", "batch_size")),
        "max_file_size": (("ingest", "max_bytes"),),
    }

    @classmethod
    def from_options(cls, **options: Any) -> ScanConfig:
        """Build a config from flat keyword options: ``ScanConfig.from_options(threshold=0.8, scope="within")``.

        A keyword names a field of one stage's config (``top_k``, ``min_cosine``, ``include``...), or one of
        ``embedder``, ``cross_encoder``, ``device``, ``batch_size``, ``max_file_size``, ``keep_rejected``.
        None values are ignored so the CLI can pass options through unchanged.
        """
        stages: dict[str, dict[str, Any]] = {name: {} for name in STAGES}
        top: dict[str, Any] = {}
        for key, value in options.items():
            if value is None:
                continue
            if key in TOP_LEVEL:
                top[key] = value
                continue
            targets = cls.ALIASES.get(key) or tuple(
                (stage, key) for stage in stages if key in {f.name for f in dataclasses.fields(_stage_type(stage))}
            )
            if not targets:
                raise ConfigError(f"unknown scan option {key!r}")
            for stage, name in targets:
                stages[stage][name] = tuple(value) if isinstance(value, list) else value
        built = {stage: _stage_type(stage)(**kw) for stage, kw in stages.items()}
        return cls(**built, **top)


STAGES = ("ingest", "segment", "embed", "candidates", "verify", "engine")
TOP_LEVEL = ("keep_rejected", "cache", "cache_dir")


def _stage_type(stage: str) -> Any:
    return {f.name: f.default_factory for f in dataclasses.fields(ScanConfig) if f.name in STAGES}[stage]  # type: ignore[misc]


@dataclass
class ScanResult:
    """What a scan produced: the report (pairs), the documents table, metadata, and where it was written."""

    pairs: pa.Table
    documents: pa.Table
    metadata: dict[str, Any]
    out: Path | None = None
    #: sentence counts of the indexed documents a scan against an index matched (for the shares in pairs_by_doc)
    reference_sizes: dict[str, int] | None = None

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.metadata["counts"])

    @property
    def pairs_by_doc(self) -> pa.Table:
        """The flagged pairs per pair of documents, ranked (``schema.PAIRS_BY_DOC``), as written beside the report."""
        from scanner.report import pairs_by_doc

        return pairs_by_doc(self.pairs, self.documents, self.reference_sizes)


def sentences_table(read: pa.Table) -> pa.Table:
    """One row per sentence of every scanned document, texts sliced from the decoded text by offset."""
    docs, index, starts, ends, texts = [], [], [], [], []
    for rec in read.filter(pc.equal(read["status"], "scanned")).to_pylist():
        text = rec["text"]
        for i, (s, e) in enumerate(zip(rec["starts"], rec["ends"], strict=True)):
            docs.append(rec["doc"])
            index.append(i)
            starts.append(s)
            ends.append(e)
            texts.append(text[s:e])
    return conform({"doc": docs, "index": index, "start": starts, "end": ends, "text": texts}, SENTENCES, "sentences")


def pairs_rows(sent: pa.Table, i: np.ndarray, j: np.ndarray, cosine: np.ndarray, score: np.ndarray,
               match: Sequence[str], reason: Sequence[str], side_a: pa.Table | None = None) -> pa.Table:
    """Report rows for pairs (i[k], j[k]) of sentence rows; ``side_a``: the table that rows ``i`` index, when it
    is not ``sent`` (the reference index's sentences in a scan against an index)."""
    cols: dict[str, Any] = {}
    for side, table, rows in (("a", sent if side_a is None else side_a, i), ("b", sent, j)):
        taken = table.take(pa.array(rows, pa.int64()))
        for name in ("doc", "index", "start", "end", "text"):
            cols[f"{name}_{side}"] = taken[name]
    cols.update(cosine=pa.array(cosine, pa.float32()), score=pa.array(score, pa.float32()),
                match=pa.array(match, pa.string()), reason=pa.array(reason, pa.string()))
    return conform(cols, PAIRS, "pairs")


def _input_bytes(sources: Sequence[Any]) -> int:
    total = 0
    for src in sources:
        if src.skip_reason is None:
            with suppress(OSError):
                total += os.path.getsize(src.path)
    return total


@contextmanager
def read_collection(
    paths: Sequence[str | os.PathLike[str]], config: ScanConfig, out: str | os.PathLike[str] | None,
    engine: Engine | None, timer: Timer, notify: Callable[[str], None], progress: bool,
) -> Iterator[tuple[Engine, pa.Table, pa.Table]]:
    """The start every scan shares: check ``out`` and both models before any work, find the files, open an
    engine (unless given; closed on exit), read and segment. Yields (engine, read table, sentences table)."""
    if out is not None:
        check_writable(out)
    # both models must exist locally and be safetensors before any work starts (see scanner.modelfiles)
    preflight(None if config.embed.model == HASHING else resolve_embedder(config.embed.model), config.verify.model)
    with timer.stage("discover"):
        sources = discover(list(paths), config.ingest)
    if not sources:
        raise InputError(f"no files found under {', '.join(map(str, paths))} (check the paths and --include/--exclude)")
    own_engine = engine is None
    with timer.stage("engine_start"):
        engine = engine or open_engine(config.engine, progress=progress, input_bytes=_input_bytes(sources))
    try:
        notify("read")
        with timer.stage("read_segment"):
            read = engine.read(sources, config.ingest, config.segment)
        if not any(s == "scanned" for s in read["status"].to_pylist()):
            reasons = sorted({r for r in read["reason"].to_pylist() if r})
            raise InputError(f"none of the {len(read)} files found could be scanned ({'; '.join(reasons[:3])})")
        yield engine, read, sentences_table(read)
    finally:
        if own_engine:
            engine.close()


def run_scan(
    paths: Sequence[str | os.PathLike[str]],
    config: ScanConfig | None = None,
    out: str | os.PathLike[str] | None = None,
    *,
    engine: Engine | None = None,
    progress: bool = False,
    on_stage: Callable[[str], None] | None = None,
) -> ScanResult:
    """Scan files and folders; write the report to ``out`` if given. See ``scan`` for the Python API."""
    config = config or ScanConfig()
    started, timer = time.perf_counter(), Timer()
    notify = on_stage or (lambda _name: None)
    with read_collection(paths, config, out, engine, timer, notify, progress) as (engine, read, sent):
        pairs, stats = _find_pairs(sent, config, engine, timer, notify)
    documents = documents_table(read, pairs)
    segmenter = next((s for s in read["segmenter"].to_pylist() if s), "none")
    metadata = run_metadata(config, read, sent, pairs, stats, segmenter, engine.description, timer, started)
    result = ScanResult(pairs=pairs, documents=documents, metadata=metadata)
    if out is not None:
        notify("write")
        with timer.stage("write"):
            result.out = write_report(pairs, documents, out, metadata)
    return result


def find_pairs(sentences: pa.Table, config: ScanConfig, engine: Engine) -> tuple[pa.Table, dict[str, Any]]:
    """The scan's matching stages (exact, embed, candidates, verify) on a ready ``SENTENCES`` table.

    For callers that have sentences rather than files (``scanner.dedupe``); returns (pairs, counts)."""
    return _find_pairs(conform(sentences, SENTENCES, "sentences"), config, engine, Timer(), lambda _name: None)


def _find_pairs(sent: pa.Table, config: ScanConfig, engine: Engine, timer: Timer,
                notify: Callable[[str], None]) -> tuple[pa.Table, dict[str, Any]]:
    cand = config.candidates
    texts = sent["text"].to_pylist()
    groups = np.unique(np.asarray(sent["doc"].to_pylist(), dtype=object), return_inverse=True)[1]
    active = word_counts(texts) >= cand.min_words
    keys = np.fromiter((text_key(t) for t in texts), dtype=np.int64, count=len(texts))
    with timer.stage("exact"):
        ex_i, ex_j = exact_pairs(keys, groups, cand.scope, active)
    n_distinct = len(np.unique(keys[active]))
    searched, estimate = active, None
    if config.embed.model != HASHING and cand.uses_prefilter(n_distinct):
        notify("prefilter")
        with timer.stage("prefilter"):
            kept, estimate = _prefilter(texts, groups, keys, active, config)
        if (kept != active).any():
            searched = active & kept
    # embed each distinct (normalised) sentence once
    act_rows = np.flatnonzero(searched)
    uniq_keys, first, inverse = np.unique(keys[act_rows], return_index=True, return_inverse=True)
    notify("embed")
    with timer.stage("embed"):
        vectors, cached = embed_with_cache([texts[act_rows[f]] for f in first], config, engine)
    dim = vectors.shape[1] if vectors.size else 1
    emb = np.zeros((len(texts), dim), dtype=np.float32)
    if len(act_rows):
        emb[act_rows] = vectors[inverse]
    notify("candidates")
    with timer.stage("candidates"):
        nb_i, nb_j, nb_cos = neighbour_pairs(emb, groups, cand, keys=keys, active=searched)
    notify("verify")
    side_a, side_b = [texts[i] for i in nb_i], [texts[j] for j in nb_j]
    with timer.stage("verify"):
        scores, n_scored = score_distinct(side_a, side_b, config.verify, engine)
    decided = decide(scores, side_a, side_b, config.verify)
    flagged, threshold = decided.flagged, decided.threshold
    keep = np.flatnonzero(flagged | config.keep_rejected)
    tables = [
        # identical texts share one vector, so their cosine is 1 (and needs no embedding at all)
        pairs_rows(sent, ex_i, ex_j, np.ones(len(ex_i)), np.ones(len(ex_i)), [Match.EXACT.value] * len(ex_i),
                    [EXACT_REASON] * len(ex_i)),
        pairs_rows(sent, nb_i[keep], nb_j[keep], nb_cos[keep], scores[keep], decided.matches(keep),
                    decided.reasons(keep)),
    ]
    pairs = pa.concat_tables(tables).sort_by([("doc_a", "ascending"), ("index_a", "ascending"),
                                              ("doc_b", "ascending"), ("index_b", "ascending")])
    stats = {
        "sentences_searched": int(active.sum()), "sentences_short": int((~active).sum()),
        "distinct_sentences": n_distinct, "sentences_embedded": len(uniq_keys),
        "sentences_prefiltered_out": int((active & ~searched).sum()), "embeddings_from_cache": cached, "exact_pairs": len(ex_i), "candidate_pairs": len(nb_i),
        "pairs_cross_encoded": n_scored, "paraphrase_pairs": int(flagged.sum()),
        "rejected_pairs": int((~flagged).sum()), "threshold": threshold, "prefilter": searched is not active,
        "prefilter_estimate": estimate,
    }
    return pairs, stats


def _prefilter(texts: list[str], groups: np.ndarray, keys: np.ndarray, active: np.ndarray,
               config: ScanConfig) -> tuple[np.ndarray, float | None]:
    """``scanner.prefilter.prefilter`` with the table distilled from this scan's embedder (cached beside the
    embedding cache, or in memory with the cache off)."""
    from scanner.prefilter import StaticEmbedder, prefilter

    model = resolve_embedder(config.embed.model)
    root = (config.cache_dir or default_cache_dir()) if config.cache else None
    embedder = StaticEmbedder.load(model, root, model_fingerprint(model))
    return prefilter(embedder, texts, groups, keys, active, config.candidates)


def scan(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    config: ScanConfig | None = None,
    **options: Any,
) -> pa.Table:
    """Scan documents for reused sentences; return the report as a ``pyarrow.Table`` (and write it to ``out``).

    >>> report = scan("examples/docs", threshold=0.8, scope="cross")      # doctest: +SKIP
    >>> report.to_pandas()[["doc_a", "text_a", "doc_b", "text_b", "score", "match"]]  # doctest: +SKIP

    ``options`` are the CLI's options as keywords (see ``ScanConfig.from_options``). The run metadata is in
    the returned table's schema metadata under ``b"scanner"``; the documents table is written beside ``out``.
    """
    if config is not None and options:
        raise ConfigError("pass either config or keyword options to scan(), not both")
    config = config or ScanConfig.from_options(**options)
    path_list = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    result = run_scan(path_list, config, out)
    meta = dict(result.pairs.schema.metadata or {})
    meta[b"scanner"] = json.dumps(result.metadata, default=str).encode()
    return result.pairs.replace_schema_metadata(meta)
