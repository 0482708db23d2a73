"""The models of a ``scan serve`` replica in a process of their own, so that they never wait for its GIL.

    >>> models = ModelPool(ServeConfig(), processes=2, threads=1)   # doctest: +SKIP
    >>> models.call("check", ["I flew to Paris."], ["I took a flight to Paris."])   # doctest: +SKIP
    >>> models.close()                                              # doctest: +SKIP

A Serve replica's own Python threads (its event loop, Serve's request handling, Ray's callbacks) take about
4 ms of GIL per request. A model call on a thread of the replica gives the GIL up around every torch operation
and waits to take it back, and under load it spent a third of its time waiting: at 32 callers the model ran
at 16 pairs per second of model time, against 31 in-process for calls of the same size (measured:
docs/serving.md). Here the replica keeps only HTTP, and ``python -m scanner.model_process`` holds the models
(``service.Scanner``) with an interpreter to itself. Each call is one pickled message each way over a socket
pair, about a millisecond for a call of 32 pairs. A replica runs a ``ModelPool`` of them (one per core by
default, ``engine.plan_replicas``): each call goes to a process that is free, so on 2 cores two calls run at
once, each on one thread.

The child lives no longer than the replica: it stops when the socket closes, and a watchdog thread stops it
within ``WATCHDOG_S`` of its parent's death, even in the middle of a call (a replica SIGKILLed by Serve or by
the kernel leaves nothing behind). A child that dies (out of memory, killed) fails the calls in flight with
``ModelProcessError``, and ``alive`` says so, so the replica's health check has Serve replace the replica.
"""

from __future__ import annotations

import os
import pickle
import queue
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from scanner.errors import ModelProcessError

#: how often the child checks that the replica that started it is still there (seconds)
WATCHDOG_S = 0.5
#: the methods of ``service.Scanner`` a replica may call
METHODS = frozenset({"check", "search", "dedupe"})


class ModelProcess:
    """A child process holding ``service.Scanner(config)`` with ``threads`` torch threads; ``call`` runs one of
    its methods there. Calls are serialised (a lock): one model call at a time, as the cores are the model's."""

    def __init__(self, config: Any, threads: int | None = None, wait: bool = True) -> None:
        """Start the child; with ``wait``, return once its models are loaded (else call ``wait_ready``)."""
        parent, child = socket.socketpair()
        command = [sys.executable, "-m", "scanner.model_process", str(child.fileno()), str(os.getpid())]
        # the replica's own import path (a Ray runtime_env may have added the working directory to it)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)  # the native thread pools sized as torch's
        try:
            self.process = subprocess.Popen(command, pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, env=env)
        finally:
            child.close()
        self.connection = Connection(parent.detach())
        self.lock = threading.Lock()
        self.connection.send((config, threads))
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Wait until the models are loaded; the error that stopped them loading is raised here (and the child
        is stopped)."""
        try:
            self._answer()  # "ready", or the error
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def call(self, method: str, *args: Any) -> Any:
        """``Scanner.<method>(*args)`` in the child; its exception, if it raised one, is raised here."""
        if method not in METHODS:
            raise ValueError(f"unknown model method {method!r}: one of {sorted(METHODS)}")
        with self.lock:
            try:
                self.connection.send((method, args))
            except OSError as exc:
                raise self._died() from exc
            return self._answer()

    def _answer(self) -> Any:
        try:
            ok, value = self.connection.recv()
        except (EOFError, OSError) as exc:
            raise self._died() from exc
        if not ok:
            raise value
        return value

    def _died(self) -> ModelProcessError:
        try:
            code = self.process.wait(5)
        except subprocess.TimeoutExpired:
            code = None
        how = "is not answering" if code is None else f"ended with exit status {code}"
        return ModelProcessError(f"the model process (pid {self.process.pid}) {how}, perhaps killed for memory: "
                                 "this replica will be replaced; send the request again")

    def close(self) -> None:
        """Stop the child (closing the socket ends it; it is killed if it does not end within 5 s)."""
        self.connection.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ModelPool:
    """``processes`` model processes of ``threads`` torch threads each, started together; ``call`` runs on one
    that is free (waiting for one if none is), so up to ``processes`` calls run at once, one per process."""

    def __init__(self, config: Any, processes: int = 1, threads: int | None = None) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, got {processes}")
        self.processes: list[ModelProcess] = []
        try:
            for _ in range(processes):  # they load their models at the same time
                self.processes.append(ModelProcess(config, threads, wait=False))
            for process in self.processes:
                process.wait_ready()
        except BaseException:
            self.close()
            raise
        self.idle: queue.SimpleQueue[ModelProcess] = queue.SimpleQueue()
        for process in self.processes:
            self.idle.put(process)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def dead(self) -> list[int]:
        """The pids of the processes that have ended."""
        return [p.pid for p in self.processes if not p.alive()]

    def call(self, method: str, *args: Any) -> Any:
        """``Scanner.<method>(*args)`` in a free process; its exception, if it raised one, is raised here."""
        process = self.idle.get()
        try:
            return process.call(method, *args)
        finally:
            self.idle.put(process)

    def close(self) -> None:
        for process in self.processes:
            process.close()


def _picklable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a RuntimeError with its type and message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{exc.__class__.__name__}: {exc}")


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCHDOG_S)
    os._exit(0)  # the replica is gone: nobody is left to answer


def main(fd: int, parent: int) -> None:
    """The child: load the models, answer "ready", then serve calls until the socket closes."""
    threading.Thread(target=_watch_parent, args=(parent,), name="watch-replica", daemon=True).start()
    connection = Connection(fd)
    try:
        config, threads = connection.recv()
        if threads:
            import torch

            torch.set_num_threads(threads)
        from scanner.service import Scanner

        try:
            scanner = Scanner(config)
        except Exception as exc:
            connection.send((False, _picklable(exc)))
            return
        connection.send((True, "ready"))
        while True:
            method, args = connection.recv()
            try:
                answer = (True, getattr(scanner, method)(*args))
            except Exception as exc:
                answer = (False, _picklable(exc))
            connection.send(answer)
    except (EOFError, OSError):  # the replica closed the socket, or went away
        return


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
