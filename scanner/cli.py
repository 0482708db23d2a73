"""The ``scan`` command line: parse, call the library, print. No scanning logic lives here.

Exit codes: 0 done; 1 pairs were flagged and --fail-on-match was given; 2 bad option; 3 input problem
(missing path, nothing scannable); 4 report cannot be written; 5 model cannot be loaded; 6 reference index
problem; 7 Ray cluster unreachable; 8 a Ray worker kept dying after its retries; 70 internal error;
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from scanner import __version__
from scanner.errors import InputError, ScannerError

EXIT_MATCHES = 1
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


class DefaultGroup(click.Group):
    """A group whose default command is ``run``: ``scan ./docs --out r.parquet`` means ``scan run ./docs ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help", "--version"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


def _fail(exc: ScannerError) -> None:
    click.echo(f"Error: {exc}", err=True)
    sys.exit(exc.exit_code)


def library_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one line on stderr and the documented exit code."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ScannerError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            click.echo("\nInterrupted: no report was written (finished embeddings stay in the cache).", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except click.ClickException:
            raise
        except Exception as exc:  # a bug: keep the traceback for the report, but never exit 1 (--fail-on-match's code)
            import traceback

            traceback.print_exc()
            click.echo(f"Error: internal error ({exc.__class__.__name__}: {exc}); please report it with the "
                       "traceback above", err=True)
            sys.exit(EXIT_INTERNAL)

    return wrapper


@contextmanager
def interruptible() -> Iterator[Callable[[], None]]:
    """Ctrl-C stops a run even where a library swallows the KeyboardInterrupt (one raised inside a ``__del__`` or a
    Ray callback is only printed): the handler also records the signal, and the returned check, called at every
    stage boundary and before the report is written, raises it again."""
    hit = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        hit.set()
        raise KeyboardInterrupt

    def check() -> None:
        if hit.is_set():
            raise KeyboardInterrupt

    # signal handlers belong to the main thread; a job started with SIGINT ignored (`scan ... &` in a script) keeps it so
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield check
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, previous)


SWAP_RULE_OPTION = click.option(
    "--swap-rule/--no-swap-rule", default=True, show_default=True,
    help="Never flag a pair whose only difference is two word spans trading places (\"from New York to Paris\" / "
         "\"from Paris to New York\"), whatever the cross-encoder says; parallel phrases (\"cats and dogs\") and "
         "two forms of one word (\"US\" / \"U.S.\") are exempt.")


def model_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by every command that runs the models."""
    for option in reversed([
        click.option("--embedder", metavar="NAME|PATH", help="Bi-encoder for candidates: a local sentence-transformers "
                     "folder, a cached Hugging Face id, or 'hashing' (lexical, no model).  [default: all-MiniLM-L6-v2]"),
        click.option("--cross-encoder", metavar="PATH", help="Cross-encoder folder.  [default: the shipped PAWS model]"),
        click.option("--threshold", type=click.FloatRange(0, 1), help="Paraphrase probability at which a pair is "
                     "flagged.  [default: the model's, chosen on its validation data]"),
        click.option("--both-orders", is_flag=True, help="Score each pair in both sentence orders and average: "
                     "order-independent and more accurate, at twice the cross-encoder time."),
        SWAP_RULE_OPTION,
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                     help="Where the models run; auto uses CUDA (fp16) when present."),
        click.option("--batch-size", type=click.IntRange(1), help="Most sentences or pairs per model batch.  [default: 128]"),
        click.option("--address", metavar="ADDR", help="Ray cluster to run on (else RAY_ADDRESS, else a local Ray "
                     "started for this run)."),
        click.option("--engine", type=click.Choice(["auto", "ray", "local"]), default="auto", show_default=True,
                     help="ray: stages on Ray Data (a local Ray unless --address); local: all in this process; "
                     "auto: ray with --address or inputs over 5 MB, else local."),
    ]):
        fn = option(fn)
    return fn


def reference_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options of scans against a reference index and of what does not count (see scanner.reference)."""
    for option in reversed([
        click.option("--against", metavar="DIR|URI", help="Also compare with this reference index (built by `scan "
                     "index`); its sentences are the source side (a) of the pairs they form."),
        click.option("--exclude-index", multiple=True, metavar="DIR|URI", help="An index of boilerplate: sentences "
                     "matching it are not flagged (repeatable)."),
        click.option("--boilerplate", multiple=True, metavar="PATH", help="Files or folders of text that may repeat "
                     "(templates, prompts, licences): sentences matching it are not flagged (repeatable)."),
        click.option("--boilerplate-cosine", type=click.FloatRange(-1, 1), default=0.9, show_default=True,
                     help="Cosine at which a sentence counts as matching boilerplate (identical ones always do)."),
        click.option("--ignore-quotes", is_flag=True, help="Leave out sentences wholly inside quotation marks or a "
                     "Markdown blockquote."),
    ]):
        fn = option(fn)
    return fn


