"""``scan serve``: ``scanner.service`` as an HTTP service on Ray Serve (the ``serve`` extra).

    >>> from scanner.serve import start
    >>> from scanner.service import ServeConfig
    >>> with start(ServeConfig(port=8123)) as service:            # doctest: +SKIP
    ...     requests.post(f"{service.url}/check", json={"text_a": "...", "text_b": "..."}).json()

One deployment, ``ScannerServer``, answers every endpoint. Each replica starts a ``model_process.ModelPool``:
the models (``service.Scanner``) load once in each of its child processes, with interpreters of their own, so a
model call never waits for the GIL that the replica's request handling holds (in the replica's own process, the
model ran at half its in-process speed under load: docs/serving.md). On CPU there is one process per core of
the replica, each with one torch thread (``engine.plan_replicas``): calls run side by side rather than each
split over threads. The replica waits for the children on threads of its own, so its event loop is always free
to take requests and answer /healthz and /info. /check requests of all callers are gathered by ``@serve.batch``
(at most ``max_batch_size`` requests, waiting at most ``batch_wait_s`` for more) and handed to a
``service.CheckQueue``: a free model process takes what is waiting; while all are busy, the groups gathered
meanwhile wait, and the next call takes all of them (up to ``max_batch_size`` requests). /search and /dedupe take
lists already and queue for the same processes. A request that fails validation is answered with its 4xx and
never reaches the models; an unexpected error is a 500 for that request only. Serve's controller replaces a
replica that dies, or whose model process died (``check_health``, every ``HEALTH_CHECK_PERIOD_S``).

Ray is joined or started by ``scanner.engine.connect_ray`` and the replicas are sized by
``scanner.engine.plan_replicas``, as for the batch engine; ``SERVE_ENV`` and ``LOCAL_RAY_ENV`` trim what Ray
Serve does per request and in the background.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

try:
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import JSONResponse
except ImportError as exc:  # pragma: no cover - the serve extra is part of the test extra
    raise ImportError("scan serve needs Ray Serve: pip install 'paraphrase-scanner[serve]'") from exc

from scanner.engine import WORKER_ENV, EngineConfig, StagePlan, cluster_resources, connect_ray, plan_replicas
from scanner.errors import ConfigError, IndexError_, ModelProcessError, RequestError, ScannerError
from scanner.model_process import ModelPool
from scanner.pair_check import Check
from scanner.service import (
    CheckQueue,
    ServeConfig,
    check_answer,
    dedupe_answer,
    parse_check,
    parse_dedupe,
    parse_search,
    read_json,
    route,
    search_answer,
    service_info,
    too_large,
)

log = logging.getLogger("scanner.serve")
T = TypeVar("T")
#: how often Serve's controller checks each replica (a dead one is replaced within about this long)
HEALTH_CHECK_PERIOD_S = 2.0
#: status of library errors met while answering a valid request (others are 500)
LIBRARY_STATUS = {ConfigError: 422, IndexError_: 503, ModelProcessError: 503}
#: Ray Serve's settings for a lean request path, read as each Serve process starts (measured: docs/serving.md).
#: The replica runs the handler, and the proxy its router, on the event loop that takes the request, with no hand
#: over to a thread of their own per request; the controller looks at the deployment every half second rather
#: than every tenth, and metrics are exported every second rather than every tenth. The replica always gets
#: them; the controller and the proxy only on a local Ray that ``start`` starts (a cluster keeps its own).
SERVE_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0", "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
             "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.5", "RAY_SERVE_METRICS_EXPORT_INTERVAL_MS": "1000"}
#: a local Ray started for the service also records no metrics: it has no dashboard, so nothing would read them
#: (Ray's metrics agent otherwise spends CPU the models need on a small machine)
LOCAL_RAY_ENV = {**SERVE_ENV, "RAY_enable_metrics_collection": "0", "METRICS_RECORD_INTERVAL_S": "60"}


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


@serve.deployment
class ScannerServer:
    """The Serve deployment: routing, the body limit, batching over callers, errors as JSON with their status."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        processes = config.model_processes or 1
        #: the models, in processes of their own (``scanner.model_process``: they never wait for this one's GIL)
        self.models = ModelPool(config, processes, config.torch_threads)
        #: a thread per model process, to wait for it (the event loop stays free)
        self.model_thread = ThreadPoolExecutor(processes, thread_name_prefix="scanner-model")
        self.checks = CheckQueue(lambda a, b: self.models.call("check", a, b), self.on_model_thread,
                                 config.max_batch_size, concurrent=processes)
        self.gather.set_max_batch_size(config.max_batch_size)
        self.gather.set_batch_wait_timeout_s(config.batch_wait_s)

    async def on_model_thread(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.model_thread, call)

    def check_health(self) -> None:
        """Serve's health check: a replica whose model process died is replaced."""
        dead = self.models.dead()
        if dead:
            raise ModelProcessError(f"the model process (pid {', '.join(map(str, dead))}) has ended")

    def __del__(self) -> None:
        if hasattr(self, "models"):
            self.models.close()

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
    async def gather(self, requests: list[tuple[list[str], list[str]]]) -> list[asyncio.Future[list[Check]]]:
        """Several callers' /check requests, handed to the model's queue at once (a future each, returned at
        once, so that Serve goes on gathering the next group while the model runs)."""
        return self.checks.submit(requests)

    async def body(self, request: Request) -> bytes:
        """The request body, refused with 413 as soon as it is known to exceed the limit."""
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large(int(declared), limit)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(size, limit)
            chunks.append(chunk)
        return b"".join(chunks)

    async def answer(self, endpoint: str, request: Request) -> dict[str, Any]:
        if endpoint == "healthz":
            return {"status": "ok"}
        if endpoint == "info":
            info = service_info(self.config)
            info["batching"].update(check_requests=self.checks.requests, check_calls=self.checks.calls,
                                   check_model_seconds=round(self.checks.busy_s, 3))
            return info
        body = read_json(await self.body(request), self.config.max_body_bytes)
        if endpoint == "check":
            a, b, single = parse_check(body, self.config)
            return check_answer(await (await self.gather((a, b))), single)
        if endpoint == "search":
            queries = parse_search(body, self.config)
            return search_answer(await self.on_model_thread(lambda: self.models.call("search", queries)))
        sentences = parse_dedupe(body, self.config)
        return dedupe_answer(await self.on_model_thread(lambda: self.models.call("dedupe", sentences)))

    async def __call__(self, request: Request) -> JSONResponse:
        try:
            return JSONResponse(await self.answer(route(request.method, request.url.path), request))
        except RequestError as exc:
            return error_response(exc.status, str(exc))
        except ScannerError as exc:
            return error_response(LIBRARY_STATUS.get(type(exc), 500), str(exc))
        except Exception as exc:  # a bug: this request fails, the replica keeps serving
            log.exception("internal error answering %s %s", request.method, request.url.path)
            return error_response(500, f"internal error ({exc.__class__.__name__}: {str(exc)[:200]}); the service "
                                  "keeps running: please report it with the request that caused it")


