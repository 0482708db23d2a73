"""One run on a real local Ray, with a model actor killed in the middle of its batch: Ray restarts the actor,
retries the batch, and the report is the same as the in-process engine's."""

from __future__ import annotations

import os
import shutil
import signal
import threading
from pathlib import Path

import pytest
from test_reliability import word_salad_corpus

from scanner.scanning import ScanConfig, run_scan

ray = pytest.importorskip("ray")


def flagged(result):
    cols = ["doc_a", "index_a", "doc_b", "index_b", "match"]
    return sorted(tuple(r[c] for c in cols) for r in result.pairs.to_pylist())


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def _descends_from_us(pid: int) -> bool:
    """Only processes this test's Ray started (children of its raylet, a child of this process) are touched."""
    try:
        while pid > 1:
            pid = _parent(pid)
            if pid == os.getpid():
                return True
    except (OSError, ValueError):
        pass
    return False


class ActorKiller(threading.Thread):
    """SIGKILLs the first actor of ``stage`` seen running a batch: Ray titles a worker process
    ``ray::<actor>.<method>`` while it runs a task (``.__init__`` while it loads its model)."""

    def __init__(self, stage: str) -> None:
        super().__init__(daemon=True)
        self.prefix = f"ray::MapWorker(MapBatches({stage}))."
        self.stop = threading.Event()
        self.killed: tuple[int, str] | None = None

    def busy_actor(self) -> tuple[int, str] | None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if title.startswith(self.prefix) and not title.endswith(".__init__") and _descends_from_us(int(entry.name)):
                return int(entry.name), title
        return None

    def run(self) -> None:
        while self.killed is None and not self.stop.is_set():
            found = self.busy_actor()
            if found:
                os.kill(found[0], signal.SIGKILL)
                self.killed = found
            self.stop.wait(0.05)


def test_ray_with_a_killed_actor_matches_in_process(examples_dir, local_engine, tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(examples_dir, docs)
    word_salad_corpus(docs / "salad", documents=4, sentences=40)  # enough to keep the embedder busy for seconds
    config = ScanConfig.from_options(cache=False)
    local = run_scan([docs], config, engine=local_engine)

    killer = ActorKiller("SentenceEmbedder")
    killer.start()
    try:
        on_ray = run_scan([docs], ScanConfig.from_options(cache=False, engine="ray"))
    finally:
        killer.stop.set()
        killer.join()
    assert killer.killed is not None, "no embedder actor was caught running a batch"
    assert on_ray.metadata["engine"].startswith("ray")
    assert not ray.is_initialized()  # the local Ray started for the run was shut down
    assert flagged(on_ray) == flagged(local)
    assert on_ray.documents.sort_by("doc").equals(local.documents.sort_by("doc"))
    scores_local = sorted(round(s, 4) for s in local.pairs["score"].to_pylist())
    scores_ray = sorted(round(s, 4) for s in on_ray.pairs["score"].to_pylist())
    assert scores_local == scores_ray


def test_a_worker_that_keeps_dying_is_a_worker_error_and_user_errors_pass_through():
    from scanner.engine import RayEngine
    from scanner.errors import ModelLoadError, WorkerError

    engine = object.__new__(RayEngine)  # only the error mapping, no cluster
    engine._ray = ray
    died = r"the embed stage failed after 3 retries \(ActorDiedError: The actor died"
    with pytest.raises(WorkerError, match=died), engine._worker_faults("embed"):
        raise ray.exceptions.ActorDiedError()
    with pytest.raises(ModelLoadError, match="bad model"), engine._worker_faults("embed"):
        raise ray.exceptions.RayTaskError("f", "traceback", ModelLoadError("bad model"))
