"""``scan serve`` for real: the CLI started as a process on 127.0.0.1 (a free port, never 8000) with the tiny
verifier and a hashing index, on its own local Ray. Answers equal the library's; every bad request of
tests/test_service.py gets its 4xx over HTTP and the service stays healthy; callers' /check requests are
batched; a replica killed mid-request is replaced; Ctrl-C stops the service and every process it started."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_service import BAD_REQUESTS, PAIR, VOLCANO

pytest.importorskip("ray.serve")

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
START_TIMEOUT_S = 240  # Ray and Serve start in ~20 s on an idle 2-core machine; much longer on a loaded one


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def call(port: int, method: str, path: str, raw: bytes | None = None, timeout: float = 120) -> tuple[int, dict]:
    """One HTTP request to the service on loopback: (status, decoded JSON body)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=raw, headers={"Content-Type": "application/json"} if raw is not None else {})
        response = conn.getresponse()
        text = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, {"raw": text.decode("utf-8", "replace")}


def post(port: int, path: str, obj: object) -> tuple[int, dict]:
    return call(port, "POST", path, json.dumps(obj).encode())


# --- processes: which ones the service started -----------------------------------------------------------------

def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a live process, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[1]), fields[19]) if fields[0] != "Z" else None


def gone(pid: int, within: float) -> bool:
    """Whether process ``pid`` has ended (or is a zombie) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while _stat(pid) and time.monotonic() < deadline:
        time.sleep(0.1)  # polling a process that is exiting, not timing a result
    return _stat(pid) is None


def descendants(root: int) -> dict[int, str]:
    """Every live process below ``root``: pid -> start time (so a reused pid is not mistaken for it)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (got := _stat(int(entry.name))):
            parents[int(entry.name)] = got
    found, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        for child, (parent, started) in parents.items():
            if parent == pid and child not in found:
                found[child] = started
                frontier.append(child)
    return found


def title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def replica_pids(root: int, deployment: str = "ScannerServer") -> list[int]:
    """The Serve replica processes of a deployment of the service (the models' by default; Ray titles them
    ``ray::ServeReplica:<app>:<deployment>``)."""
    return [pid for pid in descendants(root) if title(pid).startswith(f"ray::ServeReplica:scanner:{deployment}")]


# --- the service ------------------------------------------------------------------------------------------------

class Running:
    """A ``scan serve`` process and the port it answers on."""

    def __init__(self, process: subprocess.Popen, port: int) -> None:
        self.process, self.port = process, port
        self.stderr: list[str] = []
        self.reader = threading.Thread(target=lambda: self.stderr.extend(process.stderr), daemon=True)
        self.reader.start()

    def wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"scan serve exited with {self.process.returncode}:\n{''.join(self.stderr)[-3000:]}")
            try:
                if call(self.port, "GET", "/healthz", timeout=5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)  # polling a process that is starting, not timing a result
        raise AssertionError(f"scan serve did not answer within {timeout} s:\n{''.join(self.stderr)[-3000:]}")

    def stop(self, timeout: float = 120, how: signal.Signals = signal.SIGINT) -> int:
        if self.process.poll() is None:
            self.process.send_signal(how)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)
        return self.process.returncode


