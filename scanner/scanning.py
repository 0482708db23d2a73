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
from typing import Any, Protocol

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
from scanner.schema import PAIRS, REFERENCE_PAIRS, SENTENCES, Match, conform
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
        pairs, stats = find_pairs(sent, config, engine, timer=timer, notify=notify)
    documents = documents_table(read, pairs)
    segmenter = next((s for s in read["segmenter"].to_pylist() if s), "none")
    metadata = run_metadata(config, read, sent, pairs, stats, segmenter, engine.description, timer, started)
    result = ScanResult(pairs=pairs, documents=documents, metadata=metadata)
    if out is not None:
        notify("write")
        with timer.stage("write"):
            result.out = write_report(pairs, documents, out, metadata)
    return result


class Against(Protocol):
    """What a scan against a reference index adds to ``find_pairs`` (``scanner.reference.IndexSide``): rows left
    out before embedding (quotes), rows left out by their vectors (boilerplate), and the candidate pairs with the
    index's sentences."""

    compare_scanned: bool

    def left_out(self, sent: pa.Table) -> np.ndarray: ...

    def boilerplate(self, emb: np.ndarray, keys: np.ndarray, rows: np.ndarray) -> np.ndarray: ...

    def candidates(self, emb: np.ndarray, keys: np.ndarray,
                   rows: np.ndarray) -> tuple[dict[str, np.ndarray], pa.Table]: ...

    def counts(self) -> dict[str, Any]: ...


