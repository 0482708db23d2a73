"""The ``scan`` command line: parse, call the library, print. No scanning logic lives here.

Exit codes: 0 done; 1 pairs were flagged and --fail-on-match was given; 2 bad option; 3 input problem
(missing path, nothing scannable); 4 report cannot be written; 5 model cannot be loaded; 6 reference index
problem; 7 Ray cluster unreachable; 8 a Ray worker kept dying after its retries; 70 internal error;
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from scanner import __version__
from scanner.errors import ScannerError

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


def model_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by every command that runs the models."""
    for option in reversed([
        click.option("--embedder", metavar="NAME|PATH", help="Bi-encoder for candidates: a local sentence-transformers "
                     "folder, a cached Hugging Face id, or 'hashing' (lexical, no model).  [default: all-MiniLM-L6-v2]"),
        click.option("--cross-encoder", metavar="PATH", help="Cross-encoder folder.  [default: the shipped PAWS model]"),
        click.option("--threshold", type=click.FloatRange(0, 1), help="Paraphrase probability at which a pair is "
                     "flagged.  [default: the model's, chosen on its validation data]"),
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
@click.option("--scope", type=click.Choice(["cross", "within", "all"]), default="cross", show_default=True,
              help="cross: pairs across documents (plagiarism); within: inside one document (redundancy); all: both.")
@click.option("--min-cosine", type=click.FloatRange(-1, 1), help="Cosine floor for candidates.  [default: 0.7]")
@click.option("--top-k", type=click.IntRange(1), help="Candidate neighbours per sentence.  [default: 5]")
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
@click.option("--fail-on-match", is_flag=True, help=f"Exit with {EXIT_MATCHES} when any pair is flagged (for CI).")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
@model_options
@library_errors
def run_command(paths: tuple[str, ...], out: str, quiet: bool, fail_on_match: bool, max_file_size: float | None,
                address: str | None, engine: str, **options: Any) -> None:
    """Scan files and folders for reused sentences and write a Parquet report.

    \b
    Examples:
      scan ./submissions --out report.parquet
      scan essay.txt sources/ --out r.parquet --threshold 0.8 --keep-rejected
      scan summary.md --scope within --out redundancy.parquet
      scan ./docs --out r.parquet --address ray://head:10001
    """
    from scanner.engine import EngineConfig
    from scanner.pipeline import ScanConfig, run_scan

    options["include"] = tuple(options["include"]) or None
    options["exclude"] = tuple(options["exclude"]) or None
    if max_file_size is not None:
        options["max_file_size"] = int(max_file_size * 1_000_000)
    config = ScanConfig.from_options(**options)
    config = dataclasses.replace(config, engine=EngineConfig(engine=engine, address=address))  # type: ignore[arg-type]
    tty = sys.stderr.isatty() and not quiet

    def on_stage(name: str) -> None:
        if not quiet:
            click.echo(f"  {name} ...", err=True)

    if not quiet:
        click.echo(f"scan {__version__}: {', '.join(paths)}", err=True)
    result = run_scan(paths, config, out, progress=tty, on_stage=on_stage)
    if not quiet:
        click.echo(summary_text(result))
    if fail_on_match and result.counts["flagged_pairs"]:
        sys.exit(EXIT_MATCHES)


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
    import pyarrow.compute as pc

    skipped = result.documents.filter(pc.equal(result.documents["status"], "skipped"))
    for rec in skipped.slice(0, 5).to_pylist():
        lines.append(f"  skipped {rec['doc']}: {rec['reason']}")
    if skipped.num_rows > 5:
        lines.append(f"  ... and {skipped.num_rows - 5} more skipped (see the docs table)")
    if result.out is not None:
        from scanner.report import sidecar_path

        lines.append(f"Report: {result.out} (documents: {sidecar_path(result.out, 'docs')})")
    return "\n".join(lines)


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cli(prog_name="scan")


if __name__ == "__main__":
    main()
