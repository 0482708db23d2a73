"""The runnable examples of the reference-index workflow, as a user runs them: the nightly job and the
query-search example, in subprocesses with the real models."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
from conftest import REPO

ENV = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)


def test_nightly_job_on_the_bundled_examples(tmp_path):
    args = ["examples/nightly/nightly.py", "--index", str(tmp_path / "index"), "--reports", str(tmp_path / "reports"),
            "--date", "2026-01-31"]
    first = run(*args)
    assert first.returncode == 0, first.stderr
    assert "sources: 3 added" in first.stdout and "archived: 3 documents under incoming/2026-01-31/" in first.stdout
    rows = pq.read_table(tmp_path / "reports" / "2026-01-31.parquet").to_pylist()
    exact = {(r["origin_a"], r["doc_a"], r["doc_b"]) for r in rows if r["match"] == "exact"}
    assert exact == {("reference", "sources/volcanoes.txt", "essay_anna.txt")}
    assert all(r["origin_a"] in ("reference", "scanned") for r in rows)
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert sorted(manifest["documents"]) == sorted(
        [f"sources/{n}" for n in ("honeybees.md", "lighthouse.html", "volcanoes.txt")]
        + [f"incoming/2026-01-31/{n}" for n in ("essay_anna.txt", "essay_ben.md", "notes_carla.txt")])
    again = run(*args)
    assert again.returncode == 0, again.stderr
    assert "3 unchanged (0 sentences embedded)" in again.stdout and "already archived" in again.stdout


def test_search_example_runs():
    result = run("examples/search_example.py")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("index: 3 documents, 24 sentences")
    blocks = out.split("query: ")[1:]
    assert "honeybees.md:91-201" in blocks[0]  # the planted paraphrase of the queen sentence
    assert "no paraphrase in the index" in blocks[1]  # a word swap (lava/magma) is no paraphrase
    assert "no paraphrase in the index" in blocks[2]  # unrelated