@pytest.fixture(scope="module")
def service(tiny_verifier, hashing_index):
    port = free_port()
    command = [sys.executable, "-m", "scanner", "serve", "--port", str(port), "--cross-encoder", str(tiny_verifier),
               "--embedder", "hashing", "--index", str(hashing_index), "--max-batch-size", "16",
               "--batch-wait-ms", "100"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    running = Running(process, port)
    try:
        running.wait_until_ready(START_TIMEOUT_S)
        yield running
    finally:
        running.stop()  # a no-op when test_sigterm_stops_everything already stopped it


def test_answers_are_the_librarys(service, tiny_verifier, hashing_index):
    from scanner.pair_check import check
    from scanner.redundancy import dedupe
    from scanner.reference import search

    status, got = post(service.port, "/check", PAIR)
    assert status == 200
    expected = check(PAIR["text_a"], PAIR["text_b"], cross_encoder=str(tiny_verifier))
    assert got["match"] == expected.match and got["threshold"] == expected.threshold
    assert got["score"] == pytest.approx(expected.score, abs=1e-5) and got["note"] == expected.note

    status, got = post(service.port, "/check", {"pairs": [PAIR, {"text_a": VOLCANO, "text_b": VOLCANO.upper()}]})
    assert status == 200 and [r["match"] for r in got["results"]] == [expected.match, "exact"]

    status, got = post(service.port, "/search", {"query": VOLCANO.lower(), "threshold": 0.0, "min_cosine": 0.2})
    hits = search([VOLCANO.lower()], hashing_index, threshold=0.0, min_cosine=0.2, embedder="hashing",
                  cross_encoder=str(tiny_verifier), engine="local").to_pylist()
    assert status == 200 and [(h["doc"], h["index"], h["match"]) for h in got["hits"]] == \
        [(h["doc"], h["index"], h["match"]) for h in hits]
    assert got["hits"][0]["text"] == VOLCANO

    sentences = [VOLCANO, "Bees dance to show the others where the flowers are.", VOLCANO]
    status, got = post(service.port, "/dedupe", {"sentences": sentences})
    assert status == 200 and got["kept"] == dedupe(sentences, cross_encoder=str(tiny_verifier), embedder="hashing").kept
    assert got["removed"] == [{"index": 2, "text": VOLCANO, "match": "exact", "score": 1.0, "kept_index": 0,
                               "kept_text": VOLCANO}]


def test_info_and_healthz(service, tiny_verifier):
    from scanner.modelfiles import model_fingerprint

    assert call(service.port, "GET", "/healthz") == (200, {"status": "ok"})
    status, info = call(service.port, "GET", "/info")
    assert status == 200
    assert info["cross_encoder"] == {"name": tiny_verifier.name, "sha256": model_fingerprint(str(tiny_verifier))}
    assert (info["index"]["documents"], info["index"]["sentences"]) == (3, 24)
    assert info["batching"]["max_batch_size"] == 16 and info["threshold"] == 0.5
    # one model process of one torch thread per core of the replica (engine.plan_replicas), all of them running
    (replica,) = replica_pids(service.process.pid)
    assert info["batching"]["torch_threads"] == 1
    assert info["batching"]["model_processes"] == len(model_processes(replica)) >= 1


def environ(pid: int) -> dict[str, str]:
    """The environment a process was started with."""
    entries = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


def test_ray_serve_runs_with_the_services_settings(service):
    """``SERVE_ENV`` reaches the models' replica (and so its model processes) and, on the local Ray that scan serve
    starts, Serve's controller and the HTTP front; that Ray records no metrics (``LOCAL_RAY_ENV``). Serve's own
    HTTP proxy is not started: the front answers HTTP."""
    from scanner.serve import LOCAL_RAY_ENV, SERVE_ENV

    (replica,) = replica_pids(service.process.pid)
    for pid in model_processes(replica):
        assert SERVE_ENV.items() <= environ(pid).items()
    titles = {pid: title(pid) for pid in descendants(service.process.pid)}
    assert not [name for name in titles.values() if name.startswith("ray::ProxyActor")]
    serve_actors = [pid for pid, name in titles.items()
                    if name.startswith(("ray::ServeController", "ray::ServeReplica:scanner:HttpFront"))]
    assert len(serve_actors) == 2
    for pid in serve_actors:
        assert LOCAL_RAY_ENV.items() <= environ(pid).items()
    assert "RAY_SERVE_CONTROL_LOOP_INTERVAL_S" not in os.environ  # set only while Ray started


def test_every_bad_request_gets_its_4xx_and_the_service_stays_up(service):
    for what, method, path, raw, status, words in BAD_REQUESTS:
        got_status, got = call(service.port, method, path, raw if raw or method == "POST" else None)
        assert (got_status, got.get("status")) == (status, status), (what, got)
        assert words in got["error"], (what, got["error"])
    assert call(service.port, "GET", "/healthz") == (200, {"status": "ok"})
    assert post(service.port, "/check", PAIR)[0] == 200


def test_what_is_not_plain_http_is_refused_and_the_front_goes_on(service):
    """Bytes that are not HTTP (a TLS hello), and a websocket upgrade, which the service does not speak."""
    with socket.create_connection((HOST, service.port), timeout=30) as raw:
        raw.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 400")
    conn = http.client.HTTPConnection(HOST, service.port, timeout=30)
    try:
        conn.request("GET", "/check", headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                               "Sec-WebSocket-Version": "13"})
        response = conn.getresponse()
        assert response.status == 405 and "POST" in json.loads(response.read())["error"]
    finally:
        conn.close()
    assert call(service.port, "GET", "/healthz") == (200, {"status": "ok"})


