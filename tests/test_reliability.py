"""Interruptions, from the outside: real `python -m scanner` runs killed with SIGKILL and SIGINT, and a run
whose every write is checked. These are the slowest tests of the suite (real models, tens of seconds)."""

from __future__ import annotations

import hashlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from conftest import REPO, write

from scanner.embed import packaged_minilm_path
from scanner.report import read_metadata

COPIED = [
    "The committee approved the new budget for the city library after a long debate.",
    "Heavy rain flooded the valley road and the morning buses were cancelled.",
    "Our grandmother kept bees behind the orchard for more than forty years.",
]


def word_salad_corpus(folder: Path, documents: int, sentences: int, seed: int = 7) -> Path:
    """``documents`` files of ``sentences`` distinct random-word sentences each (no two alike, so nothing is
    a candidate by accident), plus a few sentences copied across files so the report has rows."""
    words = [w for w in (Path(packaged_minilm_path()) / "vocab.txt").read_text().split() if re.fullmatch(r"[a-z]{4,9}", w)]
    rng = random.Random(seed)
    for d in range(documents):
        lines = [" ".join(rng.choice(words) for _ in range(rng.randint(8, 16))).capitalize() + "." for _ in range(sentences)]
        lines.insert(d % sentences, COPIED[d % len(COPIED)])
        write(folder / f"doc{d:03d}.txt", " ".join(lines))
    return folder


def scan_command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "scanner", *map(str, args)]


def scan_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "PARAPHRASE_SCANNER"))}
    env.update(PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PARAPHRASE_SCANNER_CACHE=str(tmp_path / "default-cache-must-stay-unused"))
    return env


def cached_vectors(cache_dir: Path) -> int:
    total = 0
    for shard in cache_dir.rglob("[!.]*.npz"):
        with np.load(shard) as data:
            total += len(data["keys"])
    return total


def rows(path: Path) -> list[tuple]:
    """The report's rows, sorted, floats to 5 decimals (batch composition moves the last bits of a vector)."""
    table = pq.read_table(path).to_pylist()
    return sorted(tuple(round(v, 5) if isinstance(v, float) else v for v in r.values()) for r in table)


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"the scan ended (code {proc.returncode}) before it could be interrupted"
        assert time.monotonic() < deadline, "timed out waiting for the scan"
        time.sleep(0.1)


def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_report(tmp_path):
    docs = word_salad_corpus(tmp_path / "docs", documents=12, sentences=60)  # ~730 distinct sentences
    cache, env = tmp_path / "cache", scan_env(tmp_path)
    opts = ["--engine", "local", "--cache-dir", cache, "--min-cosine", "0.8", "-q"]
    out = tmp_path / "out" / "report.parquet"
    out.parent.mkdir()

    proc = subprocess.Popen(scan_command(docs, "--out", out, *opts), env=env, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: any(cache.rglob("[!.]*.npz")), proc)  # the first shard of embeddings is finished
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert list(out.parent.iterdir()) == []  # no report, no sidecar, no temporary file
    kept = cached_vectors(cache)
    assert kept >= 256

    subprocess.run(scan_command(docs, "--out", out, *opts), env=env, check=True, timeout=600)
    resumed = read_metadata(out)["counts"]
    assert resumed["embeddings_from_cache"] >= kept  # all that the killed run finished was reused
    assert resumed["embeddings_from_cache"] < resumed["distinct_sentences"]  # and the rest was computed now

    fresh = tmp_path / "fresh" / "report.parquet"
    fresh.parent.mkdir()
    subprocess.run(scan_command(docs, "--out", fresh, *opts[:2], "--no-cache", *opts[4:]), env=env, check=True, timeout=600)
    assert rows(out) == rows(fresh)
    assert len(rows(out)) >= len(COPIED)
    assert pq.read_table(out.with_name("report.docs.parquet")).equals(pq.read_table(fresh.with_name("report.docs.parquet")))
    uninterrupted = read_metadata(fresh)["counts"]
    assert {k: v for k, v in resumed.items() if k != "embeddings_from_cache"} == \
        {k: v for k, v in uninterrupted.items() if k != "embeddings_from_cache"}
    assert not (tmp_path / "default-cache-must-stay-unused").exists()


