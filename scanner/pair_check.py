"""Pair check: is sentence B a paraphrase of sentence A? The seeds' ``predict_paraphrase``, with the scan's model.

    >>> import scanner
    >>> scanner.check("I took a flight from New York to Paris.", "I flew to Paris from New York.")  # doctest: +SKIP
    Check(score=0.93, paraphrase=True, match='paraphrase', threshold=0.77)

The decision is made exactly as in a scan (``scanner.match``): identical sentences (after case, whitespace and
Unicode normalisation) are ``exact`` with score 1.0 and need no model; the rest are scored by the cross-encoder
and decided by ``scanner.match.decide`` (the threshold, default: the one recorded with the model, then the
decision rules): ``paraphrase`` or ``rejected``.
``check_pairs`` scores many pairs at once and ``check_file`` a TSV, CSV or Parquet file of pairs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from scanner.candidates import normalise
from scanner.engine import Engine, shared_local_engine
from scanner.errors import InputError, OutputError
from scanner.match import decide, score_distinct
from scanner.reasons import review_notes
from scanner.schema import Match
from scanner.verify import DEFAULT_CROSS_ENCODER, VerifyConfig

#: accepted names of the two sentence columns in a pairs file, in order of preference
PAIR_COLUMNS = (("text_a", "text_b"), ("sentence1", "sentence2"), ("a", "b"))
FORMATS = ("tsv", "csv", "parquet")


@dataclass(frozen=True)
class Check:
    """The verdict on one pair: ``score`` (paraphrase probability, 1.0 for exact), ``paraphrase`` (the decision),
    ``match`` (``exact``, ``paraphrase`` or ``rejected``), the ``threshold`` used and the reviewer's ``note``
    (``scanner.reasons.review_notes``, joined by "; "; empty when there is none)."""

    score: float
    paraphrase: bool
    match: str
    threshold: float
    note: str = ""


def verify_config(cross_encoder: str | None = None, threshold: float | None = None,
                  device: str = "auto", batch_size: int | None = None, both_orders: bool = False,
                  swap_rule: bool = True) -> VerifyConfig:
    """The verify config of a check."""
    return VerifyConfig(model=cross_encoder or DEFAULT_CROSS_ENCODER, threshold=threshold, device=device,
                        batch_size=batch_size or 128, both_orders=both_orders, swap_rule=swap_rule)


def check_pairs(a: Sequence[str], b: Sequence[str], *, threshold: float | None = None,
                cross_encoder: str | None = None, device: str = "auto", batch_size: int | None = None,
                engine: Engine | None = None, both_orders: bool = False, swap_rule: bool = True) -> pa.Table:
    """Score pairs (a[i], b[i]); returns a table with ``text_a, text_b, score, paraphrase, match, note`` in input
    order (``note``: the reviewer's cues of ``scanner.reasons.review_notes``, as in a scan's ``reason``).

    Identical pairs are settled without the model; each distinct remaining pair is cross-encoded once, in the
    scan's orientation (or in both orders, averaged, with ``both_orders``), so the score does not depend on the
    order of the two sentences.
    """
    if len(a) != len(b):
        raise ValueError(f"check_pairs needs as many first as second sentences, got {len(a)} and {len(b)}")
    config = verify_config(cross_encoder, threshold, device, batch_size, both_orders, swap_rule)
    a, b = [str(x) for x in a], [str(x) for x in b]
    exact = np.array([normalise(x) == normalise(y) for x, y in zip(a, b, strict=True)], dtype=bool)
    todo = np.flatnonzero(~exact)
    side_a, side_b = [a[i] for i in todo], [b[i] for i in todo]
    # oriented as a scan orients them, so check(a, b) == check(b, a) == the score a scan reports for the pair
    got, _ = score_distinct(side_a, side_b, config, engine or shared_local_engine())
    decided = decide(got, side_a, side_b, config)
    scores = np.ones(len(a), dtype=np.float32)
    scores[todo] = got
    flagged = exact.copy()
    flagged[todo] = decided.flagged
    match = [Match.EXACT.value] * len(a)
    for i, label in zip(todo, decided.matches(), strict=True):
        match[i] = label
    table = pa.table({"text_a": pa.array(a, pa.string()), "text_b": pa.array(b, pa.string()),
                      "score": pa.array(scores, pa.float32()), "paraphrase": pa.array(flagged, pa.bool_()),
                      "match": pa.array(match, pa.string()),
                      "note": pa.array(["; ".join(review_notes(x, y)) for x, y in zip(a, b, strict=True)], pa.string())})
    return table.replace_schema_metadata({b"threshold": str(decided.threshold).encode(),
                                          b"cross_encoder": config.model.encode(),
                                          b"both_orders": str(config.both_orders).lower().encode(),
                                          b"swap_rule": str(config.swap_rule).lower().encode()})


def check(a: str, b: str, *, threshold: float | None = None, cross_encoder: str | None = None,
          device: str = "auto", engine: Engine | None = None, both_orders: bool = False,
          swap_rule: bool = True) -> Check:
    """Paraphrase probability and decision for one pair of sentences (see the module docstring)."""
    table = check_pairs([a], [b], threshold=threshold, cross_encoder=cross_encoder, device=device, engine=engine,
                        both_orders=both_orders, swap_rule=swap_rule)
    return verdicts(table)[0]


def verdicts(table: pa.Table) -> list[Check]:
    """One ``Check`` per row of a ``check_pairs`` table, in its order (what ``check`` and ``scan serve`` answer)."""
    used = float(table.schema.metadata[b"threshold"])
    columns = [table[c].to_pylist() for c in ("score", "paraphrase", "match", "note")]
    return [Check(score=round(float(score), 6), paraphrase=bool(flagged), match=match, threshold=used, note=note)
            for score, flagged, match, note in zip(*columns, strict=True)]


def file_format(path: str | os.PathLike[str], given: str | None = None) -> str:
    """``tsv``, ``csv`` or ``parquet``: as given, else from the file's suffix."""
    fmt = (given or Path(path).suffix.lstrip(".")).lower()
    if fmt == "txt":
        fmt = "tsv"
    if fmt not in FORMATS:
        raise InputError(f"cannot tell the format of {str(path)!r}: name it .tsv, .csv or .parquet, or pass --format")
    return fmt


