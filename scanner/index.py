"""Reference index: a persistent, incrementally updated store of embedded sentences to scan new documents against.

Layout of an index location (a local folder or any URI ``pyarrow.fs`` understands, e.g. ``s3://bucket/index``
when pyarrow's S3 support is installed)::

    manifest.json              what the index holds: the only file readers trust
    segments/<id>.parquet      sentence rows (``schema.index_rows_schema``): doc, offsets, text, key, vector

The manifest records the embedding model (name, resolved path, weight fingerprint from
``modelfiles.model_fingerprint``), vector dimension, tool version, creation and update times, and for every
document its content hash (sha256 of the raw bytes), segmenter, sentence count and the segment file that holds
its sentences. A segment row is live only if the manifest names its segment for its document, so retiring the
sentences of a changed or deleted document is a manifest edit.

Updates are crash-safe: new segment files get fresh names and are written (and, locally, fsynced) first; the
manifest is then written to a temporary name and renamed over ``manifest.json``; only after that are segment
files that no live document uses deleted. A crash at any point leaves the previous or the new manifest, each
pointing at files that exist; stray files are removed by the next update. One writer at a time.

Segments that come to hold mostly retired rows are compacted during an update: their live rows are copied
into the new segment (no model work) and the old file is collected.

Deletion is explicit: ``prune=True`` (``scan index --prune``) removes documents under ``prefix`` that are not
found under the given paths; without it an update only adds and replaces.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from scanner import __version__
from scanner.cache import embed_with_cache
from scanner.candidates import text_key, word_counts
from scanner.embed import resolve_embedder
from scanner.engine import Engine, open_engine
from scanner.errors import IndexError_
from scanner.ingest import Source, discover, read_source
from scanner.modelfiles import model_fingerprint
from scanner.scanning import ScanConfig, sentences_table
from scanner.schema import index_rows_schema

FORMAT = "paraphrase-scanner-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SEGMENTS = "segments"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Location:
    """An index folder on a ``pyarrow.fs`` filesystem: a local path or a URI such as ``file:///x`` or ``s3://b/x``."""

    def __init__(self, where: str | os.PathLike[str]) -> None:
        where = str(where)
        self.uri = where
        if "://" in where:
            try:
                self.fs, self.root = pafs.FileSystem.from_uri(where)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, ValueError) as exc:
                raise IndexError_(f"cannot open index location {where!r}: {exc}. Use a local folder or a URI "
                                  "pyarrow supports (file://, s3:// or gs:// with their extras installed)") from exc
        else:
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(where)
        self.root = self.root.rstrip("/")
        self.local = isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def _sync(self, path: str) -> None:
        if self.local:  # survive a power cut, not only a killed process
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def write_bytes_atomic(self, path: str, data: bytes) -> None:
        """Write to a temporary name in the same folder, then rename over ``path``."""
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        try:
            with self.fs.open_output_stream(tmp) as fh:
                fh.write(data)
            self._sync(tmp)
            self.fs.move(tmp, path)
        except BaseException:
            if self.exists(tmp):
                self.fs.delete_file(tmp)
            raise

    def write_table(self, path: str, table: pa.Table) -> None:
        pq.write_table(table, path, filesystem=self.fs, compression="zstd")
        self._sync(path)

    def read_bytes(self, path: str) -> bytes:
        with self.fs.open_input_stream(path) as fh:
            return bytes(fh.read())


