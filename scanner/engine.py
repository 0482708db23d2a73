"""Where the stages run: the only module that knows about Ray.

``RayEngine`` runs reading/segmenting as Ray tasks and the two models in actor pools through Ray Data
``map_batches``; with no address it starts a local Ray for the run and shuts it down afterwards, with an
address (``--address`` or ``RAY_ADDRESS``) it joins that cluster. ``LocalEngine`` runs the very same stage
callables in this process, for tests and for embedding the library where Ray is not wanted.

Resources (actors, GPUs, torch threads, rows per batch) are chosen in ``plan_stage`` from what the cluster
has, never inside a stage.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import pyarrow as pa

from scanner.embed import EmbedConfig, SentenceEmbedder
from scanner.errors import ClusterError, ConfigError, ScannerError, WorkerError
from scanner.ingest import IngestConfig, Source
from scanner.schema import READ as READ_SCHEMA
from scanner.segment import SegmentConfig, read_and_segment
from scanner.verify import CrossEncoderScorer, VerifyConfig

EngineKind = Literal["auto", "ray", "local"]
#: called with (row numbers, vectors) as each chunk of embeddings is finished, e.g. to cache it
ChunkCallback = Callable[[np.ndarray, np.ndarray], None]
#: with engine "auto" and no cluster address, inputs at least this large start a local Ray; smaller ones run
#: in-process, where Ray's start-up (5-10 s plus a model load per actor) would cost more than it saves
AUTO_RAY_BYTES = 5_000_000
#: how often a model actor that died (killed, out of memory, node lost) is restarted, and a batch or read task
#: whose worker died is run again, before the run fails with WorkerError
ACTOR_RESTARTS = 3
TASK_RETRIES = 3
#: worker environment: models come from local files only, never from a hub
WORKER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@dataclass(frozen=True)
class EngineConfig:
    """``engine``: ``auto`` (default: Ray when a cluster address is given or the input is at least
    ``auto_ray_bytes``, else in-process), ``ray`` or ``local`` (this process only). ``address``: a Ray cluster
    to join; None uses ``RAY_ADDRESS`` if set, else starts a local Ray. ``num_cpus`` sizes that local Ray."""

    engine: EngineKind = "auto"
    address: str | None = None
    num_cpus: int | None = None

    def __post_init__(self) -> None:
        if self.engine not in ("auto", "ray", "local"):
            raise ConfigError(f"--engine must be auto, ray or local, got {self.engine!r}")
        if self.engine == "local" and self.address:
            raise ConfigError("--address needs the ray engine: drop --engine local")

    def cluster_address(self) -> str | None:
        return self.address or os.environ.get("RAY_ADDRESS") or None

    def use_ray(self, input_bytes: int) -> bool:
        """Whether this run goes to Ray: always for ``ray``, never for ``local``, by address or size for ``auto``."""
        if self.engine != "auto":
            return self.engine == "ray"
        return self.cluster_address() is not None or input_bytes >= self.auto_ray_bytes

    auto_ray_bytes: int = AUTO_RAY_BYTES


@dataclass(frozen=True)
class StagePlan:
    """How one model stage is laid out on the cluster."""

    actors: int
    num_gpus: float
    num_cpus: float
    torch_threads: int
    rows_per_call: int
    #: model processes per actor, each with ``torch_threads`` threads (``scan serve``'s replicas; 1 elsewhere)
    processes: int = 1


def plan_stage(resources: dict[str, float], device: str) -> StagePlan:
    """Actors and threads for a model stage given the cluster's CPUs and GPUs.

    One actor per GPU when GPUs are used. On CPU, actors of up to 4 torch threads each, so that workers never
    run more threads than cores (2 cores: one actor with 2 threads).
    """
    cpus = max(1, int(resources.get("CPU", os.cpu_count() or 1)))
    gpus = int(resources.get("GPU", 0))
    if gpus and device != "cpu":
        return StagePlan(actors=gpus, num_gpus=1, num_cpus=1, torch_threads=min(4, cpus), rows_per_call=4096)
    threads = min(4, cpus)
    return StagePlan(actors=max(1, cpus // threads), num_gpus=0, num_cpus=threads, torch_threads=threads, rows_per_call=1024)


def plan_replicas(resources: dict[str, float], device: str, replicas: int, torch_threads: int | None = None) -> StagePlan:
    """How ``replicas`` model servers (``scan serve``) share the cluster: one GPU each while GPUs last, with one
    model process; on CPU the cores split between them (at most 4 each, at least 1), and each replica runs one
    model process per ``torch_threads`` of its cores (default 1 thread: one process per core), so that together
    they never run more torch threads than cores.

    One thread per process because the service's model calls are small (the requests that arrive while the
    model is busy): two single-thread processes, each with its own call, score about 10-30% more pairs per
    second on 2 cores than one process whose two threads split each call (docs/serving.md); a lone caller waits
    about 1.25x longer for one pair. ``torch_threads`` trades the other way."""
    if replicas < 1:
        raise ConfigError(f"--replicas must be at least 1, got {replicas}")
    if torch_threads is not None and torch_threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {torch_threads}")
    cpus = max(1, int(resources.get("CPU", os.cpu_count() or 1)))
    gpus = int(resources.get("GPU", 0))
    if gpus >= replicas and device != "cpu":
        return StagePlan(actors=replicas, num_gpus=1, num_cpus=1, torch_threads=torch_threads or 1, rows_per_call=4096)
    cores = max(1, min(4, cpus // replicas))
    threads = torch_threads or 1
    # the reservation never exceeds the cluster, so every replica can be placed even when they share cores
    return StagePlan(actors=replicas, num_gpus=0, num_cpus=min(float(max(cores, threads)), cpus / replicas),
                     torch_threads=threads, rows_per_call=1024, processes=max(1, cores // threads))


class Engine(Protocol):
    description: str

    def read(self, sources: Sequence[Source], ingest: IngestConfig, segment: SegmentConfig) -> pa.Table: ...
    def embed(self, texts: Sequence[str], config: EmbedConfig, on_chunk: ChunkCallback | None = None) -> np.ndarray: ...
    def score(self, a: Sequence[str], b: Sequence[str], config: VerifyConfig) -> np.ndarray: ...
    def close(self) -> None: ...


def _source_table(sources: Sequence[Source]) -> pa.Table:
    return pa.table({
        "doc": [s.doc for s in sources], "path": [s.path for s in sources],
        "format": [s.format for s in sources], "skip_reason": [s.skip_reason for s in sources],
    })


def _sorted_by_row(table: pa.Table) -> pa.Table:
    return table.sort_by("row")


#: sentences (or pairs) per chunk in-process: each embedded chunk becomes one cache shard, so this bounds the
#: work an interrupted run loses (~256 sentences, a few seconds on 2 CPU cores); larger gains nothing, since
#: batches inside a chunk are formed by token count anyway
LOCAL_CHUNK = 256


def _length_order(lengths: Iterator[int] | Sequence[int]) -> np.ndarray:
    """Row indices sorted by text length (stable): fed in this order, batches of neighbours pad little."""
    return np.argsort(np.fromiter(lengths, dtype=np.int64), kind="stable")


def _chunks_by_length(lengths: Sequence[int], size: int) -> list[np.ndarray]:
    """Row indices sorted by length, cut into chunks: each chunk then batches with little padding."""
    order = _length_order(lengths)
    return [order[i : i + size] for i in range(0, len(order), size)]


class LocalEngine:
    """Runs every stage in this process. Model instances are kept for the engine's life.

    Work is fed to the stages in chunks (sorted by text length), which gives a progress bar per stage.
    """

    description = "local (in-process)"

    def __init__(self, progress: bool = False) -> None:
        self._models: dict[Any, Any] = {}
        self.progress = progress

    def _bar(self, total: int, desc: str, unit: str) -> Any:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, disable=not self.progress, leave=False, dynamic_ncols=True)

    def read(self, sources: Sequence[Source], ingest: IngestConfig, segment: SegmentConfig) -> pa.Table:
        table = _source_table(sources).append_column("row", pa.array(range(len(sources)), pa.int64()))
        if not len(table):
            return READ_SCHEMA.empty_table()
        parts = []
        with self._bar(len(table), "read+segment", "file") as bar:
            for start in range(0, len(table), 16):
                parts.append(read_and_segment(table.slice(start, 16), ingest=ingest, segment=segment))
                bar.update(parts[-1].num_rows)
        return pa.concat_tables(parts)

    def _model(self, key: Any, factory: Any) -> Any:
        if key not in self._models:
            self._models[key] = factory()
        return self._models[key]

    def embed(self, texts: Sequence[str], config: EmbedConfig, on_chunk: ChunkCallback | None = None) -> np.ndarray:
        model = self._model(config, lambda: SentenceEmbedder(config))
        out = np.zeros((len(texts), model.dim), dtype=np.float32)
        with self._bar(len(texts), "embed", "sentence") as bar:
            for rows in _chunks_by_length([len(t) for t in texts], LOCAL_CHUNK):
                out[rows] = model.embed([texts[i] for i in rows])
                if on_chunk is not None:
                    on_chunk(rows, out[rows])
                bar.update(len(rows))
        return out

    def score(self, a: Sequence[str], b: Sequence[str], config: VerifyConfig) -> np.ndarray:
        model = self._model(config, lambda: CrossEncoderScorer(config))
        out = np.zeros(len(a), dtype=np.float32)
        with self._bar(len(a), "verify", "pair") as bar:
            for rows in _chunks_by_length([len(x) + len(y) for x, y in zip(a, b, strict=True)], LOCAL_CHUNK):
                out[rows] = model.score([a[i] for i in rows], [b[i] for i in rows])
                bar.update(len(rows))
        return out

    def close(self) -> None:
        self._models.clear()


class RayEngine:
    """Runs the stages on Ray Data; starts (and later stops) a local Ray unless given a cluster address."""

    def __init__(self, config: EngineConfig, progress: bool = False) -> None:
        import ray

        self._ray = ray
        address = config.cluster_address()
        self._owns_ray = connect_ray(config)
        from ray.data import DataContext

        _quiet_ray_logs()  # again: importing ray.data installs its own logging configuration
        ctx = DataContext.get_current()
        ctx.enable_progress_bars = progress
        ctx.verbose_progress = False
        ctx.print_on_execution_start = False
        if hasattr(ctx, "max_consecutive_actor_init_deaths"):  # an actor that dies while loading its model is replaced
            ctx.max_consecutive_actor_init_deaths = ACTOR_RESTARTS
        self.resources = cluster_resources()
        where = f"cluster at {address}" if address else "local Ray"
        self.description = f"ray {ray.__version__} ({where}, {int(self.resources.get('CPU', 0))} CPUs, {int(self.resources.get('GPU', 0))} GPUs)"

    def read(self, sources: Sequence[Source], ingest: IngestConfig, segment: SegmentConfig) -> pa.Table:
        import ray.data

        table = _source_table(sources).append_column("row", pa.array(range(len(sources)), pa.int64()))
        if not len(table):
            return READ_SCHEMA.empty_table()
        blocks = max(1, min(len(sources) // 8, int(self.resources.get("CPU", 1)) * 4))
        with warnings.catch_warnings():  # Ray 2.60 deprecates max_retries here but has no named parameter yet
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = ray.data.from_arrow(table).repartition(blocks).map_batches(
                read_and_segment, batch_format="pyarrow", batch_size=16, fn_kwargs={"ingest": ingest, "segment": segment},
                max_retries=TASK_RETRIES,  # a read task whose worker died runs again (a bad file never raises)
            )
        with self._worker_faults("read+segment"):
            return _sorted_by_row(pa.concat_tables(self._ray.get(ds.to_arrow_refs())).cast(READ_SCHEMA))

    @contextmanager
    def _worker_faults(self, stage: str) -> Iterator[None]:
        """A worker that still fails after its retries becomes a ``WorkerError``; a ``ScannerError`` raised
        inside a worker (e.g. a model that cannot load) reaches the user unchanged."""
        try:
            yield
        except self._ray.exceptions.RayError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, ScannerError):
                raise cause from None
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise WorkerError(
                f"the {stage} stage failed after {TASK_RETRIES} retries ({exc.__class__.__name__}: {first[:200]}). "
                "A worker that keeps dying is often out of memory: try a smaller --batch-size, or fewer inputs per run"
            ) from exc

    def _map_model(self, table: pa.Table, cls: type, config: Any, device: str) -> Iterator[dict[str, np.ndarray]]:
        import ray.data

        plan = plan_stage(self.resources, device)
        # a dead actor is restarted and its batch retried, a bounded number of times: Ray Data's default
        # (unbounded) would loop forever on a batch that kills its worker every time, e.g. by running out of memory
        with warnings.catch_warnings():  # Ray 2.60 deprecates these extra args but has no named parameter yet
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = ray.data.from_arrow(table).map_batches(
                cls, fn_constructor_kwargs={"config": config, "torch_threads": plan.torch_threads},
                compute=ray.data.ActorPoolStrategy(size=plan.actors), num_gpus=plan.num_gpus, num_cpus=plan.num_cpus,
                batch_size=plan.rows_per_call, batch_format="numpy",
                max_restarts=ACTOR_RESTARTS, max_task_retries=TASK_RETRIES,
            )
        with self._worker_faults(cls.__name__):
            yield from ds.iter_batches(batch_format="numpy", batch_size=None, prefetch_batches=1)

    def embed(self, texts: Sequence[str], config: EmbedConfig, on_chunk: ChunkCallback | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        # sorted by length, so each actor batch is of similar lengths and pads little
        order = _length_order(len(t) for t in texts)
        table = pa.table({"row": order, "text": [texts[i] for i in order]})
        out: np.ndarray | None = None
        for batch in self._map_model(table, SentenceEmbedder, config, config.device):
            vecs = np.asarray(batch["embedding"], dtype=np.float32)
            if out is None:
                out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
            out[batch["row"]] = vecs
            if on_chunk is not None:
                on_chunk(np.asarray(batch["row"]), vecs)
        assert out is not None
        return out

    def score(self, a: Sequence[str], b: Sequence[str], config: VerifyConfig) -> np.ndarray:
        out = np.full(len(a), np.nan, dtype=np.float32)
        if not len(a):
            return out
        order = _length_order(len(x) + len(y) for x, y in zip(a, b, strict=True))
        table = pa.table({"row": order, "text_a": [a[i] for i in order], "text_b": [b[i] for i in order]})
        for batch in self._map_model(table, CrossEncoderScorer, config, config.device):
            out[batch["row"]] = batch["score"]
        return out

    def close(self) -> None:
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns_ray = False


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """``env`` set in this process's environment for the block, then the environment as it was."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def connect_ray(config: EngineConfig, local_env: Mapping[str, str] | None = None) -> bool:
    """Join the cluster of ``config`` (``--address`` or ``RAY_ADDRESS``), or start a local Ray; nothing when Ray is
    already initialised in this process. Returns whether this call started a local Ray (its caller then shuts it
    down). Workers get ``WORKER_ENV``: models load from local files only. ``local_env``: settings for every
    process of a local Ray that this call starts (they inherit this process's environment while it starts; a
    cluster joined keeps its own)."""
    import ray

    address = config.cluster_address()
    _quiet_ray_logs()
    runtime_env = {"env_vars": WORKER_ENV}
    if ray.is_initialized():
        return False
    if address:
        _check_reachable(address)
        try:
            ray.init(address=address, runtime_env=runtime_env, logging_level="WARNING", log_to_driver=False)
        except Exception as exc:  # ray raises ConnectionError, RuntimeError or its own types here
            raise ClusterError(
                f"cannot connect to the Ray cluster at {address!r} ({exc.__class__.__name__}). Check that "
                "`ray status --address ADDRESS` answers, or drop --address (and unset RAY_ADDRESS) to run locally."
            ) from exc
        return False
    with environment(local_env or {}):
        ray.init(num_cpus=config.num_cpus, include_dashboard=False, runtime_env=runtime_env,
                 logging_level="WARNING", log_to_driver=False)
    return True


