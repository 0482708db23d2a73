"""The HTML report: one self-contained file (no network, no external assets) for people deciding about reuse.

It shows the document pairs ranked as in ``<stem>.pairs_by_doc.parquet`` (paginated), and for the selected pair
the two documents side by side with the flagged sentences highlighted, coloured by match kind, with score and
cosine on hover; clicking a highlight shows and marks its partner(s) in the other document. A score slider and
match-kind boxes filter both the list and the highlights. Rejected candidates (``--keep-rejected``) are left out.

The documents' text is not stored in the report, so it is read again from the paths recorded in the documents
table (``load_texts``), decoded exactly as the scan did, and used only if its sha256 still equals the one
recorded: offsets then point at the same characters. A missing or changed file is said so in the page, and its
flagged sentences (which the report does hold) are shown without their context.

``report_data`` is the pure part (tables in, a JSON-ready dict out) and is tested without a browser;
``render_html`` embeds that dict into the page template.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from scanner.reasons import review_notes
from scanner.report import atomic_write_bytes, pairs_by_doc

#: documents longer than this are shown as their flagged sentences only, so the page stays light
MAX_DOC_CHARS = 1_000_000


@dataclass(frozen=True)
class DocText:
    """A document's text as read back for the page, or None with the reason it could not be used."""

    text: str | None
    note: str | None = None


def load_texts(documents: pa.Table, root: str | os.PathLike[str] | None = None,
               max_chars: int = MAX_DOC_CHARS) -> dict[str, DocText]:
    """Read scanned documents back from disk, as the scan decoded them, checking their sha256.

    ``root``: look for each document under this folder by its id (the path relative to the scanned root)
    when the recorded path is not found, e.g. after the report was moved to another machine.
    """
    from scanner.ingest import IngestConfig, Source, read_source

    out: dict[str, DocText] = {}
    scanned = documents.filter(pc.equal(documents["status"], "scanned"))
    for rec in scanned.select(["doc", "path", "format", "sha256"]).to_pylist():
        candidates = [rec["path"]] + ([str(Path(root) / rec["doc"])] if root is not None else [])
        path = next((p for p in candidates if os.path.isfile(p)), None)
        if path is None:
            out[rec["doc"]] = DocText(None, f"file not found at {rec['path']}: only the flagged sentences are shown")
            continue
        # as large as the file: the scan already accepted it (a changed file is caught by the hash below)
        config = IngestConfig(max_bytes=max(os.path.getsize(path), 1))
        read = read_source(Source(rec["doc"], path, rec["format"]), config)
        if read.text is None:
            out[rec["doc"]] = DocText(None, f"cannot read {path} ({read.skip_reason}): only the flagged sentences are shown")
        elif read.sha256 != rec["sha256"]:
            out[rec["doc"]] = DocText(None, f"{path} changed since the scan: only the flagged sentences are shown")
        elif len(read.text) > max_chars:
            out[rec["doc"]] = DocText(None, f"{len(read.text):,} characters, too long to embed: only the flagged "
                                            "sentences are shown")
        else:
            out[rec["doc"]] = DocText(read.text)
    return out


def _utf16_offsets(text: str) -> list[int] | None:
    """Code point -> UTF-16 unit offsets (what JavaScript strings index by), or None when they are equal."""
    if all(ord(c) <= 0xFFFF for c in text):
        return None
    table, pos = [0], 0
    for c in text:
        pos += 2 if ord(c) > 0xFFFF else 1
        table.append(pos)
    return table


