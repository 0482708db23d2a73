"""``scan serve``: ``scanner.service`` as an HTTP service on Ray Serve (the ``serve`` extra).

    >>> from scanner.serve import start
    >>> from scanner.service import ServeConfig
    >>> with start(ServeConfig(port=8123)) as service:            # doctest: +SKIP
    ...     requests.post(f"{service.url}/check", json={"text_a": "...", "text_b": "..."}).json()

Two Serve deployments make one application:

- ``HttpFront`` answers HTTP on ``--host``/``--port`` itself (uvicorn, in the replica's event loop), on the node
  where ``scan serve`` runs. It reads and validates every request (a bad one is answered with its 4xx there and
  never crosses Ray), gathers the /check requests of all callers with ``@serve.batch`` (at most
  ``max_batch_size`` requests, waiting at most ``batch_wait_s`` for more) and sends each group to the models in
  one call of a ``DeploymentHandle``. Serve's own HTTP proxy is not started: through it, every request cost
  another actor call and a call back from the replica to the proxy for the body (about 13 ms of a core per
  request, against 2-3 here: docs/serving.md).
- ``ScannerServer`` holds the models. Each replica starts a ``model_process.ModelPool``: the models
  (``service.Scanner``) load once in each of its child processes, with interpreters of their own, so a model call
  never waits for the GIL that the replica's request handling holds. On CPU there is one process per core of the
  replica, each with one torch thread (``engine.plan_replicas``): calls run side by side rather than each split
  over threads. The replica waits for the children on threads of its own, so its event loop is always free. The
  groups go to a ``service.CheckQueue``: free model processes share what is waiting; while all are busy, the
  groups that arrive wait, and the next call takes all of them (up to ``max_batch_size`` requests). /search and
  /dedupe queue for the same processes. Serve routes the groups between replicas (``--replicas``) and replaces a
  replica that dies, or whose model process died (``check_health``, every ``HEALTH_CHECK_PERIOD_S``); the front
  too, if its server stops.

An unexpected error is a 500 for that request only. Ray is joined or started by ``scanner.engine.connect_ray``
and the replicas are sized by ``scanner.engine.plan_replicas``, as for the batch engine; ``SERVE_ENV`` and
``LOCAL_RAY_ENV`` trim what Ray Serve does per request and in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

try:
    import uvicorn
    from ray import serve
    from ray.exceptions import RayActorError, RayTaskError
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
    SearchRequest,
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
#: how long /healthz and /info wait for a models' replica before answering 503
STATUS_TIMEOUT_S = 10.0
#: Ray's resource of the cluster's head node (where the HTTP front goes for a ``ray://`` client)
HEAD_NODE = "node:__internal_head__"
#: status of library errors met while answering a valid request (others are 500)
LIBRARY_STATUS = {ConfigError: 422, IndexError_: 503, ModelProcessError: 503}
#: Ray Serve's settings for a lean request path, read as each Serve process starts (measured: docs/serving.md).
#: The replicas run their methods, and the front its router, on the event loop that takes the call, with no hand
#: over to a thread of their own per call; the controller looks at the deployments every half second rather
#: than every tenth, and metrics are exported every second rather than every tenth. The replicas (front and
#: models) always get them; the controller only on a local Ray that ``start`` starts (a cluster keeps its own).
SERVE_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0", "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
             "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.5", "RAY_SERVE_METRICS_EXPORT_INTERVAL_MS": "1000"}
#: a local Ray started for the service also records no metrics: it has no dashboard, so nothing would read them
#: (Ray's metrics agent otherwise spends CPU the models need on a small machine)
LOCAL_RAY_ENV = {**SERVE_ENV, "RAY_enable_metrics_collection": "0", "METRICS_RECORD_INTERVAL_S": "60"}


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


@serve.deployment
class ScannerServer:
    """The models of a replica, in its model processes, and the queue of /check groups that feeds them."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        processes = config.model_processes or 1
        #: the models, in processes of their own (``scanner.model_process``: they never wait for this one's GIL)
        self.models = ModelPool(config, processes, config.torch_threads)
        #: a thread per model process, to wait for it (the event loop stays free)
        self.model_thread = ThreadPoolExecutor(processes, thread_name_prefix="scanner-model")
        self.checks = CheckQueue(lambda a, b: self.models.call("check", a, b), self.on_model_thread,
                                 config.max_batch_size, concurrent=processes)

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

    async def check(self, group: list[tuple[list[str], list[str]]]) -> list[list[Check] | Exception]:
        """The verdicts for a group of /check requests (the front's), in order; a request whose model call failed
        gets its exception instead, and the others their verdicts."""
        return await asyncio.gather(*self.checks.submit(group), return_exceptions=True)

    async def search(self, request: SearchRequest) -> Any:
        return await self.on_model_thread(lambda: self.models.call("search", request))

    async def dedupe(self, sentences: list[str]) -> Any:
        return await self.on_model_thread(lambda: self.models.call("dedupe", sentences))

    def healthz(self) -> dict[str, str]:
        """/healthz: this replica answers and its model processes are running."""
        self.check_health()
        return {"status": "ok"}

    def info(self) -> dict[str, Any]:
        info = service_info(self.config)
        info["batching"].update(check_requests=self.checks.requests, check_calls=self.checks.calls,
                               check_model_seconds=round(self.checks.busy_s, 3))
        return info


def bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (``SO_REUSEADDR``: a front that replaces a dead one binds at once),
    or a ``ConfigError`` that says what to do when the port is taken."""
    bound = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        bound.bind((host, port))
    except OSError as exc:
        bound.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}): pass --port with a free port, or stop "
                          "what holds this one") from exc
    return bound


class _Server(uvicorn.Server):
    """uvicorn, without taking the process's signal handlers (they are Ray's: the replica is a Ray actor)."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


def failure_response(exc: BaseException) -> JSONResponse:
    """The answer to a request that failed: its own 4xx, 503 when the models' replica or process went away (send it
    again), 500 for anything else (a bug: that request fails, the service goes on)."""
    if isinstance(exc, RayTaskError) and isinstance(exc.cause, BaseException):
        exc = exc.cause  # raised in the models' replica: answer with what was raised there
    if isinstance(exc, RequestError):
        return error_response(exc.status, str(exc))
    if isinstance(exc, ScannerError):
        return error_response(LIBRARY_STATUS.get(type(exc), 500), str(exc))
    if isinstance(exc, RayActorError):
        return error_response(503, "the models' replica stopped while answering this request (Serve starts a new "
                              "one): send the request again")
    log.error("internal error", exc_info=exc)
    return error_response(500, f"internal error ({exc.__class__.__name__}: {str(exc)[:200]}); the service keeps "
                          "running: please report it with the request that caused it")


@serve.deployment
class HttpFront:
    """HTTP on ``config.host``:``config.port``: reads, checks and answers requests; the models' work goes to
    ``scanner`` (a handle to ``ScannerServer``), /check requests gathered over callers into one call per group."""

    async def __init__(self, config: ServeConfig, scanner: Any, groups_in_flight: int) -> None:
        self.config, self.scanner = config, scanner
        #: /check requests of all callers, gathered into groups: at most ``max_batch_size`` requests, waiting at most
        #: ``batch_wait_s`` for more; at most ``groups_in_flight`` groups with the models at once (one in a call on
        #: each model process and one more waiting on each replica); meanwhile the next group gathers here
        self.gather = serve.batch(max_batch_size=config.max_batch_size, batch_wait_timeout_s=config.batch_wait_s,
                                  max_concurrent_batches=groups_in_flight)(self.send_group)
        listener = bound_socket(config.host, config.port)
        self.server = _Server(uvicorn.Config(self.asgi, interface="asgi3", lifespan="off", ws="none", proxy_headers=False,
                                             access_log=False, log_config=None, log_level="warning"))
        self.serving = asyncio.get_running_loop().create_task(self.server.serve(sockets=[listener]))
        while not self.server.started:
            if self.serving.done():
                self.serving.result()  # uvicorn failed to start: so does this replica, with its error
                raise ConfigError(f"the HTTP server on {config.host}:{config.port} stopped as it started")
            await asyncio.sleep(0.01)

    def check_health(self) -> None:
        """Serve's health check: a front whose HTTP server stopped is replaced."""
        if self.serving.done():
            raise RuntimeError(f"the HTTP server on {self.config.host}:{self.config.port} has stopped")

    def __del__(self) -> None:
        if hasattr(self, "server"):
            self.server.should_exit = True

    async def send_group(self, requests: list[tuple[list[str], list[str]]]) -> list[list[Check] | Exception]:
        """Several callers' /check requests, sent to the models as one group (``gather`` calls it)."""
        return await self.scanner.check.remote(requests)

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

    async def models_answer(self, call: Any) -> dict[str, Any]:
        """A quick call to the models' replica (/healthz, /info): 503 if none answers within ``STATUS_TIMEOUT_S``
        (it is starting, or being replaced), rather than a caller left waiting."""
        try:
            return await asyncio.wait_for(call, STATUS_TIMEOUT_S)
        except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11
            raise ModelProcessError(f"no models' replica answered within {STATUS_TIMEOUT_S:g} s (starting, or being "
                                    "replaced after a failure): ask again shortly") from None

    async def answer(self, endpoint: str, request: Request) -> dict[str, Any]:
        if endpoint == "healthz":
            return await self.models_answer(self.scanner.healthz.remote())
        if endpoint == "info":
            return await self.models_answer(self.scanner.info.remote())
        body = read_json(await self.body(request), self.config.max_body_bytes)
        if endpoint == "check":
            a, b, single = parse_check(body, self.config)
            checks = await self.gather((a, b))
            if isinstance(checks, Exception):
                raise checks
            return check_answer(checks, single)
        if endpoint == "search":
            return search_answer(await self.scanner.search.remote(parse_search(body, self.config)))
        return dedupe_answer(await self.scanner.dedupe.remote(parse_dedupe(body, self.config)))

    async def asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        try:
            response = JSONResponse(await self.answer(route(request.method, request.url.path), request))
        except Exception as exc:
            response = failure_response(exc)
        await response(scope, receive, send)