def _reference_config(options: dict[str, Any]) -> Any:
    """Take the reference options out of ``options`` (the rest are scan options) and build their config."""
    from scanner.reference import ReferenceConfig

    against = options.pop("against", None)
    scope_against = options.get("scope") == "against"
    if scope_against:
        options["scope"] = "cross"
    return ReferenceConfig(
        index=against, compare_scanned=not scope_against, boilerplate=tuple(options.pop("boilerplate", ())),
        exclude_index=tuple(options.pop("exclude_index", ())), boilerplate_cosine=options.pop("boilerplate_cosine"),
        ignore_quotes=options.pop("ignore_quotes", False),
    )


@click.group(cls=DefaultGroup, context_settings=CONTEXT, invoke_without_command=False)
@click.version_option(__version__, prog_name="scan")
def cli() -> None:
    """Find reused sentences across documents: exact copies and real paraphrases, not word-swaps.

    \b
    Example:
      scan ./docs --out report.parquet
      scan run --help        (all options of the scan itself)
    """


@cli.command("run", context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="Report file (Parquet). The documents table goes beside it as <stem>.docs.parquet.")
@click.option("--include", multiple=True, metavar="GLOB", help="Only files matching (repeatable), e.g. '*.txt'.")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip files matching (repeatable), e.g. 'drafts/*'.")
@click.option("--scope", type=click.Choice(["cross", "within", "all", "against"]), default="cross", show_default=True,
              help="cross: pairs across documents (plagiarism); within: inside one document (redundancy); all: both; "
              "against: only scanned x --against index.")
@click.option("--min-cosine", type=click.FloatRange(-1, 1), help="Cosine floor for candidates (0.55 lets 97% or more of the paraphrases of every validation set reach the verifier: pipelines/candidate_recall.py).  [default: 0.55]")
@click.option("--top-k", type=click.IntRange(1), help="Candidate neighbours per sentence.  [default: 5]")
@click.option("--band-cosine", type=click.FloatRange(-1, 1),
              help="Below this cosine a neighbour is a candidate only if it is among the --band-top-k best of its "
                   "sentences (--band-mutual; at or below --min-cosine: no band).  [default: 0.7]")
@click.option("--band-top-k", type=click.IntRange(1), help="Neighbours per sentence kept below --band-cosine.  [default: 1]")
@click.option("--band-mutual/--band-one-sided", default=None,
              help="Below --band-cosine keep a pair only when each sentence is among the other's --band-top-k best "
                   "(fewer pairs), or when one of them is.  [default: --band-mutual; against an index: one-sided]")
@click.option("--mutual", is_flag=True, help="Keep a candidate pair only when each sentence is in the other's top-k.")
@click.option("--candidate-budget", "budget", type=click.FloatRange(0, min_open=True), metavar="PAIRS",
              help="At most this many candidate pairs per sentence, highest cosine first (bounds the cross-encoder's work).")
@click.option("--search", type=click.Choice(["auto", "exact", "ivf", "faiss"]),
              help="Neighbour search: exact, or approximate over clusters (ivf; faiss with the faiss extra).  [default: auto: ivf from 200k sentences]")
@click.option("--prefilter", type=click.Choice(["auto", "on", "off"]),
              help="Embed with the full model only sentences that a static embedder finds a match for (about a third "
              "fewer on benchmark text; README, Performance).  [default: auto: on from 5,000 sentences]")
@click.option("--prefilter-min-cosine", type=click.FloatRange(-1, 1),
              help="Static cosine a sentence's best match needs to pass the pre-filter.  [default: 0.48]")