def test_concurrent_callers_are_batched(service):
    before = call(service.port, "GET", "/info")[1]["batching"]
    pairs = [{"text_a": f"The {n}th visitor admired the old harbour.", "text_b": f"Visitor {n} admired the harbour."}
             for n in range(24)]
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda p: post(service.port, "/check", p), pairs))
    assert all(status == 200 and got["match"] in ("paraphrase", "rejected") for status, got in answers)
    after = call(service.port, "GET", "/info")[1]["batching"]
    requests = after["check_requests"] - before["check_requests"]
    calls = after["check_calls"] - before["check_calls"]
    assert requests == 24 and calls < requests  # several callers' pairs went through one model call
    assert after["check_model_seconds"] > before["check_model_seconds"]


def test_a_replica_killed_mid_request_is_replaced(service):
    (replica,) = replica_pids(service.process.pid)
    many = {"pairs": [{"text_a": f"{VOLCANO} Number {n}.", "text_b": f"Number {n}: {VOLCANO.lower()}"}
                      for n in range(1000)]}
    in_flight: dict[str, object] = {}

    def long_request() -> None:
        try:
            in_flight["answer"] = post(service.port, "/check", many)
        except OSError as exc:
            in_flight["answer"] = exc

    models = model_processes(replica)  # where the models run
    assert models and set(models) == set(descendants(replica))
    idle = sum(cpu_seconds(pid) for pid in models)
    caller = threading.Thread(target=long_request)
    caller.start()
    deadline = time.monotonic() + 120
    # kill it once its models have spent half a CPU second on the request: the request is then surely inside them
    while ("answer" not in in_flight and sum(cpu_seconds(pid) for pid in models) < idle + 0.5
           and time.monotonic() < deadline):
        time.sleep(0.02)  # polling the model processes' CPU time, not timing a result
    assert "answer" not in in_flight, "the request was answered before the replica could be killed"
    os.kill(replica, signal.SIGKILL)
    caller.join(120)
    answer = in_flight.get("answer")
    # that request is lost, and said so: the front answers 503, send it again
    assert answer[0] == 503 and "send the request again" in answer[1]["error"], answer
    # the killed replica's model processes stop, even the one in the middle of a call
    assert all(gone(pid, 30) for pid in models), "a model process of the killed replica is still running"
    def replaced_and_answering() -> bool:
        pids = replica_pids(service.process.pid)
        return bool(pids) and replica not in pids and post(service.port, "/check", PAIR)[0] == 200

    assert answers_again(replaced_and_answering, 180), \
        "no new replica answered within 180 s"
    assert call(service.port, "GET", "/healthz")[0] == 200


