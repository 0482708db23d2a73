"""Report stage: the pairs table and the documents table, written atomically as Parquet with run metadata.

``report.parquet`` holds one row per flagged pair (schema ``PAIRS``); ``report.docs.parquet`` one row per
input file (schema ``DOCUMENTS``); ``report.pairs_by_doc.parquet`` one row per pair of documents with flagged
sentences (schema ``PAIRS_BY_DOC``). The run metadata (tool version, models and their content hashes,
thresholds, segmenter, counts, per-stage timings) is stored as JSON under the ``scanner`` key of both
files' Parquet metadata: ``read_metadata(path)`` returns it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scanner.errors import OutputError
from scanner.schema import DOCUMENTS, PAIRS, PAIRS_BY_DOC, conform

METADATA_KEY = b"scanner"


def sidecar_path(out: str | os.PathLike[str], kind: str) -> Path:
    """``report.parquet`` -> ``report.<kind>.parquet`` (e.g. ``report.docs.parquet``)."""
    out = Path(out)
    return out.with_name(f"{out.stem}.{kind}{out.suffix or '.parquet'}")


def check_writable(out: str | os.PathLike[str]) -> Path:
    """Fail before any work if the report cannot be written: the folder must exist and be writable."""
    path = Path(out)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputError(f"--out {str(out)!r} is a folder; give a file name such as {str(path / 'report.parquet')!r}")
    if not folder.is_dir():
        raise OutputError(f"the folder of --out {str(out)!r} does not exist: create {str(folder)!r} first")
    try:  # a real probe: os.access says yes to root on read-only mounts and pseudo-filesystems
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write in {str(folder)!r} ({exc.strerror or exc}): choose another --out") from exc
    return path


def atomic_write_table(table: pa.Table, path: Path, metadata: dict[str, Any] | None = None) -> None:
    """Write Parquet to a temporary file in the same folder, fsync it, then rename it over ``path``.

    A reader (or a crash) never sees a half-written report: ``path`` holds either the old file or the new one.
    """
    if metadata is not None:
        meta = dict(table.schema.metadata or {})
        meta[METADATA_KEY] = json.dumps(metadata, sort_keys=True, default=str).encode()
        table = table.replace_schema_metadata(meta)
    _atomic_write(path, lambda fh: pq.write_table(table, fh, compression="zstd"))


def atomic_write_bytes(data: bytes, path: Path) -> None:
    """Write bytes (e.g. the HTML report) the same way: temporary file in the folder, fsync, rename."""
    _atomic_write(path, lambda fh: fh.write(data))


def _atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a report gets the usual permissions of a new file
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask can only set it)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The run metadata stored in a report (or its docs sidecar)."""
    meta = pq.read_schema(path).metadata or {}
    if METADATA_KEY not in meta:
        raise OutputError(f"{path} has no scanner metadata: is it a report written by scan?")
    return dict(json.loads(meta[METADATA_KEY]))


def flagged_counts(pairs: pa.Table) -> dict[str, int]:
    """Number of distinct flagged sentences per document (rejected rows do not count)."""
    flagged = pairs.filter(pc.not_equal(pairs["match"], "rejected"))
    seen: set[tuple[str, int]] = set()
    for side in ("a", "b"):
        seen.update(zip(flagged[f"doc_{side}"].to_pylist(), flagged[f"index_{side}"].to_pylist(), strict=True))
    counts: dict[str, int] = {}
    for doc, _ in seen:
        counts[doc] = counts.get(doc, 0) + 1
    return counts


def documents_table(read: pa.Table, pairs: pa.Table) -> pa.Table:
    """The documents table: every input file with its status, and the share of its sentences flagged."""
    counts = flagged_counts(pairs)
    sentences = np.array([len(s) for s in read["starts"].to_pylist()], dtype=np.int32)
    flagged = np.array([counts.get(d, 0) for d in read["doc"].to_pylist()], dtype=np.int32)
    scanned = np.array([s == "scanned" for s in read["status"].to_pylist()])
    share = np.where(sentences > 0, flagged / np.maximum(sentences, 1), 0.0)
    chars = [len(t) if t is not None else None for t in read["text"].to_pylist()]
    return conform({
        "doc": read["doc"], "path": read["path"], "status": read["status"], "reason": read["reason"],
        "format": read["format"], "encoding": read["encoding"], "bytes": read["bytes"], "sha256": read["sha256"],
        "chars": chars,
        "sentences": pa.array(np.where(scanned, sentences, 0), pa.int32()),
        "flagged_sentences": pa.array(flagged, pa.int32()),
        "flagged_share": pa.array(np.where(scanned, share, 0.0)),
    }, DOCUMENTS, "documents")