@click.option("--min-words", type=click.IntRange(0), help="Ignore sentences shorter than this.  [default: 4]")
@click.option("--keep-rejected", is_flag=True, help="Also report candidates the cross-encoder rejected (match=rejected).")
@click.option("--max-file-size", type=click.FloatRange(0, min_open=True), metavar="MB",
              help="Skip files larger than this, with a note.  [default: 20]")
@click.option("--follow-symlinks", is_flag=True, help="Follow symlinks, also out of the scanned folders.")
@click.option("--segmenter", type=click.Choice(["auto", "senter", "sentencizer"]),
              help="auto: spaCy's trained segmenter when installed, else rules.  [default: auto]")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=str),
              help="Where sentence embeddings are cached between runs.  [default: ~/.cache/paraphrase-scanner]")
@click.option("--no-cache", "cache", flag_value=False, default=True, help="Neither read nor write the embedding cache.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=str),
              help="Also write a self-contained HTML report (documents side by side, matches highlighted).")

@reference_options
@click.option("--fail-on-match", is_flag=True, help=f"Exit with {EXIT_MATCHES} when any pair is flagged (for CI).")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@model_options
@library_errors
def run_command(paths: tuple[str, ...], out: str, quiet: bool, fail_on_match: bool, max_file_size: float | None,
                address: str | None, engine: str, html_out: str | None, **options: Any) -> None:
    """Scan files and folders for reused sentences and write a Parquet report.

    \b
    Examples:
      scan ./submissions --out report.parquet
      scan essay.txt sources/ --out r.parquet --threshold 0.8 --keep-rejected
      scan summary.md --scope within --out redundancy.parquet
      scan ./docs --out r.parquet --address ray://head:10001
      scan ./docs --out r.parquet --html r.html
      scan ./new --against ref-index --out r.parquet --boilerplate prompt.txt --ignore-quotes
    """
    from scanner.engine import EngineConfig
    from scanner.reference import run_against
    from scanner.scanning import ScanConfig, run_scan

    reference = _reference_config(options)
    options["include"] = tuple(options["include"]) or None
    options["exclude"] = tuple(options["exclude"]) or None
    if max_file_size is not None:
        options["max_file_size"] = int(max_file_size * 1_000_000)
    config = ScanConfig.from_options(**options)
    config = dataclasses.replace(config, engine=EngineConfig(engine=engine, address=address))  # type: ignore[arg-type]
    tty = sys.stderr.isatty() and not quiet

    def on_stage(name: str) -> None:
        stop_if_interrupted()
        if not quiet:
            click.echo(f"  {name} ...", err=True)

    if html_out is not None:
        from scanner.report import check_writable

        check_writable(html_out)
    if not quiet:
        click.echo(f"scan {__version__}: {', '.join(paths)}", err=True)
    with interruptible() as stop_if_interrupted:
        if reference.active:
            result = run_against(paths, reference, config, out, progress=tty, on_stage=on_stage)
        else:
            result = run_scan(paths, config, out, progress=tty, on_stage=on_stage)
    if not quiet:
        click.echo(summary_text(result))
    if html_out is not None:
        from scanner.html_report import write_html

        write_html(result.pairs, result.documents, html_out, metadata=result.metadata)
        if not quiet:
            click.echo(f"HTML report: {html_out}")
    if fail_on_match and result.counts["flagged_pairs"]:
        sys.exit(EXIT_MATCHES)


@cli.command("report", context_settings=CONTEXT)
@click.argument("report", type=click.Path(dir_okay=False, path_type=str))
@click.option("--html", "html_out", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="Where to write the HTML report.")
@click.option("--root", type=click.Path(file_okay=False, path_type=str),
              help="Look for the documents under this folder (by document id) when their recorded paths are gone.")
@library_errors
def report_command(report: str, html_out: str, root: str | None) -> None:
    """Write the HTML report of an existing report (it needs report.docs.parquet beside it).

    The documents' text is read again from the paths recorded in the documents table; a file that is missing
    or changed since the scan is shown as its flagged sentences only.

    \b
    Example:
      scan report report.parquet --html report.html
    """
    from scanner.html_report import write_html_from_report

    click.echo(f"HTML report: {write_html_from_report(report, html_out, root=root)}")