def session_processes(sid: int) -> dict[int, str]:
    """pid -> command name of every process in session ``sid`` (the scan and what it started)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if int(rest[3]) == sid and rest[0] != "Z":  # field 6 of stat: session id; Z: exited, awaiting its parent
            found[int(entry.name)] = name
    return found


def test_ctrl_c_on_ray_exits_130_without_a_report_and_stops_its_ray(tmp_path):
    docs = word_salad_corpus(tmp_path / "docs", documents=8, sentences=60)
    out = tmp_path / "out" / "report.parquet"
    out.parent.mkdir()
    # a new session, like a terminal's job: Ctrl-C sends SIGINT to the whole foreground process group
    # (with SIGINT handled as in a terminal, also when these tests run in a background job that ignores it)
    proc = subprocess.Popen(scan_command(docs, "--out", out, "--engine", "ray", "--no-cache"), env=scan_env(tmp_path),
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        lines: list[str] = []
        while "embed ..." not in "".join(lines):  # Ray is up and the model stage is running
            line = proc.stderr.readline()
            assert line, f"the scan ended early: {''.join(lines)}"
            lines.append(line)
        started = session_processes(proc.pid)
        assert any("raylet" in n for n in started.values()) and any("gcs_server" in n for n in started.values()), started
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert "Interrupted: no report was written" in err
    assert list(out.parent.iterdir()) == []
    deadline = time.monotonic() + 30
    while session_processes(proc.pid) and time.monotonic() < deadline:  # the shutdown may take a moment
        time.sleep(0.2)
    assert session_processes(proc.pid) == {}, "the local Ray started by the scan is still running"


def tree_state(root: Path) -> dict[str, str]:
    """Every path under ``root`` with the sha256 of files (and link targets, and folder markers)."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                state[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                state[rel] = hashlib.sha256(path.read_bytes()).hexdigest() + f" {path.stat().st_mode:o}"
            else:
                state[rel] = "dir"
    return state


def test_a_scan_writes_only_its_report_sidecar_and_cache_and_never_touches_inputs(tmp_path):
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir(), tmp.mkdir()
    docs = word_salad_corpus(tmp_path / "work" / "docs", documents=3, sentences=5)
    write(docs / "notes.md", "# Notes\n\nThe committee approved the new budget for the city library after a long debate.\n")
    os.symlink(docs / "notes.md", docs / "link.md")
    (docs / "readonly.txt").write_text("A read-only file stays exactly as it is.")
    (docs / "readonly.txt").chmod(0o444)
    out_dir, cache = tmp_path / "work" / "reports", tmp_path / "work" / "cache"
    out_dir.mkdir()
    env = scan_env(tmp_path)
    env.update(HOME=str(home), TMPDIR=str(tmp), XDG_CACHE_HOME=str(home / ".cache"))
    del env["PARAPHRASE_SCANNER_CACHE"]  # --cache-dir is the only cache
    before = tree_state(tmp_path)

    subprocess.run(scan_command(docs, "--out", out_dir / "r.parquet", "--engine", "local", "--cache-dir", cache, "-q"),
                   env=env, check=True, timeout=600, cwd=tmp_path / "work")

    after = tree_state(tmp_path)
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    # torch makes an empty torchinductor_<user> folder in the temp dir when it is imported: nothing else may appear
    torch_tmp = {p for p in changed if re.fullmatch(r"tmp/torchinductor_[^/]+", p) and not os.listdir(tmp_path / p)}
    cache_writes = {p for p in changed if p == "work/cache" or p.startswith("work/cache/")}
    assert changed - torch_tmp - cache_writes == {"work/reports/r.parquet", "work/reports/r.docs.parquet",
                                                   "work/reports/r.pairs_by_doc.parquet"}
    assert any(p.startswith("work/cache/embeddings/") for p in cache_writes)
    assert os.listdir(home) == []
