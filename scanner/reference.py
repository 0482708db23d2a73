"""Scans against a reference index (``scan ./new --against DIR``) and query search (``scan search``).

A one-way scan compares the scanned (new) documents with the index's sentences, and with each other unless
``compare_scanned`` is off (``--scope against``); it never compares the index with itself, so its cost grows
with new x reference. The index is read batch by batch and each new sentence keeps its ``top_k`` nearest
reference sentences (``candidates.neighbour_pairs_between`` + ``topk.top_k_per_query``), so memory stays bounded
whatever the index's size. Identical sentences are matched by hash as in a plain scan.

In the report, a pair with a reference sentence has that sentence on side ``a`` (the source) and
``origin_a = "reference"``; side ``b`` is always a scanned document. Pairs between two scanned documents
have ``origin_a = "scanned"`` and the usual order (``doc_a <= doc_b``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scanner.cache import embed_with_cache
from scanner.candidates import low_band, neighbour_pairs_between, text_key
from scanner.engine import Engine, open_engine
from scanner.errors import ConfigError
from scanner.exclusions import boilerplate_mask, quoted_mask
from scanner.index import ReferenceIndex, vectors_of
from scanner.ingest import discover
from scanner.match import decide, score_distinct
from scanner.reasons import EXACT_REASON
from scanner.report import documents_table, write_report
from scanner.scanning import NO_PAIRS, ScanConfig, ScanResult, find_pairs, read_collection, sentences_table
from scanner.schema import REFERENCE_PAIRS, SEARCH_HITS, Match, conform
from scanner.stats import Timer, run_metadata
from scanner.topk import top_k_per_query

REF_COLUMNS = ["doc", "index", "start", "end", "text", "key", "words", "vector"]


@dataclass(frozen=True)
class ReferenceConfig:
    """What a scan is compared with besides itself, and what does not count.

    ``index``: a reference index to scan against (None: none). ``compare_scanned``: also pair scanned
    documents with each other (``--scope against`` turns it off). ``boilerplate``: files or folders of text
    that may repeat; ``exclude_index``: indexes of such text; ``boilerplate_cosine``: how close a sentence
    must be to count as boilerplate. ``ignore_quotes``: leave quoted sentences out (see
    ``scanner.exclusions``). ``reference_batch``: index rows searched at once (memory vs. overhead).
    """

    index: str | None = None
    compare_scanned: bool = True
    boilerplate: tuple[str, ...] = ()
    exclude_index: tuple[str, ...] = ()
    boilerplate_cosine: float = 0.9
    ignore_quotes: bool = False
    reference_batch: int = 16384

    def __post_init__(self) -> None:
        if not self.compare_scanned and self.index is None:
            raise ConfigError("--scope against needs --against DIR (a reference index to compare with)")
        if not -1.0 <= self.boilerplate_cosine <= 1.0:
            raise ConfigError(f"--boilerplate-cosine must be in [-1, 1], got {self.boilerplate_cosine}")

    @property
    def active(self) -> bool:
        """Whether anything here changes a plain scan."""
        return bool(self.index or self.boilerplate or self.exclude_index or self.ignore_quotes)


def _reference_candidates(index: ReferenceIndex, emb: np.ndarray, keys: np.ndarray, rows: np.ndarray,
                          config: ScanConfig, batch_rows: int, min_words: int,
                          band: bool = False) -> tuple[dict[str, np.ndarray], pa.Table]:
    """Exact and top-k pairs (scanned row, reference row) over the index, batch by batch.

    Returns arrays ``ex_new``/``ex_ref``/``ex_cos`` (identical sentences) and ``nb_new``/``nb_ref``/``nb_cos``
    (each scanned row's top-k neighbours; with ``band``, below the scan's ``band_cosine`` only the row's
    ``band_top_k`` best), ``*_new`` being sentence rows and ``*_ref`` rows of the returned
    table of reference sentences: only the rows some pair uses are kept, so memory does not grow with the
    index."""
    ex_new, ex_ref, nb_new, nb_ref = [np.zeros(0, np.int64)] * 4
    ex_cos, nb_cos = np.zeros(0, np.float32), np.zeros(0, np.float32)
    kept: list[pa.Table] = []
    offset, k = 0, config.candidates.top_k
    for batch in index.batches(batch_rows, REF_COLUMNS):
        vecs, b_keys = vectors_of(batch), batch["key"].to_numpy()
        b_active = batch["words"].to_numpy() >= min_words
        hit = np.isin(keys[rows], b_keys[b_active])
        for r in rows[hit]:
            match = np.flatnonzero((b_keys == keys[r]) & b_active)
            ex_new = np.r_[ex_new, np.full(len(match), r)]
            ex_ref = np.r_[ex_ref, match + offset]
            ex_cos = np.r_[ex_cos, np.clip(vecs[match] @ emb[r], -1, 1)]
        qi, j, s = neighbour_pairs_between(emb[rows], vecs, config.candidates, keys[rows], b_keys, b_active)
        nb_new, nb_ref, nb_cos = top_k_per_query(np.r_[nb_new, rows[qi]], np.r_[nb_ref, j + offset], np.r_[nb_cos, s], k)
        kept.append(batch.drop_columns(["vector"]).append_column("gid", pa.array(np.arange(offset, offset + len(batch)))))
        used = np.union1d(ex_ref, nb_ref)  # keep only the reference rows some pair still uses
        kept = [t.filter(pc.is_in(t["gid"], pa.array(used))) for t in kept]
        offset += len(batch)
    if band:  # the scan's low band, judged from the scanned sentence's side (one-sided: the reference's own
        # neighbours are not searched)
        nb_new, nb_ref, nb_cos = low_band(nb_new, nb_ref, nb_cos, config.candidates)
    ref = pa.concat_tables(kept) if kept else None
    gids = ref["gid"].to_numpy() if ref is not None else np.zeros(0, np.int64)
    local = {g: i for i, g in enumerate(gids.tolist())}
    remap = np.vectorize(local.__getitem__, otypes=[np.int64])
    pairs = {
        "ex_new": ex_new, "ex_ref": remap(ex_ref) if len(ex_ref) else ex_ref, "ex_cos": ex_cos,
        "nb_new": nb_new, "nb_ref": remap(nb_ref) if len(nb_ref) else nb_ref, "nb_cos": nb_cos,
    }
    return pairs, ref if ref is not None else _no_reference()[1]


def _exclusion_blocks(reference: ReferenceConfig, config: ScanConfig, engine: Engine) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(keys, vectors) of boilerplate sentences: from ``--boilerplate`` files, then each ``--exclude-index``."""
    if reference.boilerplate:
        read = engine.read(discover(list(reference.boilerplate), config.ingest), config.ingest, config.segment)
        texts = sentences_table(read)["text"].to_pylist()
        if texts:
            vectors, _ = embed_with_cache(texts, config, engine)
            yield np.fromiter((text_key(t) for t in texts), np.int64, len(texts)), vectors
    for where in reference.exclude_index:
        for batch in ReferenceIndex(where).batches(reference.reference_batch, ["key", "vector"]):
            yield batch["key"].to_numpy(), vectors_of(batch)


