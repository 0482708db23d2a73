from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import write

from scanner.cli import cli

FAST = ["--engine", "local", "--embedder", "hashing", "--min-cosine", "0.3", "--threshold", "1.0"]


@pytest.fixture
def corpus(tmp_path):
    write(tmp_path / "docs" / "a.txt", "The old lighthouse stood on the northern cape for a century. Nobody lives there now.")
    write(tmp_path / "docs" / "b.txt", "Visitors say the old lighthouse stood on the northern cape for a century. It is a museum.")
    write(tmp_path / "docs" / "c.txt", "The old lighthouse stood on the northern cape for a century.")
    return tmp_path / "docs"


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize("command", [[], ["run"], ["report"], ["check"], ["dedupe"], ["serve"]])
def test_every_command_has_help_with_an_example(command):
    for flag in ("-h", "--help"):
        result = invoke(*command, flag)
        assert result.exit_code == 0
        assert "Example" in result.output and "scan " in result.output


def test_scan_writes_report_and_prints_summary(corpus, tmp_path):
    out = tmp_path / "r.parquet"
    result = invoke(str(corpus), "--out", str(out), *FAST)
    assert result.exit_code == 0, result.output
    assert "Documents: 3 scanned, 0 skipped" in result.output
    assert "Flagged: 1 pairs (1 exact, 0 paraphrase)" in result.output
    assert f"Report: {out}" in result.output
    assert pq.read_table(out).num_rows == 1
    assert pq.read_table(tmp_path / "r.docs.parquet").num_rows == 3
    # the top document pairs, as in r.pairs_by_doc.parquet: a.txt and c.txt share their first sentence
    assert "   1. a.txt (50%) <-> c.txt (100%): 1 pair (1 exact, 0 paraphrase), max score 1.00" in result.output
    assert pq.read_table(tmp_path / "r.pairs_by_doc.parquet")["doc_b"].to_pylist() == ["c.txt"]


def test_run_is_the_default_command(corpus, tmp_path):
    a = invoke(str(corpus), "--out", str(tmp_path / "a.parquet"), "-q", *FAST)
    b = invoke("run", str(corpus), "--out", str(tmp_path / "b.parquet"), "-q", *FAST)
    assert a.exit_code == b.exit_code == 0
    assert a.output == b.output == ""
    assert pq.read_table(tmp_path / "a.parquet").equals(pq.read_table(tmp_path / "b.parquet"))


def test_fail_on_match(corpus, tmp_path):
    result = invoke(str(corpus), "--out", str(tmp_path / "r.parquet"), "--fail-on-match", "-q", *FAST)
    assert result.exit_code == 1
    result = invoke(str(corpus / "a.txt"), "--out", str(tmp_path / "r.parquet"), "--fail-on-match", "-q", *FAST)
    assert result.exit_code == 0


@pytest.mark.parametrize("args,code,message", [
    (["{missing}", "--out", "{tmp}/r.parquet"], 3, "does not exist"),
    (["{corpus}", "--out", "{tmp}/no/such/dir/r.parquet"], 4, "does not exist"),
    (["{corpus}", "--out", "{tmp}"], 2, "is a directory"),
    (["{corpus}", "--out", "{tmp}/r.parquet", "--cross-encoder", "{tmp}/nomodel", "--threshold", "0.5"], 5, "does not exist"),
    (["{corpus}", "--out", "{tmp}/r.parquet", "--embedder", "./no-such-model"], 5, "--embedder"),
    (["{corpus}", "--out", "{tmp}/r.parquet", "--exclude", "*"], 3, "no files found"),
])
def test_user_mistakes_give_one_line_and_an_exit_code(corpus, tmp_path, args, code, message):
    args = [a.format(missing=tmp_path / "missing", tmp=tmp_path, corpus=corpus) for a in args]
    fast = [a for a in FAST if a != "hashing" and a != "--embedder"] if "--embedder" in args else FAST
    result = CliRunner().invoke(cli, [*args, *fast])
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_option_value_is_a_usage_error(corpus, tmp_path):
    result = CliRunner().invoke(cli, [str(corpus), "--out", str(tmp_path / "r.parquet"), "--threshold", "3"])
    assert result.exit_code == 2
    assert "--threshold" in result.output