def pairs_by_doc(pairs: pa.Table, documents: pa.Table, reference_sizes: dict[str, int] | None = None) -> pa.Table:
    """Aggregate flagged sentence pairs (rejected rows left out) per pair of documents (schema ``PAIRS_BY_DOC``).

    ``sentences_a``/``sentences_b`` count distinct sentences of each document involved in the pair's matches,
    ``share_*`` divide them by the document's sentence count (from ``documents``). For a pair inside one
    document (scope ``within``) both sides count the same sentences. Ranked by ``max_share``, then by
    ``flagged_pairs``, ``max_score`` and the document ids, so the order is the same on every run.
    ``reference_sizes`` gives the sentence counts of indexed documents (side a of rows whose ``origin_a`` is
    ``reference``, in a scan against an index).
    """
    sizes = dict(zip(documents["doc"].to_pylist(), documents["sentences"].to_pylist(), strict=True))
    ref_sizes = reference_sizes or {}
    origin = pairs["origin_a"].to_pylist() if "origin_a" in pairs.column_names else [None] * pairs.num_rows
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for r, side in zip(pairs.select(["doc_a", "index_a", "doc_b", "index_b", "score", "match"]).to_pylist(), origin,
                       strict=True):
        if r["match"] == "rejected":
            continue
        if side == "reference":
            sizes.setdefault(f"reference:{r['doc_a']}", ref_sizes.get(r["doc_a"], 0))
            r["doc_a"] = f"reference:{r['doc_a']}"
        g = groups.setdefault((r["doc_a"], r["doc_b"]), {"a": set(), "b": set(), "scores": [], "exact": 0, "paraphrase": 0})
        g["a"].add(r["index_a"])
        g["b"].add(r["index_b"])
        g["scores"].append(r["score"])
        g[r["match"]] += 1
    rows: list[dict[str, Any]] = []
    for (doc_a, doc_b), g in groups.items():
        a, b = (g["a"] | g["b"], g["a"] | g["b"]) if doc_a == doc_b else (g["a"], g["b"])
        share_a, share_b = len(a) / max(sizes.get(doc_a) or 0, 1), len(b) / max(sizes.get(doc_b) or 0, 1)
        rows.append({
            "doc_a": doc_a, "doc_b": doc_b, "flagged_pairs": len(g["scores"]), "sentences_a": len(a),
            "sentences_b": len(b), "share_a": share_a, "share_b": share_b, "max_share": max(share_a, share_b),
            "mean_score": float(np.mean(g["scores"])), "max_score": float(np.max(g["scores"])),
            "exact_pairs": g["exact"], "paraphrase_pairs": g["paraphrase"],
        })
    rows.sort(key=lambda r: (-r["max_share"], -r["flagged_pairs"], -r["max_score"], r["doc_a"], r["doc_b"]))
    columns = {name: [r.get(name) for r in rows] for name in PAIRS_BY_DOC.names}
    columns["rank"] = list(range(1, len(rows) + 1))
    return conform(columns, PAIRS_BY_DOC, "pairs_by_doc") if rows else PAIRS_BY_DOC.empty_table()


def write_report(pairs: pa.Table, documents: pa.Table, out: str | os.PathLike[str], metadata: dict[str, Any], *,
                 schema: pa.Schema = PAIRS, reference_sizes: dict[str, int] | None = None) -> Path:
    """Write the sidecars (documents, pairs by document), then the report, so a report on disk always has them.

    ``schema`` is ``PAIRS``, or ``REFERENCE_PAIRS`` for a scan against an index (then ``reference_sizes`` gives
    the indexed documents' sentence counts, see ``pairs_by_doc``)."""
    path = check_writable(out)
    documents, pairs = conform(documents, DOCUMENTS, "documents"), conform(pairs, schema, "pairs")
    try:
        atomic_write_table(documents, sidecar_path(path, "docs"), metadata)
        atomic_write_table(pairs_by_doc(pairs, documents, reference_sizes), sidecar_path(path, "pairs_by_doc"), metadata)
        atomic_write_table(pairs, path, metadata)
    except OSError as exc:  # e.g. the disk filled up during the run: say so in one line, leave no partial file
        raise OutputError(f"cannot write the report {str(out)!r} ({exc.strerror or exc}): free space or choose "
                          "another --out; finished embeddings stay in the cache, so a re-run is quick") from exc
    return path