def deployment_options(config: ServeConfig, plan: StagePlan) -> dict[str, Any]:
    """Serve options of the models' deployment: replicas, their resources and threads, how many calls each takes
    at once (a group per model process and one more waiting, and room for /search, /dedupe and /info beside them),
    health checks."""
    env = {**WORKER_ENV, **SERVE_ENV, "OMP_NUM_THREADS": str(plan.torch_threads)}
    return {
        "num_replicas": config.replicas,
        "max_ongoing_requests": max(((config.model_processes or plan.processes) + 1) * config.max_batch_size, 8),
        "health_check_period_s": HEALTH_CHECK_PERIOD_S,
        "ray_actor_options": {"num_cpus": plan.num_cpus, "num_gpus": plan.num_gpus, "runtime_env": {"env_vars": env}},
    }


def front_options(config: ServeConfig, node: str, groups_in_flight: int) -> dict[str, Any]:
    """Serve options of the HTTP front: one replica, on ``node`` (a ``node:...`` resource of Ray: ``front_node``;
    it binds ``--host`` there), no CPU reserved (it is light, and the models' replicas get the cores)."""
    return {
        "num_replicas": 1,
        "max_ongoing_requests": max(config.max_batch_size * groups_in_flight, 8),  # handle calls: none but Serve's
        "health_check_period_s": HEALTH_CHECK_PERIOD_S,
        "ray_actor_options": {"num_cpus": 0, "resources": {node: 0.001},
                              "runtime_env": {"env_vars": {**WORKER_ENV, **SERVE_ENV}}},
    }


def build_app(config: ServeConfig, plan: StagePlan, node: str) -> Any:
    """The Serve application (``serve.run`` it): the HTTP front on ``node`` and the models' replicas, each with
    ``plan.processes`` model processes of ``plan.torch_threads`` torch threads."""
    config = dataclasses.replace(config, torch_threads=config.torch_threads or plan.torch_threads,
                                 model_processes=config.model_processes or plan.processes)
    groups_in_flight = config.replicas * (config.model_processes + 1)
    models = ScannerServer.options(**deployment_options(config, plan)).bind(config)
    return HttpFront.options(**front_options(config, node, groups_in_flight)).bind(config, models, groups_in_flight)


def front_node() -> str:
    """The Ray resource that places the HTTP front: the node this process runs on (so ``--host`` is this machine's),
    or the head node for a ``ray://`` client, which is on no node of the cluster (where Serve puts its proxy)."""
    import ray

    here = f"node:{ray.util.get_node_ip_address()}"
    return here if here in ray.cluster_resources() else HEAD_NODE


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
    address = EngineConfig(engine="ray", address=config.address).cluster_address() or ""
    if config.port and not address.startswith("ray://"):  # the HTTP front binds it on this machine, as here
        bound_socket(config.host, config.port).close()


@dataclass
class Service:
    """A running service: its ``url``; ``stop`` ends it (and the local Ray it started, if any)."""

    config: ServeConfig
    owns_ray: bool
    seconds_to_start: float
    #: whether HTTP is answered on the cluster's head node rather than this machine (a ``ray://`` client)
    on_head_node: bool = False

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
        serve.start(proxy_location="Disabled")  # the application's own front answers HTTP: no Serve proxy
        node = front_node()
        serve.run(build_app(config, plan, node), name=config.app_name, route_prefix=None, blocking=False)
    except BaseException:
        if owns:
            import ray

            serve.shutdown()
            ray.shutdown()
        raise
    return Service(config, owns, time.perf_counter() - started, on_head_node=node == HEAD_NODE)


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