def cluster_resources() -> dict[str, float]:
    """CPUs, GPUs and the rest of the connected Ray cluster (``connect_ray`` first)."""
    import ray

    return {k: float(v) for k, v in ray.cluster_resources().items()}


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes, when a ``host:port`` or ``ray://host:port`` address does not answer.

    ``ray.init`` keeps retrying an unreachable address for minutes; one TCP connection attempt settles it.
    Addresses without a port (such as ``auto``) are left to Ray.
    """
    import socket

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterError(
            f"the Ray cluster at {address!r} does not answer ({exc.strerror or exc.__class__.__name__}). Check the "
            "address with `ray status --address ADDRESS`, or drop --address (and unset RAY_ADDRESS) to run locally."
        ) from exc


def _quiet_ray_logs() -> None:
    import logging

    for name in ("ray", "ray.data", "ray._private", "ray._common"):
        logging.getLogger(name).setLevel(logging.ERROR)


_SHARED_LOCAL: LocalEngine | None = None


def shared_local_engine() -> LocalEngine:
    """One in-process engine for the small library calls (``check``, ``dedupe``), so models load once per process."""
    global _SHARED_LOCAL
    if _SHARED_LOCAL is None:
        _SHARED_LOCAL = LocalEngine()
    return _SHARED_LOCAL


def open_engine(config: EngineConfig, progress: bool = False, input_bytes: int = 0) -> Engine:
    """The engine for a run: Ray (local or cluster) or in-process, per ``config.use_ray``."""
    return RayEngine(config, progress=progress) if config.use_ray(input_bytes) else LocalEngine(progress=progress)