def _quoted(read: pa.Table) -> np.ndarray:
    """Quoted-sentence mask in the row order of ``sentences_table(read)``."""
    parts = [quoted_mask(r["text"], r["starts"], r["ends"])
             for r in read.filter(pc.equal(read["status"], "scanned")).select(["text", "starts", "ends"]).to_pylist()]
    return np.concatenate(parts) if parts else np.zeros(0, bool)


def run_against(
    paths: Sequence[str | os.PathLike[str]],
    reference: ReferenceConfig,
    config: ScanConfig | None = None,
    out: str | os.PathLike[str] | None = None,
    *,
    engine: Engine | None = None,
    progress: bool = False,
    on_stage: Callable[[str], None] | None = None,
) -> ScanResult:
    """Scan ``paths`` against ``reference.index`` (and/or with boilerplate and quotes left out).

    Returns a ``ScanResult`` whose pairs follow ``schema.REFERENCE_PAIRS``. The index must have been built with
    the embedder of ``config`` (else ``IndexError_``, before any work)."""
    config = config or ScanConfig()
    started, timer, notify = time.perf_counter(), Timer(), on_stage or (lambda _n: None)
    index = ReferenceIndex(reference.index) if reference.index else None
    for ix in ([index] if index else []) + [ReferenceIndex(w) for w in reference.exclude_index]:
        ix.check_embedder(config.embed.model)
    with read_collection(paths, config, out, engine, timer, notify, progress) as (engine, read, sent):
        side = IndexSide(read, index, reference, config, engine)
        pairs, stats = find_pairs(sent, config, engine, against=side, timer=timer, notify=notify)
    counted = pairs.set_column(0, "doc_a", pc.if_else(pc.equal(pairs["origin_a"], "reference"),
                                                      pc.binary_join_element_wise("reference:", pairs["doc_a"], ""), pairs["doc_a"]))
    documents = documents_table(read, counted)  # reference sentences must not count for a scanned doc of that name
    segmenter = next((s for s in read["segmenter"].to_pylist() if s), "none")
    metadata = run_metadata(config, read, sent, pairs, stats, segmenter, engine.description, timer, started)
    metadata["reference"] = {
        "index": reference.index, "compare_scanned": reference.compare_scanned,
        "index_updated": index.manifest["updated"] if index else None,
        "boilerplate": list(reference.boilerplate), "exclude_index": list(reference.exclude_index),
        "boilerplate_cosine": reference.boilerplate_cosine, "ignore_quotes": reference.ignore_quotes,
    }
    ref_sizes = {doc: int(e["sentences"]) for doc, e in index.documents.items()} if index else None
    result = ScanResult(pairs=pairs, documents=documents, metadata=metadata, reference_sizes=ref_sizes)
    if out is not None:
        notify("write")
        result.out = write_report(pairs, documents, out, metadata, schema=REFERENCE_PAIRS, reference_sizes=ref_sizes)
    return result


