"""The Arrow schemas that stages exchange: documents, sentences and pairs (the report).

Stages take and return tables that conform to these; ``conform`` is the one boundary check.
Offsets are character offsets (Python ``str`` indices) into the decoded document text; for HTML, into the
visible text extracted from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

import pyarrow as pa

#: one row per input file, scanned or skipped (written as ``<stem>.docs.parquet``)
DOCUMENTS = pa.schema(
    [
        pa.field("doc", pa.string(), nullable=False),  # path relative to the scanned root
        pa.field("path", pa.string(), nullable=False),  # the path as found on disk
        pa.field("status", pa.string(), nullable=False),  # "scanned" or "skipped"
        pa.field("reason", pa.string()),  # why skipped, or a note on a scanned file (e.g. truncated)
        pa.field("format", pa.string()),  # text, markdown or html
        pa.field("encoding", pa.string()),  # the encoding the text was decoded with
        pa.field("bytes", pa.int64()),
        pa.field("sha256", pa.string()),  # of the raw bytes
        pa.field("chars", pa.int64()),  # length of the decoded text
        pa.field("sentences", pa.int32()),
        pa.field("flagged_sentences", pa.int32()),
        pa.field("flagged_share", pa.float64()),  # flagged_sentences / sentences
    ]
)

#: one row per sentence of a scanned document
SENTENCES = pa.schema(
    [
        pa.field("doc", pa.string(), nullable=False),
        pa.field("index", pa.int32(), nullable=False),  # sentence number within its document
        pa.field("start", pa.int32(), nullable=False),
        pa.field("end", pa.int32(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
    ]
)

#: what the read+segment tasks return per input file: the documents table's facts plus text and sentence spans
READ = pa.schema(
    [
        pa.field("row", pa.int64(), nullable=False),  # position in the list of sources
        pa.field("doc", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("format", pa.string()),
        pa.field("encoding", pa.string()),
        pa.field("bytes", pa.int64()),
        pa.field("sha256", pa.string()),
        pa.field("text", pa.large_string()),
        pa.field("starts", pa.list_(pa.int32())),
        pa.field("ends", pa.list_(pa.int32())),
        pa.field("segmenter", pa.string()),
    ]
)

class Match(str, Enum):
    """How a pair was decided: the one set of labels of every report, search hit and check."""

    EXACT = "exact"  # identical after normalising case, whitespace and Unicode; no model needed
    PARAPHRASE = "paraphrase"  # flagged by the decision (scanner.match.decide)
    REJECTED = "rejected"  # cross-encoded and not flagged (reported only with keep_rejected; check reports it)


MATCH_KINDS = tuple(m.value for m in Match)

#: one row per flagged (or, with keep_rejected, rejected) sentence pair: the report
PAIRS = pa.schema(
    [
        pa.field("doc_a", pa.string(), nullable=False),
        pa.field("index_a", pa.int32(), nullable=False),
        pa.field("start_a", pa.int32(), nullable=False),
        pa.field("end_a", pa.int32(), nullable=False),
        pa.field("text_a", pa.string(), nullable=False),
        pa.field("doc_b", pa.string(), nullable=False),
        pa.field("index_b", pa.int32(), nullable=False),
        pa.field("start_b", pa.int32(), nullable=False),
        pa.field("end_b", pa.int32(), nullable=False),
        pa.field("text_b", pa.string(), nullable=False),
        pa.field("cosine", pa.float32(), nullable=False),  # bi-encoder cosine similarity
        pa.field("score", pa.float32(), nullable=False),  # cross-encoder paraphrase probability; 1.0 for exact
        pa.field("match", pa.string(), nullable=False),  # one of MATCH_KINDS
        pa.field("reason", pa.string(), nullable=False),  # how the pair was decided, for the audit trail
    ]
)

#: a scan against a reference index (``scan --against``) writes PAIRS plus ``origin_a``: "reference" when side
#: a is a sentence of the index (the source), "scanned" when both sides come from the scanned documents.
#: Side b is always a scanned (new) document.
REFERENCE_PAIRS = pa.schema([*PAIRS, pa.field("origin_a", pa.string(), nullable=False)])
ORIGINS = ("reference", "scanned")

#: one row per reference sentence found by a query search (``scan search``, ``scanner.search``)
SEARCH_HITS = pa.schema([
    pa.field("query", pa.string(), nullable=False),
    pa.field("rank", pa.int32(), nullable=False),  # 1 = best, per query
    *SENTENCES,  # the reference sentence: document, sentence number, offsets, text
    pa.field("cosine", pa.float32(), nullable=False),
    pa.field("score", pa.float32(), nullable=False),
    pa.field("match", pa.string(), nullable=False),  # exact or paraphrase
    pa.field("reason", pa.string(), nullable=False),
])


def index_rows_schema(dim: int) -> pa.Schema:
    """One row per sentence of a reference index segment file (``scanner.index``): the sentence, its
    normalised-text hash (``candidates.text_key``), its word count and its unit vector."""
    return pa.schema([
        *SENTENCES,
        pa.field("key", pa.int64(), nullable=False),
        pa.field("words", pa.int32(), nullable=False),
        pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
    ])


#: one row per pair of documents with flagged sentences (written as ``<stem>.pairs_by_doc.parquet``), ranked:
#: highest ``max_share`` first, then most flagged pairs. For ``within`` pairs ``doc_a == doc_b``.
PAIRS_BY_DOC = pa.schema(
    [
        pa.field("rank", pa.int32(), nullable=False),  # 1 = the most reused pair of documents
        pa.field("doc_a", pa.string(), nullable=False),
        pa.field("doc_b", pa.string(), nullable=False),
        pa.field("flagged_pairs", pa.int32(), nullable=False),  # flagged sentence pairs between the two
        pa.field("sentences_a", pa.int32(), nullable=False),  # distinct sentences of doc_a in those pairs
        pa.field("sentences_b", pa.int32(), nullable=False),
        pa.field("share_a", pa.float64(), nullable=False),  # sentences_a / sentences in doc_a
        pa.field("share_b", pa.float64(), nullable=False),
        pa.field("max_share", pa.float64(), nullable=False),  # max(share_a, share_b): the ranking key
        pa.field("mean_score", pa.float64(), nullable=False),
        pa.field("max_score", pa.float64(), nullable=False),
        pa.field("exact_pairs", pa.int32(), nullable=False),
        pa.field("paraphrase_pairs", pa.int32(), nullable=False),
    ]
)


def conform(data: pa.Table | Mapping[str, Sequence[Any]], schema: pa.Schema, what: str) -> pa.Table:
    """Return ``data`` as a table with exactly ``schema``'s columns, in order, cast to its types.

    Raises ``ValueError`` naming the missing columns, so a stage fed the wrong table fails at its boundary.
    """
    table = data if isinstance(data, pa.Table) else pa.table(dict(data))
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise ValueError(f"{what} table lacks columns {missing}; expected {schema.names}")
    return table.select(schema.names).cast(schema)


def empty(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()