def same_model(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two embedder records name the same weights: equal fingerprints, or equal paths when unfingerprinted."""
    if a.get("sha256", "unknown") != "unknown" or b.get("sha256", "unknown") != "unknown":
        return bool(a.get("sha256") == b.get("sha256"))
    return bool(a.get("path") == b.get("path"))


def embedder_record(model: str) -> dict[str, str]:
    path = resolve_embedder(model)
    return {"name": model, "path": path, "sha256": model_fingerprint(path)}


class ReferenceIndex:
    """A readable index: its manifest, and its live sentence rows in bounded batches."""

    def __init__(self, where: str | os.PathLike[str]) -> None:
        self.location = Location(where)
        path = self.location.path(MANIFEST)
        if not self.location.exists(path):
            raise IndexError_(f"no reference index at {str(where)!r} ({MANIFEST} is missing): build one with "
                              f"`scan index ./sources --index {where}`")
        try:
            self.manifest: dict[str, Any] = json.loads(self.location.read_bytes(path))
        except (OSError, ValueError) as exc:
            raise IndexError_(f"the index manifest {path!r} cannot be read ({exc}): rebuild the index") from exc
        if self.manifest.get("format") != FORMAT or self.manifest.get("format_version") != FORMAT_VERSION:
            raise IndexError_(f"{str(where)!r} is not a version-{FORMAT_VERSION} paraphrase-scanner index: rebuild it")

    @property
    def documents(self) -> dict[str, dict[str, Any]]:
        return dict(self.manifest["documents"])

    @property
    def sentences(self) -> int:
        return sum(int(d["sentences"]) for d in self.manifest["documents"].values())

    def check_embedder(self, model: str) -> None:
        """Raise ``IndexError_`` unless ``model`` is the embedding model the index was built with."""
        mine, theirs = self.manifest["embedder"], embedder_record(model)
        if not same_model(mine, theirs):
            raise IndexError_(
                f"the index at {self.location.uri!r} was built with embedder {mine['name']!r} (weights "
                f"{mine['sha256']}), but this run uses {model!r} ({theirs['sha256']}): pass --embedder "
                f"{mine['name']} or rebuild the index with this model")

    def batches(self, batch_rows: int = 16384, columns: Sequence[str] | None = None) -> Iterator[pa.Table]:
        """The live rows, at most ``batch_rows`` at a time, segment by segment (memory stays bounded)."""
        live: dict[str, set[str]] = {}
        for doc, entry in self.manifest["documents"].items():
            live.setdefault(entry["segment"], set()).add(doc)
        cols = list(columns) if columns is not None else None
        if cols is not None and "doc" not in cols:
            cols.append("doc")
        for segment in sorted(live):
            path = self.location.path(SEGMENTS, segment)
            try:
                fh = self.location.fs.open_input_file(path)
            except (OSError, FileNotFoundError) as exc:
                raise IndexError_(f"the index at {self.location.uri!r} is damaged: {path!r} is missing "
                                  f"({exc.__class__.__name__}); rebuild it") from exc
            with fh:
                keep = pa.array(sorted(live[segment]), pa.string())
                for batch in pq.ParquetFile(fh).iter_batches(batch_size=batch_rows, columns=cols):
                    table = pa.Table.from_batches([batch])
                    table = table.filter(pc.is_in(table["doc"], value_set=keep))
                    if table.num_rows:
                        yield table


def vectors_of(table: pa.Table) -> np.ndarray:
    """The ``vector`` column of index rows as a float32 (rows x dim) array."""
    column = table["vector"].combine_chunks()
    dim = column.type.list_size
    return np.asarray(column.flatten(), dtype=np.float32).reshape(-1, dim)


@dataclass
class IndexUpdate:
    """What an update did. Lists hold document ids; ``embedded`` counts sentences sent to the model."""

    location: str
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    embedded: int = 0
    documents: int = 0
    sentences: int = 0
    written: bool = False
    seconds: float = 0.0


def _file_sha256(path: str, limit: int) -> str | None:
    """sha256 of a file as ``ingest.read_source`` computes it, or None if it cannot be read or is too large."""
    try:
        if os.path.getsize(path) > limit:
            return None
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    except OSError:
        return None


def _new_manifest(config: ScanConfig) -> dict[str, Any]:
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "tool_version": __version__, "created": _now(),
            "updated": _now(), "embedder": embedder_record(config.embed.model), "dim": None,
            "documents": {}, "skipped": {}, "segments": {}, "history": []}


def update_index(
    paths: Sequence[str | os.PathLike[str]],
    where: str | os.PathLike[str],
    config: ScanConfig | None = None,
    *,
    prefix: str = "",
    prune: bool = False,
    engine: Engine | None = None,
    progress: bool = False,
    on_stage: Callable[[str], None] | None = None,
) -> IndexUpdate:
    """Build the index at ``where`` from ``paths``, or bring it up to date with them.

    Document ids are the paths relative to the given root (as in ``scan``), preceded by ``prefix``. Only new
    documents and documents whose bytes changed are read, segmented and embedded; the sentences of changed
    documents are replaced. With ``prune``, indexed documents under ``prefix`` that are no longer found are
    removed. Unchanged inputs do no model work and leave the index untouched. An index built with another
    embedding model is refused (``IndexError_``).
    """
    config = config or ScanConfig()
    started = time.perf_counter()
    location = Location(where)
    exists = location.exists(location.path(MANIFEST))
    if exists:
        current = ReferenceIndex(where)
        current.check_embedder(config.embed.model)
        manifest = current.manifest
    else:
        manifest = _new_manifest(config)
    sources = [dataclasses.replace(s, doc=prefix + s.doc) for s in discover(list(paths), config.ingest)]
    result = IndexUpdate(location=location.uri)
    docs: dict[str, dict[str, Any]] = manifest["documents"]
    skipped: dict[str, dict[str, Any]] = manifest["skipped"]
    skipped_before = json.dumps(skipped, sort_keys=True)
    to_read = _sources_to_read(sources, config, docs, skipped, result)
    found = {s.doc for s in sources}
    if prune:
        result.removed = sorted(d for d in docs if d.startswith(prefix) and d not in found)
        for doc in [d for d in skipped if d.startswith(prefix) and d not in found]:
            del skipped[doc]  # a file once unreadable and now gone
    rows = None
    if to_read:
        own = engine is None
        engine = engine or open_engine(config.engine, progress=progress)
        try:
            (on_stage or (lambda _n: None))("read")
            read = engine.read(to_read, config.ingest, config.segment)
            rows = _embedded_rows(read, config, engine, on_stage, result)
        finally:
            if own:
                engine.close()
        _record_read(read, docs, manifest, result)
    for doc in result.removed:
        docs.pop(doc, None)
        if doc not in result.skipped:  # pruned, not merely unreadable now
            skipped.pop(doc, None)
    if not (result.added or result.changed or result.removed) and json.dumps(skipped, sort_keys=True) == skipped_before:
        return _finish(result, manifest, started)
    rows = _compact(location, manifest, rows)
    if rows is not None and rows.num_rows:  # else every file read was skipped and nothing needed compacting
        segment = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:12]}.parquet"
        location.fs.create_dir(location.path(SEGMENTS), recursive=True)
        location.write_table(location.path(SEGMENTS, segment), rows)
        for doc in set(rows["doc"].to_pylist()):
            docs[doc]["segment"] = segment
        manifest["segments"][segment] = rows.num_rows
        manifest["dim"] = rows.schema.field("vector").type.list_size
    used = {d["segment"] for d in docs.values()}
    manifest["segments"] = {s: n for s, n in manifest["segments"].items() if s in used}
    manifest.update(updated=_now(), tool_version=__version__)
    manifest["history"].append({"time": manifest["updated"], "added": len(result.added), "changed": len(result.changed),
                                "removed": len(result.removed), "embedded": result.embedded})
    location.fs.create_dir(location.root, recursive=True)
    location.write_bytes_atomic(location.path(MANIFEST), json.dumps(manifest, indent=1, sort_keys=True).encode())
    result.written = True
    _collect_garbage(location, set(manifest["segments"]))
    return _finish(result, manifest, started)


def _sources_to_read(sources: Sequence[Source], config: ScanConfig, docs: dict[str, Any], skipped: dict[str, Any],
                     result: IndexUpdate) -> list[Source]:
    """The sources that are new or changed (by sha256 of their bytes). Files that cannot be indexed are
    recorded as skipped here when that is known without segmenting them, so an unchanged collection never needs
    an engine."""
    to_read: list[Source] = []
    for src in sources:
        digest = None if src.skip_reason else _file_sha256(src.path, config.ingest.max_bytes)
        if digest is None:  # unsupported, a bad link, unreadable or too large: read_source says why, cheaply
            _skip(src.doc, read_source(src, config.ingest).skip_reason or "cannot be read", None, docs, skipped, result)
            continue
        known = docs.get(src.doc) or skipped.get(src.doc)
        if known is not None and known["sha256"] == digest:
            result.unchanged.append(src.doc)
            if src.doc in skipped:
                result.skipped[src.doc] = skipped[src.doc]["reason"]
        else:
            to_read.append(src)
    return to_read


def _embedded_rows(read: pa.Table, config: ScanConfig, engine: Engine, on_stage: Callable[[str], None] | None,
                   result: IndexUpdate) -> pa.Table:
    """Index rows for the scanned documents of ``read``: each distinct sentence text embedded once."""
    sent = sentences_table(read)
    texts = sent["text"].to_pylist()
    if not texts:
        return pa.table({})
    unique = sorted(set(texts))
    (on_stage or (lambda _n: None))("embed")
    vectors, _ = embed_with_cache(unique, config, engine)
    result.embedded = len(unique)
    where = {t: i for i, t in enumerate(unique)}
    vecs = vectors[[where[t] for t in texts]] if texts else vectors[:0]
    dim = vecs.shape[1]
    columns = {name: sent[name] for name in sent.column_names}
    columns["key"] = pa.array([text_key(t) for t in texts], pa.int64())
    columns["words"] = pa.array(word_counts(texts), pa.int32())
    columns["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1), pa.float32()), dim)
    return pa.table(columns, schema=index_rows_schema(dim))


def _record_read(read: pa.Table, docs: dict[str, dict[str, Any]], manifest: dict[str, Any], result: IndexUpdate) -> None:
    for rec in read.select(["doc", "path", "status", "reason", "sha256", "starts", "segmenter"]).to_pylist():
        doc = rec["doc"]
        if rec["status"] != "scanned":
            _skip(doc, rec["reason"] or "skipped", rec["sha256"], docs, manifest["skipped"], result)
            continue
        (result.changed if doc in docs else result.added).append(doc)
        manifest["skipped"].pop(doc, None)
        docs[doc] = {"sha256": rec["sha256"], "path": rec["path"], "sentences": len(rec["starts"]),
                     "segmenter": rec["segmenter"], "indexed": _now(), "segment": ""}


def _skip(doc: str, reason: str, sha256: str | None, docs: dict[str, Any], skipped: dict[str, Any],
          result: IndexUpdate) -> None:
    """Record a file that cannot be indexed; if it was indexed before, its old sentences are retired."""
    result.skipped[doc] = reason
    skipped[doc] = {"reason": reason, "sha256": sha256}
    if doc in docs:
        del docs[doc]
        result.removed.append(doc)


def _compact(location: Location, manifest: dict[str, Any], rows: pa.Table | None) -> pa.Table | None:
    """Add to the new segment the live rows of segments that are now mostly retired rows (no model work), so
    the index does not grow without bound as documents change; the old segments are then collected."""
    live: dict[str, int] = {}
    for entry in manifest["documents"].values():
        live[entry["segment"]] = live.get(entry["segment"], 0) + int(entry["sentences"])
    sparse = [seg for seg, total in manifest["segments"].items() if live.get(seg, 0) > 0 and 2 * live[seg] < total]
    if not sparse:
        return rows
    parts = [rows] if rows is not None and rows.num_rows else []
    for seg in sparse:
        docs = pa.array(sorted(d for d, e in manifest["documents"].items() if e["segment"] == seg), pa.string())
        with location.fs.open_input_file(location.path(SEGMENTS, seg)) as fh:
            table = pq.read_table(fh)
        parts.append(table.filter(pc.is_in(table["doc"], value_set=docs)))
    return pa.concat_tables(parts)


def _collect_garbage(location: Location, keep: set[str]) -> None:
    """Delete segment files the manifest no longer uses (and temporary files of interrupted writes)."""
    selector = pafs.FileSelector(location.path(SEGMENTS), allow_not_found=True)
    for info in location.fs.get_file_info(selector):
        if info.type == pafs.FileType.File and info.base_name not in keep:
            location.fs.delete_file(info.path)
    for info in location.fs.get_file_info(pafs.FileSelector(location.root, allow_not_found=True)):
        if info.base_name.startswith(MANIFEST + ".") and info.base_name.endswith(".tmp"):
            location.fs.delete_file(info.path)


def _finish(result: IndexUpdate, manifest: dict[str, Any], started: float) -> IndexUpdate:
    result.documents = len(manifest["documents"])
    result.sentences = sum(int(d["sentences"]) for d in manifest["documents"].values())
    result.seconds = round(time.perf_counter() - started, 3)
    return result
