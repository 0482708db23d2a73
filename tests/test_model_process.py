"""``scanner.model_process`` for real: a child process holding the tiny verifier and the hashing embedder answers
as the library does, its errors reach the caller with their type, and it never outlives the process that
started it (closed, killed, or its parent killed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_serve import cpu_seconds, descendants, gone, model_processes

from scanner.errors import ModelLoadError, ModelProcessError, RequestError
from scanner.model_process import ModelPool, ModelProcess
from scanner.service import SearchRequest, ServeConfig

REPO = Path(__file__).resolve().parent.parent
PAIRS = (["I took a flight from New York to Paris.", "The cat sat on the mat.", "Bees dance."],
         ["I flew to Paris from New York.", "the cat sat on the mat", "Worker bees gather nectar."])


@pytest.fixture(scope="module")
def models(tiny_verifier, hashing_index):
    process = ModelProcess(ServeConfig(cross_encoder=str(tiny_verifier), embedder="hashing", index=str(hashing_index)),
                           threads=1)
    yield process
    process.close()


def test_answers_are_the_librarys(models, tiny_verifier, hashing_index):
    from scanner.pair_check import check_pairs, verdicts
    from scanner.redundancy import dedupe
    from scanner.reference import search

    assert models.call("check", *PAIRS) == verdicts(check_pairs(*PAIRS, cross_encoder=str(tiny_verifier)))
    request = SearchRequest(["Bees dance to show the others where the flowers are."], top_k=3, min_cosine=0.1,
                            threshold=0.0)
    got = models.call("search", request)
    expected = search(request.queries, hashing_index, threshold=0.0, top_k=3, min_cosine=0.1, embedder="hashing",
                      cross_encoder=str(tiny_verifier), engine="local")
    assert got.select(["doc", "index", "match"]).to_pylist() == expected.select(["doc", "index", "match"]).to_pylist()
    sentences = ["Bees dance.", "Worker bees gather nectar.", "bees dance"]
    assert models.call("dedupe", sentences).kept == dedupe(sentences, cross_encoder=str(tiny_verifier),
                                                           embedder="hashing", cache=False).kept


def test_errors_reach_the_caller_with_their_type_and_the_process_keeps_serving(models, tiny_verifier):
    bare = ModelProcess(ServeConfig(cross_encoder=str(tiny_verifier), embedder="hashing"), threads=1)
    try:
        with pytest.raises(RequestError, match="--index DIR") as caught:
            bare.call("search", SearchRequest(["Bees dance."]))
        assert caught.value.status == 404
        assert bare.alive() and bare.call("check", ["a b c"], ["a b c"])[0].match == "exact"
    finally:
        bare.close()
    assert gone(bare.pid, 10)
    with pytest.raises(ValueError, match="unknown model method"):
        models.call("__init__")


def test_a_model_that_cannot_load_fails_the_start_and_leaves_nothing(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        ModelProcess(ServeConfig(cross_encoder=str(tmp_path / "no-such-model"), embedder="hashing"))


def test_a_killed_model_process_fails_calls_with_a_clear_error(tiny_verifier):
    models = ModelProcess(ServeConfig(cross_encoder=str(tiny_verifier), embedder="hashing"), threads=1)
    os.kill(models.pid, signal.SIGKILL)
    assert gone(models.pid, 10)
    with pytest.raises(ModelProcessError, match=r"exit status -9.*send the request again"):
        models.call("check", *PAIRS)
    assert not models.alive()
    models.close()


def test_the_model_process_ends_with_the_process_that_started_it(tiny_verifier):
    """A parent killed with SIGKILL (as Serve or the kernel kill a replica) runs no cleanup: the child notices."""
    script = textwrap.dedent(f"""
        import sys, time
        from scanner.model_process import ModelPool, ModelProcess
        from scanner.service import ServeConfig
        models = ModelProcess(ServeConfig(cross_encoder={str(tiny_verifier)!r}, embedder="hashing"), threads=1)
        print(models.pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert not gone(child, 0.5)
        parent.kill()
        parent.wait(10)
        assert gone(child, 10), "the model process outlived its parent"
    finally:
        parent.kill()
        parent.wait()


def test_a_pool_spreads_calls_over_its_processes_and_reports_the_dead(tiny_verifier):
    pool = ModelPool(ServeConfig(cross_encoder=str(tiny_verifier), embedder="hashing"), processes=2, threads=1)
    try:
        first, second = pool.pids
        assert set(descendants(os.getpid())) >= {first, second}
        before = {pid: cpu_seconds(pid) for pid in pool.pids}
        many = ([f"The old harbour was busy at dawn on day {n}." for n in range(200)],
                [f"On day {n}, the old harbour was busy at dawn." for n in range(200)])
        with ThreadPoolExecutor(2) as callers:  # two calls at once: one each
            answers = list(callers.map(lambda _: pool.call("check", *many), range(2)))
        assert answers[0] == answers[1] and len(answers[0]) == 200
        assert all(cpu_seconds(pid) > before[pid] + 0.05 for pid in pool.pids), "a process took no call"
        assert pool.dead() == []
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while pool.dead() != [first] and time.monotonic() < deadline:
            time.sleep(0.1)  # polling a process that is exiting (/proc says zombie a moment before waitpid does)
        assert pool.dead() == [first]
        with pytest.raises(ModelProcessError, match="send the request again"):
            for _ in range(2):  # the next call, or the one after it, goes to the dead process
                pool.call("check", *PAIRS)
    finally:
        pool.close()
    assert gone(second, 10)


def test_a_pool_whose_models_cannot_load_fails_the_start_and_leaves_no_process(tmp_path):
    before = set(model_processes(os.getpid()))
    with pytest.raises(ModelLoadError, match="does not exist"):
        ModelPool(ServeConfig(cross_encoder=str(tmp_path / "no-such-model"), embedder="hashing"), processes=2)
    assert all(gone(pid, 10) for pid in set(model_processes(os.getpid())) - before)