def report_data(pairs: pa.Table, documents: pa.Table, texts: dict[str, DocText],
                metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Shape a report for the page: documents (text or note, flagged sentences), ranked document pairs, matches.

    ``docs[k]`` = {id, sentences, text, note, flagged: {sentence index: [start, end, text]}}; offsets are in
    UTF-16 units, as JavaScript indexes strings. ``pairs[r]`` = {rank, a, b (indices into docs), the
    ``PAIRS_BY_DOC`` figures, matches: [[index_a, index_b, score, cosine, kind, note], ...] best first; note: numbers that
    differ between the two sentences, or empty}.
    """
    flagged = pairs.filter(pc.not_equal(pairs["match"], "rejected"))
    ranked = pairs_by_doc(flagged, documents)
    doc_ids = sorted(set(ranked["doc_a"].to_pylist()) | set(ranked["doc_b"].to_pylist()))
    position = {d: k for k, d in enumerate(doc_ids)}
    sizes = dict(zip(documents["doc"].to_pylist(), documents["sentences"].to_pylist(), strict=True))
    docs = [{"id": d, "sentences": sizes.get(d) or 0, "text": None, "note": None, "flagged": {}} for d in doc_ids]
    for d, entry in zip(doc_ids, docs, strict=True):
        got = texts.get(d, DocText(None, "not read back: only the flagged sentences are shown"))
        entry["text"], entry["note"] = got.text, got.note
    matches: dict[tuple[str, str], list[list[Any]]] = {}
    for r in flagged.to_pylist():
        for side in ("a", "b"):
            entry = docs[position[r[f"doc_{side}"]]]
            entry["flagged"][r[f"index_{side}"]] = [r[f"start_{side}"], r[f"end_{side}"], r[f"text_{side}"]]
        matches.setdefault((r["doc_a"], r["doc_b"]), []).append(
            [r["index_a"], r["index_b"], round(float(r["score"]), 4), round(float(r["cosine"]), 4), r["match"],
             "; ".join(review_notes(r["text_a"], r["text_b"]))])
    for entry in docs:
        table = _utf16_offsets(entry["text"]) if entry["text"] is not None else None
        if table is not None:
            entry["flagged"] = {i: [table[s], table[e], t] for i, (s, e, t) in entry["flagged"].items()}
    out_pairs = []
    for rec in ranked.to_pylist():
        found = sorted(matches[(rec["doc_a"], rec["doc_b"])], key=lambda m: (-m[2], m[0], m[1]))
        out_pairs.append({**{k: v for k, v in rec.items() if k not in ("doc_a", "doc_b")},
                          "a": position[rec["doc_a"]], "b": position[rec["doc_b"]], "matches": found})
    meta = metadata or {}
    return {
        "meta": {k: meta.get(k) for k in ("version", "created", "threshold", "scope", "segmenter")}
        | {"cross_encoder": (meta.get("cross_encoder") or {}).get("sha256"), "counts": meta.get("counts", {})},
        "docs": docs,
        "pairs": out_pairs,
    }


def render_html(data: dict[str, Any], title: str = "Reuse report") -> str:
    """The page: template + data as JSON in a script element (``</`` escaped so no text can end it)."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    template = (Path(__file__).parent / "html_report_template.html").read_text(encoding="utf-8")
    return template.replace("__TITLE__", html.escape(title)).replace("__DATA__", payload)


def write_html(pairs: pa.Table, documents: pa.Table, out: str | os.PathLike[str], *,
               metadata: dict[str, Any] | None = None, root: str | os.PathLike[str] | None = None,
               title: str | None = None) -> Path:
    """Write the HTML report for a report's pairs and documents tables to ``out``, atomically."""
    from scanner.report import check_writable

    path = check_writable(out)
    data = report_data(pairs, documents, load_texts(documents, root), metadata)
    page = render_html(data, title or f"Reuse report: {len(data['pairs'])} document pairs")
    atomic_write_bytes(page.encode("utf-8"), path)
    return path


def write_html_from_report(report: str | os.PathLike[str], out: str | os.PathLike[str], *,
                           root: str | os.PathLike[str] | None = None) -> Path:
    """The HTML report of an existing ``report.parquet`` and its ``.docs.parquet`` sidecar."""
    import pyarrow.parquet as pq

    from scanner.errors import InputError
    from scanner.report import read_metadata, sidecar_path

    report = Path(report)
    docs_path = sidecar_path(report, "docs")
    if not report.is_file():
        raise InputError(f"report {str(report)!r} does not exist")
    if not docs_path.is_file():
        raise InputError(f"the documents table {str(docs_path)!r} is missing: keep it beside the report")
    metadata = read_metadata(report)
    return write_html(pq.read_table(report), pq.read_table(docs_path), out, metadata=metadata, root=root,
                      title=f"Reuse report: {report.name}")