@cli.command("check", context_settings=CONTEXT)
@click.argument("sentences", nargs=-1)
@click.option("--pairs", "pairs_file", type=click.Path(dir_okay=False, path_type=str),
              help="Score every pair of a TSV, CSV or Parquet file (columns text_a/text_b or sentence1/sentence2).")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=str),
              help="With --pairs: write the pairs with score, paraphrase and match columns (.parquet, .tsv or .csv); "
              "else they are printed as TSV.")
@click.option("--format", "fmt", type=click.Choice(["tsv", "csv", "parquet"]), help="Format of --pairs when its "
              "suffix does not say.")
@click.option("--cross-encoder", metavar="PATH", help="Cross-encoder folder.  [default: the shipped PAWS model]")
@click.option("--threshold", type=click.FloatRange(0, 1), help="Probability at which a pair is a paraphrase.  "
              "[default: the model's]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--both-orders", is_flag=True, help="Score each pair in both sentence orders and average.")
@SWAP_RULE_OPTION
@library_errors
def check_command(sentences: tuple[str, ...], pairs_file: str | None, out: str | None, fmt: str | None,
                  cross_encoder: str | None, threshold: float | None, device: str, both_orders: bool,
                  swap_rule: bool) -> None:
    """Is the second sentence a paraphrase of the first? Prints the probability and the decision.

    \b
    Examples:
      scan check "I took a flight from New York to Paris." "I flew to Paris from New York."
      scan check --pairs pairs.tsv --out scores.parquet
    """
    from scanner import pair_check

    if pairs_file is None:
        if len(sentences) != 2:
            raise click.UsageError("give two sentences, or --pairs FILE")
        got = pair_check.check(*sentences, threshold=threshold, cross_encoder=cross_encoder, device=device,
                               both_orders=both_orders, swap_rule=swap_rule)
        decision = {"exact": "exact copy", "paraphrase": "paraphrase", "rejected": "not a paraphrase"}[got.match]
        if got.match == "rejected" and got.score >= got.threshold:
            decision += " (by the swap rule)"
        elif got.match == "paraphrase" and got.score < got.threshold:
            decision += " (a near-copy)"
        click.echo(f"paraphrase probability {got.score:.3f} (threshold {got.threshold:.3f}): {decision}")
        if got.note:
            click.echo(f"note: {got.note}")
        return
    if sentences:
        raise click.UsageError("give either two sentences or --pairs FILE, not both")
    table = pair_check.check_file(pairs_file, out, fmt=fmt, threshold=threshold, cross_encoder=cross_encoder,
                                  device=device, both_orders=both_orders, swap_rule=swap_rule)
    flagged = sum(table["paraphrase"].to_pylist())
    if out is None:
        col_a, col_b = next(c for c in pair_check.PAIR_COLUMNS if set(c) <= set(table.column_names))
        click.echo("text_a\ttext_b\tscore\tmatch\tnote")
        for a, b, score, match, note in zip(*(table[c].to_pylist() for c in (col_a, col_b, "score", "match", "note")),
                                            strict=True):
            click.echo(f"{a}\t{b}\t{score:.4f}\t{match}\t{note}")
    click.echo(f"{table.num_rows} pairs scored, {flagged} paraphrases or copies"
               + (f"; written to {out}" if out else ""), err=True)


@cli.command("dedupe", context_settings=CONTEXT)
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=str))
@click.option("--show", is_flag=True, help="Print the whole text, marking each removed sentence and why.")
@click.option("--threshold", type=click.FloatRange(0, 1), help="Probability at which a sentence repeats another.  "
              "[default: the model's]")