def read_pairs(path: str | os.PathLike[str], fmt: str | None = None) -> tuple[pa.Table, tuple[str, str]]:
    """Read a pairs file; returns the table and the names of its two sentence columns (see ``PAIR_COLUMNS``).

    TSV is read without quoting (as PAWS and MRPC ship it); CSV with standard double quotes."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if not Path(path).is_file():
        raise InputError(f"pairs file {str(path)!r} does not exist")
    fmt = file_format(path, fmt)
    try:
        if fmt == "parquet":
            table = pq.read_table(path)
        else:
            parse = pacsv.ParseOptions(delimiter="\t", quote_char=False) if fmt == "tsv" else pacsv.ParseOptions()
            table = pacsv.read_csv(path, parse_options=parse,
                                   convert_options=pacsv.ConvertOptions(strings_can_be_null=False))
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"cannot read {str(path)!r} as {fmt}: {str(exc).splitlines()[0]}") from exc
    for cols in PAIR_COLUMNS:
        if all(c in table.column_names for c in cols):
            return table, cols
    names = " or ".join("/".join(c) for c in PAIR_COLUMNS)
    raise InputError(f"{str(path)!r} has columns {table.column_names}: name the two sentence columns {names}")


def write_scores(table: pa.Table, out: str | os.PathLike[str], fmt: str | None = None) -> Path:
    """Write scored pairs as TSV, CSV or Parquet (by suffix), atomically."""
    import tempfile

    import pyarrow.csv as pacsv

    from scanner.report import atomic_write_table, check_writable

    path = check_writable(out)
    fmt = file_format(path, fmt)
    if fmt == "parquet":
        atomic_write_table(table, path)
        return path
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        if fmt == "tsv":
            # TSV as PAWS ships it: no quotes at all (a tab or newline inside a sentence then fails: use Parquet).
            # The header is written here: pyarrow before 23 quotes column names whatever the quoting style.
            body = pa.BufferOutputStream()
            options = pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
            pacsv.write_csv(table, body, write_options=options)
            with open(tmp, "wb") as fh:
                fh.write(("\t".join(table.column_names) + "\n").encode("utf-8"))
                fh.write(body.getvalue().to_pybytes())
        else:
            pacsv.write_csv(table, tmp)
        os.replace(tmp, path)
    except pa.ArrowInvalid as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write {str(path)!r} as {fmt}: {exc} (write .parquet instead)") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_file(path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *, fmt: str | None = None,
               threshold: float | None = None, cross_encoder: str | None = None, device: str = "auto",
               batch_size: int | None = None, engine: Engine | None = None, both_orders: bool = False,
               swap_rule: bool = True) -> pa.Table:
    """Score every pair of a TSV/CSV/Parquet file; the other columns (ids, labels) are kept. Writes ``out`` if given."""
    table, (col_a, col_b) = read_pairs(path, fmt)
    a = [("" if x is None else str(x)) for x in table[col_a].to_pylist()]
    b = [("" if x is None else str(x)) for x in table[col_b].to_pylist()]
    scored = check_pairs(a, b, threshold=threshold, cross_encoder=cross_encoder, device=device,
                         batch_size=batch_size, engine=engine, both_orders=both_orders, swap_rule=swap_rule)
    result = table
    for name in ("score", "paraphrase", "match", "note"):
        if name in result.column_names:
            result = result.drop_columns([name])
        result = result.append_column(name, scored[name])
    result = result.replace_schema_metadata(scored.schema.metadata)
    if out is not None:
        write_scores(result, out)
    return result