def deployment_options(config: ServeConfig, plan: StagePlan) -> dict[str, Any]:
    """Serve options of the deployment: replicas, their resources and threads, how many requests each takes at
    once (enough to fill a batch per model process and one more, so one can gather while the others run), health
    checks."""
    env = {**WORKER_ENV, **SERVE_ENV, "OMP_NUM_THREADS": str(plan.torch_threads)}
    return {
        "num_replicas": config.replicas,
        "max_ongoing_requests": max(((config.model_processes or plan.processes) + 1) * config.max_batch_size, 8),
        "health_check_period_s": HEALTH_CHECK_PERIOD_S,
        "ray_actor_options": {"num_cpus": plan.num_cpus, "num_gpus": plan.num_gpus, "runtime_env": {"env_vars": env}},
    }


def build_app(config: ServeConfig, plan: StagePlan) -> Any:
    """The Serve application (``serve.run`` it); each replica gets ``plan.processes`` model processes of
    ``plan.torch_threads`` torch threads."""
    config = dataclasses.replace(config, torch_threads=config.torch_threads or plan.torch_threads,
                                 model_processes=config.model_processes or plan.processes)
    return ScannerServer.options(**deployment_options(config, plan)).bind(config)


def preflight(config: ServeConfig) -> None:
    """Fail in a second, before Ray starts: the models and the index must exist, and the port must be free."""
    from scanner.embed import HASHING, resolve_embedder
    from scanner.index import ReferenceIndex
    from scanner.modelfiles import safe_model_folder

    scan = config.scan_config()
    safe_model_folder(scan.verify.model, "cross-encoder", "--cross-encoder")
    if scan.embed.model != HASHING:
        safe_model_folder(resolve_embedder(scan.embed.model), "embedder", "--embedder")
    if config.index is not None:
        ReferenceIndex(config.index).check_embedder(scan.embed.model)
    import ray

    # a Serve already running on this Ray keeps its own port (serve.start then changes nothing)
    if config.address is None and config.port and not ray.is_initialized():
        with socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET) as probe:
            try:
                probe.bind((config.host, config.port))
            except OSError as exc:
                raise ConfigError(f"cannot listen on {config.host}:{config.port} ({exc.strerror}): pass --port with a "
                                  "free port, or stop what holds this one") from exc