def find_pairs(sentences: pa.Table, config: ScanConfig, engine: Engine, *, against: Against | None = None,
               timer: Timer | None = None,
               notify: Callable[[str], None] | None = None) -> tuple[pa.Table, dict[str, Any]]:
    """Every scan's matching on a ``SENTENCES`` table: exact pairs by hash, then embeddings, top-k candidates,
    ``score_distinct`` and ``decide``. Within the collection, and with ``against`` also with a reference
    index's sentences (those pairs carry ``origin_a = "reference"``). ``run_scan``, ``run_against`` and
    ``scanner.dedupe`` all match here. Returns the report's pairs and the run's counts."""
    sent = conform(sentences, SENTENCES, "sentences")
    timer, notify = timer or Timer(), notify or (lambda _name: None)
    cand = config.candidates
    texts = sent["text"].to_pylist()
    groups = np.unique(np.asarray(sent["doc"].to_pylist(), dtype=object), return_inverse=True)[1]
    long_enough = word_counts(texts) >= cand.min_words
    keys = np.fromiter((text_key(t) for t in texts), dtype=np.int64, count=len(texts))
    left_out = against.left_out(sent) if against is not None else np.zeros(len(texts), bool)
    active = long_enough & ~left_out
    searched, estimate, prefiltered = active, None, False
    # the pre-filter drops sentences with no near neighbour in the collection: against an index it cannot know
    if against is None and config.embed.model != HASHING and cand.uses_prefilter(len(np.unique(keys[active]))):
        notify("prefilter")
        with timer.stage("prefilter"):
            kept, estimate = _prefilter(texts, groups, keys, active, config)
        if (kept != active).any():
            searched, prefiltered = active & kept, True
    # embed each distinct (normalised) sentence once
    rows = np.flatnonzero(searched)
    uniq_keys, first, inverse = np.unique(keys[rows], return_index=True, return_inverse=True)
    notify("embed")
    with timer.stage("embed"):
        vectors, cached = embed_with_cache([texts[rows[f]] for f in first], config, engine)
    emb = np.zeros((len(texts), vectors.shape[1] if vectors.size else 1), dtype=np.float32)
    if len(rows):
        emb[rows] = vectors[inverse]
    boiler = np.zeros(len(texts), bool)
    if against is not None:
        with timer.stage("boilerplate"):
            boiler = against.boilerplate(emb, keys, rows)
        active, searched = active & ~boiler, searched & ~boiler
    within = against is None or against.compare_scanned
    with timer.stage("exact"):
        ex_i, ex_j = exact_pairs(keys, groups, cand.scope, active) if within else (np.zeros(0, np.int64),) * 2
    notify("candidates")
    with timer.stage("candidates"):
        nb_i, nb_j, nb_cos = (neighbour_pairs(emb, groups, cand, keys=keys, active=searched) if within
                              else (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)))
        refp, ref = (against.candidates(emb, keys, np.flatnonzero(active)) if against is not None
                     else (NO_PAIRS, None))
    notify("verify")
    ref_texts = [] if ref is None else ref["text"].to_pylist()
    side_a = [texts[i] for i in nb_i] + [ref_texts[j] for j in refp["nb_ref"]]
    side_b = [texts[j] for j in nb_j] + [texts[i] for i in refp["nb_new"]]
    with timer.stage("verify"):
        scores, n_scored = score_distinct(side_a, side_b, config.verify, engine)
    decided = decide(scores, side_a, side_b, config.verify)
    keep = decided.flagged | config.keep_rejected

    def kept(part: slice, a: np.ndarray, b: np.ndarray, cosine: np.ndarray) -> tuple[Any, ...]:
        """(a, b, cosine, score, match, reason) of the kept pairs in ``part`` of the decided pairs."""
        at = np.arange(len(scores))[part][keep[part]]
        mask = keep[part]
        return a[mask], b[mask], cosine[mask], scores[at], decided.matches(at), decided.reasons(at)

    # identical texts share one vector, so their cosine is 1 (and needs no embedding at all)
    tables = [pairs_rows(sent, ex_i, ex_j, np.ones(len(ex_i)), np.ones(len(ex_i)), [Match.EXACT.value] * len(ex_i),
                         [EXACT_REASON] * len(ex_i)),
              pairs_rows(sent, *kept(slice(0, len(nb_i)), nb_i, nb_j, nb_cos))]
    order = [("doc_a", "ascending"), ("index_a", "ascending"), ("doc_b", "ascending"), ("index_b", "ascending")]
    if ref is None:
        pairs = pa.concat_tables(tables).sort_by(order)
    else:
        n_ex = len(refp["ex_new"])
        outside = [pairs_rows(sent, refp["ex_ref"], refp["ex_new"], refp["ex_cos"], np.ones(n_ex),
                              [Match.EXACT.value] * n_ex, [EXACT_REASON] * n_ex, side_a=ref),
                   pairs_rows(sent, *kept(slice(len(nb_i), None), refp["nb_ref"], refp["nb_new"], refp["nb_cos"]),
                              side_a=ref)]
        origins = ["scanned"] * sum(t.num_rows for t in tables) + ["reference"] * sum(t.num_rows for t in outside)
        pairs = pa.concat_tables(tables + outside).append_column("origin_a", pa.array(origins, pa.string()))
        pairs = conform(pairs, REFERENCE_PAIRS, "pairs").sort_by([*order, ("origin_a", "ascending")])
    stats = {
        "sentences_searched": int(active.sum()), "sentences_short": int((~long_enough).sum()),
        "distinct_sentences": len(np.unique(keys[active])), "sentences_embedded": len(uniq_keys),
        "sentences_prefiltered_out": int((active & ~searched).sum()), "embeddings_from_cache": cached,
        "exact_pairs": len(ex_i) + len(refp["ex_new"]), "candidate_pairs": len(scores),
        "pairs_cross_encoded": n_scored, "paraphrase_pairs": int(decided.flagged.sum()),
        "rejected_pairs": int((~decided.flagged).sum()), "threshold": decided.threshold,
        "prefilter": prefiltered, "prefilter_estimate": estimate,
    }
    if against is not None:
        stats.update(sentences_quoted=int((left_out & long_enough).sum()), sentences_boilerplate=int(boiler.sum()),
                     **against.counts())
    return pairs, stats


#: no pairs with a reference index (the shape of ``Against.candidates``'s arrays)
NO_PAIRS: dict[str, np.ndarray] = {
    **{k: np.zeros(0, np.int64) for k in ("ex_new", "ex_ref", "nb_new", "nb_ref")},
    "ex_cos": np.zeros(0, np.float32), "nb_cos": np.zeros(0, np.float32),
}


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