def answers_again(answered: Callable[[], bool], within: float) -> bool:
    """Whether ``answered()`` comes true within ``within`` seconds (a connection refused meanwhile counts as no)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if answered():
                return True
        except OSError:
            pass
        time.sleep(0.5)  # polling Serve's controller at work, not timing a result
    return False


def test_the_http_front_killed_is_replaced_on_the_same_port(service):
    (front,) = replica_pids(service.process.pid, "HttpFront")
    os.kill(front, signal.SIGKILL)
    assert gone(front, 30)
    assert answers_again(lambda: call(service.port, "GET", "/healthz", timeout=5)[0] == 200, 120), \
        "no new front answered within 120 s"
    (new_front,) = replica_pids(service.process.pid, "HttpFront")
    assert new_front != front
    status, got = post(service.port, "/check", PAIR)
    assert status == 200 and got["match"] in ("paraphrase", "rejected")


def test_errors_from_the_models_replica_are_answered_as_raised_there():
    """What the models' replica raises reaches the front wrapped by Ray; it is answered with the original's status
    and message, not Ray's traceback. A replica gone is a 503 (send again); anything else a 500."""
    from ray.exceptions import ActorDiedError, RayTaskError

    from scanner.errors import ModelProcessError, RequestError
    from scanner.serve import failure_response

    def answered(exc: BaseException) -> tuple[int, dict]:
        response = failure_response(exc)
        return response.status_code, json.loads(response.body)

    raised = RequestError(404, "this service has no reference index: start it with --index DIR")
    wrapped = RayTaskError("search", "Traceback (most recent call last): ...", raised).as_instanceof_cause()
    assert answered(wrapped) == (404, {"error": str(raised), "status": 404})
    wrapped = RayTaskError("check", "Traceback ...", ModelProcessError("the model process ended")).as_instanceof_cause()
    assert answered(wrapped) == (503, {"error": "the model process ended", "status": 503})
    status, got = answered(ActorDiedError())
    assert status == 503 and "send the request again" in got["error"]
    status, got = answered(ZeroDivisionError("division by zero"))
    assert status == 500 and "ZeroDivisionError: division by zero" in got["error"] and "keeps running" in got["error"]


def test_healthz_and_info_answer_503_when_no_models_replica_answers(monkeypatch):
    """/healthz and /info ask the models' replica; while none is up (starting, or being replaced) they answer 503
    after ``STATUS_TIMEOUT_S`` instead of leaving the caller waiting."""
    import asyncio

    import scanner.serve as serving
    from scanner.errors import ModelProcessError

    monkeypatch.setattr(serving, "STATUS_TIMEOUT_S", 0.05)

    async def never_answered() -> dict:
        await asyncio.sleep(3600)
        return {}

    with pytest.raises(ModelProcessError, match=r"no models' replica answered within 0\.05 s") as raised:
        asyncio.run(serving.HttpFront.func_or_class.models_answer(None, never_answered()))
    assert serving.failure_response(raised.value).status_code == 503


def model_processes(replica: int) -> list[int]:
    """The replica's model processes (``python -m scanner.model_process``)."""
    return [pid for pid in descendants(replica)
            if "scanner.model_process" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_sigterm_stops_everything(service):
    """SIGTERM (what process managers send) takes the way out of Ctrl-C (SIGINT, which ``Running.stop`` sends
    otherwise): the service and the local Ray stop, and none of the processes they started is left."""
    started = descendants(service.process.pid)
    assert any(title(pid).startswith("ray::ServeReplica") for pid in started)
    assert service.stop(how=signal.SIGTERM) == 0
    assert "Stopped." in "".join(service.stderr)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        left = {pid: title(pid) for pid, start in started.items() if (got := _stat(pid)) and got[1] == start}
        if not left:
            break
        time.sleep(0.5)  # Ray's processes exit on their own once the driver is gone
    assert not left, f"still running after scan serve stopped: {left}"
    with pytest.raises(OSError):
        call(service.port, "GET", "/healthz", timeout=5)


def test_a_busy_port_or_a_missing_model_fails_before_ray_starts(tiny_verifier):
    from click.testing import CliRunner

    from scanner.cli import cli

    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "--port", str(port), "--cross-encoder", str(tiny_verifier),
                                          "--embedder", "hashing"])
    assert result.exit_code == 2 and f"cannot listen on {HOST}:{port}" in result.output
    result = CliRunner().invoke(cli, ["serve", "--port", str(free_port()), "--cross-encoder", "/no/such/model"])
    assert result.exit_code == 5 and "does not exist" in result.output
    import ray

    assert not ray.is_initialized()