@click.option("--min-words", type=click.IntRange(0), help="Never remove sentences shorter than this.  [default: 4]")
@click.option("--embedder", metavar="NAME|PATH", help="Bi-encoder for candidates.  [default: all-MiniLM-L6-v2]")
@click.option("--cross-encoder", metavar="PATH", help="Cross-encoder folder.  [default: the shipped PAWS model]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--both-orders", is_flag=True, help="Score each pair in both sentence orders and average.")
@SWAP_RULE_OPTION
@library_errors
def dedupe_command(file: str, show: bool, **options: Any) -> None:
    """Print a text with its redundant sentences removed (the first of each paraphrase group stays).

    FILE is a text file, or - for standard input. A summary of what was removed goes to stderr.

    \b
    Examples:
      scan dedupe summary.txt > summary.clean.txt
      cat summary.txt | scan dedupe - --show
    """
    from scanner.ingest import decode_bytes
    from scanner.redundancy import dedupe

    if file == "-":
        raw = click.get_binary_stream("stdin").read()
    else:
        try:
            with open(file, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            raise InputError(f"cannot read {file!r}: {exc.strerror or exc}") from exc
    text, _encoding, _notes = decode_bytes(raw)
    result = dedupe(text, **options)
    if not show:
        click.echo(result.text, nl=not result.text.endswith("\n"))
    else:
        for piece, why in result.pieces():
            if why is None:
                click.echo(piece, nl=False)
                continue
            kept = next(g for g in result.groups if any(r.index == why.index for r in g.removed))
            first = kept.text if len(kept.text) <= 60 else kept.text[:57] + "..."
            note = f"[REMOVED {why.match} {why.score:.2f} of sentence {kept.index + 1} \"{first}\": "
            body = piece.strip()
            lead, trail = piece[: len(piece) - len(piece.lstrip())], piece[len(piece.rstrip()):]
            click.echo(lead + click.style(note, fg="red") + click.style(body, dim=True) + click.style("]", fg="red")
                       + trail, nl=False)
        click.echo("" if result.text.endswith("\n") else "\n", nl=False)
    removed = [r for g in result.groups for r in g.removed]
    kinds = ", ".join(f"{sum(r.match == k for r in removed)} {k}" for k in ("exact", "paraphrase"))
    click.echo(f"Removed {len(removed)} of {len(result.sentences)} sentences ({kinds}); threshold "
               f"{result.threshold:.2f}", err=True)


@cli.command("index", context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--index", "where", required=True, metavar="DIR|URI", help="Where the index lives: a folder, or a URI "
              "pyarrow.fs understands (file://..., s3://... with its extra).")
@click.option("--prefix", default="", metavar="TEXT", help="Put before each document id, e.g. '2026-11-26/', so "
              "documents from different folders stay apart.")
@click.option("--prune", is_flag=True, help="Remove indexed documents (under --prefix) that are no longer found "
              "under PATHS. Without it, documents are only added and replaced.")
@click.option("--include", multiple=True, metavar="GLOB", help="Only files matching (repeatable).")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip files matching (repeatable).")
@click.option("--segmenter", type=click.Choice(["auto", "senter", "sentencizer"]), help="As for scan.  [default: auto]")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=str), help="Embedding cache folder.")
@click.option("--no-cache", "cache", flag_value=False, default=True, help="Neither read nor write the embedding cache.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@model_options
@library_errors
def index_command(paths: tuple[str, ...], where: str, prefix: str, prune: bool, quiet: bool, address: str | None,
                  engine: str, **options: Any) -> None:
    """Build or update a reference index: only new and changed documents are embedded.

    \b
    Examples:
      scan index ./sources --index ref-index
      scan index ./incoming --index ref-index --prefix 2026-11-26/
      scan index ./sources --index ref-index --prune      (also drop documents no longer in ./sources)
    """
    from scanner.engine import EngineConfig
    from scanner.index import update_index
    from scanner.scanning import ScanConfig

    options.pop("threshold", None)
    options.pop("both_orders", None)
    options.pop("swap_rule", None)
    options["include"] = tuple(options["include"]) or None
    options["exclude"] = tuple(options["exclude"]) or None
    config = ScanConfig.from_options(**options)
    config = dataclasses.replace(config, engine=EngineConfig(engine=engine, address=address))  # type: ignore[arg-type]
    done = update_index(paths, where, config, prefix=prefix, prune=prune, progress=sys.stderr.isatty() and not quiet)
    if not quiet:
        click.echo(
            f"Index {done.location}: {done.documents} documents, {done.sentences} sentences\n"
            f"This run: {len(done.added)} added, {len(done.changed)} changed, {len(done.removed)} removed, "
            f"{len(done.unchanged)} unchanged, {len(done.skipped)} skipped; {done.embedded} sentences embedded "
            f"in {done.seconds:.1f} s" + ("" if done.written else " (index unchanged)"))
        for doc, reason in sorted(done.skipped.items())[:5]:
            click.echo(f"  skipped {doc}: {reason}")


@cli.command("search", context_settings=CONTEXT)
@click.argument("queries", nargs=-1, required=True)
@click.option("--against", required=True, metavar="DIR|URI", help="The reference index to search.")
@click.option("--top-k", type=click.IntRange(1), default=10, show_default=True, help="Nearest sentences cross-encoded per query.")
@click.option("--min-cosine", type=click.FloatRange(-1, 1), default=0.5, show_default=True, help="Cosine floor for them.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=str), help="Also write the hits as Parquet.")
@model_options
@library_errors
def search_command(queries: tuple[str, ...], against: str, top_k: int, min_cosine: float, out: str | None,
                   address: str | None, engine: str, threshold: float | None, **options: Any) -> None:
    """Print the reference sentences that paraphrase a sentence, best first.

    \b
    Example:
      scan search "Bees dance to show the others where the flowers are." --against ref-index --threshold 0.5
    """
    import dataclasses as dc

    from scanner.engine import EngineConfig
    from scanner.reference import search
    from scanner.scanning import ScanConfig

    config = ScanConfig.from_options(**options)
    config = dc.replace(config, engine=EngineConfig(engine=engine, address=address))  # type: ignore[arg-type]
    hits = search(list(queries), against, threshold=threshold, top_k=top_k, min_cosine=min_cosine, config=config)
    if out is not None:
        from scanner.report import atomic_write_table, check_writable

        atomic_write_table(hits, check_writable(out))
    rows = hits.to_pylist()
    for query in queries:
        mine = [r for r in rows if r["query"] == query]
        click.echo(f"{query}\n  {len(mine)} match(es)")
        for r in mine:
            click.echo(f"  {r['rank']:>2}. [{r['match']:<10}] score {r['score']:.3f}  cosine {r['cosine']:.3f}  "
                       f"{r['doc']}:{r['start']}-{r['end']}  {r['text']}")


@cli.command("serve", context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every "
              "interface; the service has no authentication, so only behind a proxy that has).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="Port to listen on.")
@click.option("--address", metavar="ADDR", help="Ray cluster to run on (else RAY_ADDRESS, else a local Ray started "
              "for the service and stopped with it). HTTP is answered on this machine, a node of the cluster; "
              "through a ray:// client, on the head node.")
@click.option("--index", metavar="DIR|URI", help="Reference index that POST /search searches (built by `scan index`).")
@click.option("--embedder", metavar="NAME|PATH", help="Bi-encoder for /search and /dedupe.  [default: all-MiniLM-L6-v2]")
@click.option("--cross-encoder", metavar="PATH", help="Cross-encoder folder.  [default: the shipped PAWS model]")
@click.option("--threshold", type=click.FloatRange(0, 1), help="Paraphrase probability at which a pair is flagged.  "
              "[default: the model's]")
@click.option("--both-orders", is_flag=True, help="Score each pair in both sentence orders and average.")
@SWAP_RULE_OPTION
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--replicas", type=click.IntRange(1), default=1, show_default=True, help="Model servers; each loads "
              "the models once and gets an equal share of the cores.")
@click.option("--threads", "torch_threads", type=click.IntRange(1), help="Torch threads per model process; each "
              "replica runs one model process per this many of its cores (the cores divided between the replicas, "
              "at most 4).  [default: 1; more: less latency for a lone caller, less throughput]")
@click.option("--max-batch-size", type=click.IntRange(1), default=32, show_default=True,
              help="Most /check requests, from any callers, scored by one model call.")
@click.option("--batch-wait-ms", type=click.FloatRange(0, 10000), default=10.0, show_default=True,
              help="How long a batch waits for more requests (adds up to this to a lone caller's latency).")
@click.option("--max-body-bytes", type=click.IntRange(1), default=1_000_000, show_default=True,
              help="Larger request bodies are refused with 413.")
@click.option("--max-chars", type=click.IntRange(1), default=10_000, show_default=True,
              help="Longer sentences are refused with 422.")
@click.option("--max-items", type=click.IntRange(1), default=1_000, show_default=True,
              help="Most pairs, queries or sentences in one request (more: 422).")
@library_errors
def serve_command(batch_wait_ms: float, **options: Any) -> None:
    """Answer /check, /search and /dedupe over HTTP (JSON), on Ray Serve, until Ctrl-C.

    Endpoints: POST /check, POST /search, POST /dedupe, GET /healthz, GET /info (docs/serving.md).

    \b
    Examples:
      scan serve --index ref-index
      curl -s localhost:8000/check -d '{"text_a": "I flew to Paris.", "text_b": "I took a flight to Paris."}'
      scan serve --port 9000 --replicas 2 --address ray://head:10001
    """
    try:
        from scanner.serve import endpoints, serve_forever
    except ImportError as exc:
        raise click.ClickException(str(exc)) from exc
    from scanner.service import ServeConfig

    config = ServeConfig(batch_wait_s=batch_wait_ms / 1000, **options)
    click.echo(f"scan {__version__}: starting the service (Ray Serve; the models load once per replica) ...", err=True)

    def ready(service: Any) -> None:
        where = " of the cluster's head node" if service.on_head_node else ""
        click.echo(f"Serving on {service.url}{where} ({config.replicas} replica{'s' if config.replicas > 1 else ''}, "
                   f"started in {service.seconds_to_start:.1f} s); Ctrl-C stops it", err=True)
        for line in endpoints(config):
            click.echo(f"  {line}", err=True)

    serve_forever(config, on_ready=ready)
    click.echo("Stopped.", err=True)


def summary_text(result: Any) -> str:
    """The closing summary: what was read, found and flagged, how long it took, where the report is."""
    c, meta = result.counts, result.metadata
    lines = [
        f"Documents: {c['documents_scanned']} scanned, {c['documents_skipped']} skipped"
        f"   Sentences: {c['sentences']} ({c['sentences_short']} too short to compare)",
        f"Candidates: {c['candidate_pairs']} near pairs, {c['pairs_cross_encoded']} cross-encoded"
        f"   Flagged: {c['flagged_pairs']} pairs ({c['exact_pairs']} exact, {c['paraphrase_pairs']} paraphrase)",
        f"Time: {meta['timings']['total']:.1f} s on {meta['engine']}; threshold {meta['threshold']:.2f}",
    ]
    ref = meta.get("reference")
    if ref:  # a scan against an index, or with boilerplate/quotes left out
        where = f"index {ref['index']}: {c['reference_documents']} documents, {c['reference_sentences']} sentences" if ref["index"] else "no index"
        lines.append(f"Reference: {where}; left out: {c['sentences_quoted']} quoted, {c['sentences_boilerplate']} boilerplate sentences")
    import pyarrow.compute as pc

    lines.extend(top_pairs_lines(result.pairs_by_doc))
    skipped = result.documents.filter(pc.equal(result.documents["status"], "skipped"))
    for rec in skipped.slice(0, 5).to_pylist():
        lines.append(f"  skipped {rec['doc']}: {rec['reason']}")
    if skipped.num_rows > 5:
        lines.append(f"  ... and {skipped.num_rows - 5} more skipped (see the docs table)")
    if result.out is not None:
        from scanner.report import sidecar_path

        lines.append(f"Report: {result.out} (documents: {sidecar_path(result.out, 'docs')}, "
                     f"by document pair: {sidecar_path(result.out, 'pairs_by_doc')})")
    return "\n".join(lines)


def top_pairs_lines(ranked: Any, top: int = 5) -> list[str]:
    """The most reused document pairs (a ``pairs_by_doc`` table), one line each, for the closing summary."""
    if not ranked.num_rows:
        return []
    lines = ["Top document pairs (share of each document's sentences involved):"]
    for r in ranked.slice(0, top).to_pylist():
        lines.append(f"  {r['rank']:>2}. {r['doc_a']} ({r['share_a']:.0%}) <-> {r['doc_b']} ({r['share_b']:.0%}): "
                     f"{r['flagged_pairs']} pair{'s' if r['flagged_pairs'] != 1 else ''} ({r['exact_pairs']} exact, {r['paraphrase_pairs']} paraphrase), "
                     f"max score {r['max_score']:.2f}")
    if ranked.num_rows > top:
        lines.append(f"  ... and {ranked.num_rows - top} more document pairs")
    return lines


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cli(prog_name="scan")


if __name__ == "__main__":
    main()