def test_unreachable_ray_address_fails_fast(corpus, tmp_path):
    result = CliRunner().invoke(cli, [str(corpus), "--out", str(tmp_path / "r.parquet"), "--address", "127.0.0.1:1",
                                      "--embedder", "hashing"])
    assert result.exit_code == 7, result.output
    assert "does not answer" in result.output
    assert not (tmp_path / "r.parquet").exists()


def test_local_engine_refuses_an_address(corpus, tmp_path):
    result = CliRunner().invoke(cli, [str(corpus), "--out", str(tmp_path / "r.parquet"), "--address", "127.0.0.1:1",
                                      "--engine", "local"])
    assert result.exit_code == 2 and "--address needs the ray engine" in result.output


@pytest.mark.parametrize("limits", [["--mutual"], ["--candidate-budget", "0.5"], ["--search", "ivf"], ["--search", "exact"],
                                    ["--prefilter", "auto", "--prefilter-min-cosine", "0.3"]])
def test_candidate_limits_and_search_options(corpus, tmp_path, limits):
    from scanner.report import read_metadata

    out = tmp_path / "r.parquet"
    result = invoke(str(corpus), "--out", str(out), "-q", *FAST, *limits)
    assert result.exit_code == 0, result.output
    meta = read_metadata(out)
    assert meta["mutual"] == ("--mutual" in limits)
    assert meta["candidate_budget"] == (0.5 if "--candidate-budget" in limits else None)
    assert meta["search"] == (limits[1] if "--search" in limits else "exact")
    assert meta["prefilter_min_cosine"] == (0.3 if "--prefilter" in limits else 0.48)
    assert meta["prefilter"] is False  # the lexical embedder of these tests never takes the static pre-filter
    assert pq.read_table(out).num_rows == 1  # the one exact copy, whatever the candidate limits


def test_nothing_scannable_is_an_input_error(tmp_path):
    write(tmp_path / "only" / "picture.txt", b"\x89PNG\r\n\x1a\n" + bytes(64))
    write(tmp_path / "only" / "empty.md", "")
    result = CliRunner().invoke(cli, [str(tmp_path / "only"), "--out", str(tmp_path / "r.parquet"), *FAST])
    assert result.exit_code == 3, result.output
    assert "none of the 2 files found could be scanned (binary file: a PNG image; empty file)" in result.output
    assert not (tmp_path / "r.parquet").exists()


def test_unwritable_out_folder_fails_before_any_work(corpus, tmp_path):
    # /proc refuses new files even to root, for whom a chmod'ed folder would still be writable
    result = CliRunner().invoke(cli, [str(corpus), "--out", "/proc/report.parquet", *FAST])
    assert result.exit_code == 4, result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: cannot write in '/proc'")
    assert "read ..." not in result.output


def test_a_failed_report_write_is_one_line_and_leaves_no_file(corpus, tmp_path, monkeypatch):
    import scanner.report

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(scanner.report.pq, "write_table", disk_full)
    result = CliRunner().invoke(cli, [str(corpus), "--out", str(tmp_path / "r.parquet"), *FAST])
    assert result.exit_code == 4, result.output
    assert "No space left on device" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs"]  # no report, no sidecar, no temp file


def test_an_internal_error_exits_70_not_1(corpus, tmp_path, monkeypatch):
    import scanner.scanning

    def bug(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(scanner.scanning, "documents_table", bug)
    result = CliRunner().invoke(cli, [str(corpus), "--out", str(tmp_path / "r.parquet"), "--fail-on-match", *FAST])
    assert result.exit_code == 70
    assert "Error: internal error (RuntimeError: a bug)" in result.output


def test_a_swallowed_ctrl_c_still_stops_the_run_at_the_next_stage():
    import os
    import signal
    import time

    from scanner.cli import interruptible

    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # SIG_IGN when the tests run in a background job
    with interruptible() as stop_if_interrupted:
        stop_if_interrupted()  # nothing yet
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            pass  # swallowed, as code running inside a __del__ or a library callback would
        with pytest.raises(KeyboardInterrupt):
            stop_if_interrupted()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.signal(signal.SIGINT, before)