@dataclass
class Service:
    """A running service: its ``url``; ``stop`` ends it (and the local Ray it started, if any)."""

    config: ServeConfig
    owns_ray: bool
    seconds_to_start: float

    @property
    def url(self) -> str:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"http://{host}:{self.config.port}"

    def stop(self) -> None:
        import ray

        if not ray.is_initialized():
            return
        if self.owns_ray:
            serve.shutdown()
            ray.shutdown()
        else:  # someone else's cluster: take only this application away
            serve.delete(self.config.app_name)

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(config: ServeConfig) -> Service:
    """Start the service (``preflight`` first) and return once every replica has loaded its models."""
    started = time.perf_counter()
    preflight(config)
    owns = connect_ray(EngineConfig(engine="ray", address=config.address), local_env=LOCAL_RAY_ENV)
    try:
        plan = plan_replicas(cluster_resources(), config.device, config.replicas, config.torch_threads)
        serve.start(http_options={"host": config.host, "port": config.port})
        serve.run(build_app(config, plan), name=config.app_name, route_prefix="/", blocking=False)
    except BaseException:
        if owns:
            import ray

            serve.shutdown()
            ray.shutdown()
        raise
    return Service(config, owns, time.perf_counter() - started)


def shutdown() -> None:
    """Stop Serve and this process's Ray (for callers that ``connect_ray`` themselves and ``start`` several
    applications in turn, as ``pipelines/load_test.py`` does)."""
    import ray

    if ray.is_initialized():
        serve.shutdown()
        ray.shutdown()


def serve_forever(config: ServeConfig, on_ready: Callable[[Service], None] | None = None,
                  poll_s: float = 3600.0) -> None:
    """Start the service and keep it up until Ctrl-C or SIGTERM, then stop it: nothing is left running. Both
    signals take the same way out (Serve, then the local Ray, shut down in order); ``ray.init`` installs a SIGTERM
    handler of its own, which exits without stopping Serve and left Ray's agent processes running, so ours is set
    again once the service is up."""
    import signal

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    service = None
    try:
        service = start(config)
        signal.signal(signal.SIGTERM, terminate)  # ray.init replaced it with Ray's own
        if on_ready is not None:
            on_ready(service)
        while True:
            time.sleep(poll_s)
    except KeyboardInterrupt:
        pass
    finally:
        if service is not None:
            service.stop()
        signal.signal(signal.SIGTERM, previous)


def endpoints(config: ServeConfig) -> Sequence[str]:
    """The endpoints as ``scan serve`` lists them on start."""
    from scanner.service import ROUTES

    return [f"{method} {path}" + (" (no --index: answers 404)" if path == "/search" and not config.index else "")
            for method, path in ROUTES]