@dataclass
class IndexSide:
    """A scan's other side when it runs against a reference index (``scanning.Against``): quoted sentences
    and boilerplate left out, and each scanned sentence's top-k neighbours among the index's sentences."""

    read: pa.Table
    index: ReferenceIndex | None
    reference: ReferenceConfig
    config: ScanConfig
    engine: Engine

    @property
    def compare_scanned(self) -> bool:
        return self.reference.compare_scanned

    def left_out(self, sent: pa.Table) -> np.ndarray:
        return _quoted(self.read) if self.reference.ignore_quotes else np.zeros(sent.num_rows, bool)

    def boilerplate(self, emb: np.ndarray, keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
        blocks = _exclusion_blocks(self.reference, self.config, self.engine)
        return boilerplate_mask(emb, keys, blocks, self.reference.boilerplate_cosine, rows)

    def candidates(self, emb: np.ndarray, keys: np.ndarray, rows: np.ndarray) -> tuple[dict[str, np.ndarray], pa.Table]:
        if self.index is None:
            return _no_reference()
        cand = self.config.candidates
        return _reference_candidates(self.index, emb, keys, rows, self.config, self.reference.reference_batch,
                                     cand.min_words, band=True)

    def counts(self) -> dict[str, Any]:
        return {"reference_documents": len(self.index.documents) if self.index else 0,
                "reference_sentences": self.index.sentences if self.index else 0}


def _no_reference() -> tuple[dict[str, np.ndarray], pa.Table]:
    return dict(NO_PAIRS), pa.table({"doc": pa.array([], pa.string()), "index": pa.array([], pa.int32()), "start": pa.array([], pa.int32()),
                            "end": pa.array([], pa.int32()), "text": pa.array([], pa.string())})


def search(
    queries: str | Sequence[str],
    against: str | os.PathLike[str],
    *,
    threshold: float | None = None,
    top_k: int = 10,
    min_cosine: float = 0.5,
    config: ScanConfig | None = None,
    engine: Engine | str | None = None,
    **options: Any,
) -> pa.Table:
    """Reference sentences that paraphrase each query, best first (schema ``SEARCH_HITS``).

    The index is searched for each query's ``top_k`` nearest sentences with cosine >= ``min_cosine`` (and for
    identical ones, reported as ``exact``); the cross-encoder then keeps those scoring >= ``threshold``
    (default: the model's). ``options`` are scan options such as ``embedder`` or ``cross_encoder``;
    ``engine`` is an open engine, or the name of one to open (``auto``, ``ray``, ``local``).

        >>> scanner.search("Bees dance to show where the flowers are.", against="ref-index")  # doctest: +SKIP
    """
    query_list = [queries] if isinstance(queries, str) else list(queries)
    if isinstance(engine, str):
        options["engine"], engine = engine, None
    config = config or ScanConfig.from_options(**options)
    config = dataclasses.replace(config, candidates=dataclasses.replace(config.candidates, top_k=top_k, min_cosine=min_cosine))
    if threshold is not None:
        config = dataclasses.replace(config, verify=dataclasses.replace(config.verify, threshold=threshold))
    index = ReferenceIndex(against)
    index.check_embedder(config.embed.model)
    own = engine is None
    engine = engine or open_engine(config.engine)
    try:
        emb, _ = embed_with_cache(query_list, config, engine)
        keys = np.fromiter((text_key(t) for t in query_list), np.int64, len(query_list))
        refp, ref = _reference_candidates(index, emb, keys, np.arange(len(query_list)), config, 16384, 0)
        ref_texts = ref["text"].to_pylist()
        side_a, side_b = [ref_texts[j] for j in refp["nb_ref"]], [query_list[i] for i in refp["nb_new"]]
        scores, _ = score_distinct(side_a, side_b, config.verify, engine)
    finally:
        if own:
            engine.close()
    decided = decide(scores, side_a, side_b, config.verify)
    cut, ok = decided.threshold, decided.flagged
    q = np.r_[refp["ex_new"], refp["nb_new"][ok]].astype(np.int64)
    r = np.r_[refp["ex_ref"], refp["nb_ref"][ok]].astype(np.int64)
    s = np.r_[np.ones(len(refp["ex_new"])), scores[ok]].astype(np.float32)
    cos = np.r_[refp["ex_cos"], refp["nb_cos"][ok]].astype(np.float32)
    match = [Match.EXACT.value] * len(refp["ex_new"]) + decided.matches(np.flatnonzero(ok))
    reason = [EXACT_REASON] * len(refp["ex_new"]) + decided.reasons(np.flatnonzero(ok))
    order = np.lexsort((r, -cos, -s, q))
    taken = ref.take(pa.array(r[order], pa.int64()))
    ranks = np.zeros(len(order), np.int32)
    for pos in range(1, len(order)):
        ranks[pos] = ranks[pos - 1] + 1 if q[order][pos] == q[order][pos - 1] else 0
    table = conform({
        "query": [query_list[i] for i in q[order]], "rank": pa.array(ranks + 1, pa.int32()),
        **{name: taken[name] for name in ("doc", "index", "start", "end", "text")},
        "cosine": cos[order], "score": s[order], "match": [match[i] for i in order], "reason": [reason[i] for i in order],
    }, SEARCH_HITS, "search hits")
    meta = {"index": str(against), "threshold": cut, "top_k": top_k, "min_cosine": min_cosine,
            "embedder": config.embed.model, "cross_encoder": config.verify.model}
    return table.replace_schema_metadata({b"scanner": json.dumps(meta).encode()})
