"""The scanner as a service, without the server: requests in, answers out. ``scanner.serve`` puts it on Ray Serve.

    POST /check    {"text_a": A, "text_b": B}, or {"pairs": [{"text_a": A, "text_b": B}, ...]}
    POST /search   {"query": Q} or {"queries": [Q, ...]}; optional "top_k", "min_cosine", "threshold"
    POST /dedupe   {"sentences": [S, ...]}
    GET  /healthz  {"status": "ok"}
    GET  /info     the models (names, weight hashes), threshold, index size, batching and limits

Answers are what ``scan check``, ``scan search`` and ``scan dedupe`` compute, as JSON: ``Scanner`` calls
``pair_check.check_pairs``, ``reference.search`` and ``redundancy.dedupe``, and the decision is theirs
(``scanner.match``). Everything a caller sends is checked first by the pure functions ``route``, ``read_json``
and ``parse_*``: whatever is wrong raises ``RequestError`` with its 4xx status and a message that says what to
send instead, before any model runs. Nothing here imports Ray, so all of it runs in a test or a notebook.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import difflib
import json
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from scanner import __version__
from scanner.errors import ConfigError, RequestError
from scanner.pair_check import Check

#: (method, path) -> endpoint name
ROUTES = {("POST", "/check"): "check", ("POST", "/search"): "search", ("POST", "/dedupe"): "dedupe",
          ("GET", "/healthz"): "healthz", ("GET", "/info"): "info"}
CHECK_EXAMPLE = '{"text_a": "I flew to Paris.", "text_b": "I took a flight to Paris."}'
SEARCH_EXAMPLE = '{"queries": ["Bees dance to show where the flowers are."], "top_k": 10}'
DEDUPE_EXAMPLE = '{"sentences": ["Bees dance.", "The bees dance."]}'
#: the most neighbours a /search query may ask for
MAX_TOP_K = 100


@dataclass(frozen=True)
class ServeConfig:
    """Settings of ``scan serve``.

    Where: ``host``/``port`` of the HTTP endpoint (loopback by default), ``address`` of a Ray cluster to run on
    (None: ``RAY_ADDRESS``, else a local Ray started for the service). What: ``index`` (a reference index for
    /search; None: /search answers 404), the models and decision settings as in ``scan check``. How many:
    ``replicas`` (each loads the models once), ``max_batch_size`` (/check requests answered by one model call)
    and ``batch_wait_s`` (how long a batch waits for more callers: latency for a lone caller, throughput for
    many), ``torch_threads`` (per model process; None: 1 on CPU) and ``model_processes`` (per replica; None: as
    ``engine.plan_replicas`` sets them, one per ``torch_threads`` of the replica's share of the cores).
    Limits, each answered with a 4xx naming it: ``max_body_bytes`` (the request body), ``max_chars`` (one
    sentence), ``max_items`` (pairs, queries or sentences in one request).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    address: str | None = None
    index: str | None = None
    cross_encoder: str | None = None
    embedder: str | None = None
    threshold: float | None = None
    both_orders: bool = False
    swap_rule: bool = True
    device: str = "auto"
    replicas: int = 1
    max_batch_size: int = 32
    batch_wait_s: float = 0.01
    torch_threads: int | None = None
    model_processes: int | None = None
    max_body_bytes: int = 1_000_000
    max_chars: int = 10_000
    max_items: int = 1_000
    app_name: str = "scanner"

    def __post_init__(self) -> None:
        checks = [("--port", self.port, 0 <= self.port <= 65535, "an integer in [0, 65535]"),
                  ("--replicas", self.replicas, self.replicas >= 1, "at least 1"),
                  ("--max-batch-size", self.max_batch_size, self.max_batch_size >= 1, "at least 1"),
                  ("--batch-wait-ms", self.batch_wait_s * 1000, 0 <= self.batch_wait_s <= 10, "in [0, 10000]"),
                  ("--max-body-bytes", self.max_body_bytes, self.max_body_bytes >= 1, "at least 1"),
                  ("--max-chars", self.max_chars, self.max_chars >= 1, "at least 1"),
                  ("--max-items", self.max_items, self.max_items >= 1, "at least 1")]
        for option, value, ok, expected in checks:
            if not ok:
                raise ConfigError(f"{option} must be {expected}, got {value}")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"--threshold must be a probability in [0, 1], got {self.threshold}")

    def scan_config(self) -> Any:
        """The ``ScanConfig`` behind every answer; the embedding cache is off, so no caller's text is kept."""
        from scanner.scanning import ScanConfig

        return ScanConfig.from_options(embedder=self.embedder, cross_encoder=self.cross_encoder,
                                       threshold=self.threshold, device=self.device, both_orders=self.both_orders,
                                       swap_rule=self.swap_rule, cache=False)


@dataclass(frozen=True)
class SearchRequest:
    """A validated /search request."""

    queries: list[str]
    top_k: int = 10
    min_cosine: float = 0.5
    threshold: float | None = None


# --- requests ---------------------------------------------------------------------------------------------------

def route(method: str, path: str) -> str:
    """The endpoint of a request; 404 for an unknown path, 405 for a known path with the wrong method."""
    path = path.rstrip("/") or "/"
    if (method, path) in ROUTES:
        return ROUTES[(method, path)]
    methods = sorted(m for m, p in ROUTES if p == path)
    if methods:
        raise RequestError(405, f"{path} takes {' or '.join(methods)}, not {method}")
    listed = ", ".join(f"{m} {p}" for m, p in ROUTES)
    raise RequestError(404, f"no endpoint {path}: this service answers {listed}")


def too_large(size: int, limit: int) -> RequestError:
    return RequestError(413, f"the request body is {size:,} bytes, over this service's limit of {limit:,}: send fewer "
                        "or shorter sentences per request (the limit is scan serve --max-body-bytes)")


def read_json(body: bytes, max_bytes: int) -> dict[str, Any]:
    """The JSON object in a request body: 413 over ``max_bytes``, 400 unless it is UTF-8 JSON, 422 unless an object."""
    if len(body) > max_bytes:
        raise too_large(len(body), max_bytes)
    if not body.strip():
        raise RequestError(400, f"the request body is empty: send a JSON object, e.g. {CHECK_EXAMPLE}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"the request body is not UTF-8 (byte 0x{body[exc.start]:02x} at offset {exc.start}): "
                           "send JSON encoded as UTF-8") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(400, f"the request body is not valid JSON ({exc.msg} at line {exc.lineno}, column "
                           f"{exc.colno}): send a JSON object, e.g. {CHECK_EXAMPLE}") from None
    except (ValueError, RecursionError) as exc:  # an integer of over 4,300 digits; arrays nested thousands deep
        raise RequestError(400, f"the request body cannot be read as JSON ({exc.__class__.__name__}: "
                           f"{str(exc)[:120]}): send plain objects, strings and numbers") from None
    if not isinstance(obj, dict):
        raise RequestError(422, f"the request body is a JSON {json_kind(obj)}, not an object: send e.g. {CHECK_EXAMPLE}")
    return obj


def json_kind(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    for kind, types in (("null", type(None)), ("boolean", bool), ("number", (int, float)), ("string", str),
                        ("array", list), ("object", dict)):
        if isinstance(value, types):
            return kind
    return type(value).__name__


def only_fields(obj: dict[str, Any], allowed: Sequence[str], where: str) -> None:
    """422 for a field not in ``allowed``, with the nearest allowed name when it looks like a typo."""
    for key in obj:
        if key not in allowed:
            near = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise RequestError(422, f"unknown field {str(key)[:80]!r} in {where}{hint}: the fields are "
                               + ", ".join(allowed))


def sentence(value: Any, where: str, max_chars: int) -> str:
    """A non-empty sentence of at most ``max_chars`` characters that encodes as UTF-8, else 422."""
    if not isinstance(value, str):
        raise RequestError(422, f"{where} must be a string, got a JSON {json_kind(value)}")
    if not value.strip():
        raise RequestError(422, f"{where} is empty: send a sentence with some text in it")
    if len(value) > max_chars:
        raise RequestError(422, f"{where} has {len(value):,} characters, over this service's limit of {max_chars:,} "
                           "per sentence: send it sentence by sentence (the limit is scan serve --max-chars)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RequestError(422, f"{where} holds an unpaired surrogate (\\u{ord(value[exc.start]):04x} at character "
                           f"{exc.start}): send valid Unicode text") from None
    return value


def items(obj: dict[str, Any], field: str, where: str, max_items: int, example: str) -> list[Any]:
    """A non-empty JSON array of at most ``max_items`` items, else 422."""
    value = obj[field]
    if not isinstance(value, list):
        raise RequestError(422, f"{where}{field} must be an array, got a JSON {json_kind(value)}: send e.g. {example}")
    if not value:
        raise RequestError(422, f"{where}{field} is empty: send at least one item, e.g. {example}")
    if len(value) > max_items:
        raise RequestError(422, f"{field} has {len(value):,} items, over this service's limit of {max_items:,} per "
                           "request: split it over several requests (the limit is scan serve --max-items)")
    return value


def required(obj: dict[str, Any], fields: Sequence[str], where: str, example: str) -> None:
    for field in fields:
        if field not in obj:
            raise RequestError(422, f"missing field {field!r} in {where}: send e.g. {example}")


def number(obj: dict[str, Any], field: str, low: float, high: float, integer: bool = False) -> Any:
    """An optional number in [low, high] (None when absent or null), else 422."""
    value = obj.get(field)
    if value is None:
        return None
    kind_ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not kind_ok or not math.isfinite(value) or not low <= value <= high:
        what = "an integer" if integer else "a number"
        raise RequestError(422, f"{field} must be {what} in [{low:g}, {high:g}], got {json.dumps(value)[:40]}")
    return value


def parse_check(obj: dict[str, Any], config: ServeConfig) -> tuple[list[str], list[str], bool]:
    """/check: (first sentences, second sentences, whether one pair was sent rather than a list)."""
    if "pairs" in obj:
        only_fields(obj, ["pairs"], "the request")
        pairs = items(obj, "pairs", "", config.max_items, '{"pairs": [' + CHECK_EXAMPLE + "]}")
        a, b = [], []
        for i, pair in enumerate(pairs):
            where = f"pairs[{i}]"
            if not isinstance(pair, dict):
                raise RequestError(422, f"{where} must be an object, got a JSON {json_kind(pair)}: send e.g. {CHECK_EXAMPLE}")
            only_fields(pair, ["text_a", "text_b"], where)
            required(pair, ["text_a", "text_b"], where, CHECK_EXAMPLE)
            a.append(sentence(pair["text_a"], f"{where}.text_a", config.max_chars))
            b.append(sentence(pair["text_b"], f"{where}.text_b", config.max_chars))
        return a, b, False
    only_fields(obj, ["text_a", "text_b", "pairs"], "the request")
    required(obj, ["text_a", "text_b"], "the request (or send a list as \"pairs\")", CHECK_EXAMPLE)
    return ([sentence(obj["text_a"], "text_a", config.max_chars)],
            [sentence(obj["text_b"], "text_b", config.max_chars)], True)


def parse_search(obj: dict[str, Any], config: ServeConfig) -> SearchRequest:
    """/search: the queries and the options of ``reference.search``."""
    only_fields(obj, ["query", "queries", "top_k", "min_cosine", "threshold"], "the request")
    if ("query" in obj) == ("queries" in obj):
        raise RequestError(422, f"send either \"query\" (one sentence) or \"queries\" (a list), e.g. {SEARCH_EXAMPLE}")
    if "query" in obj:
        queries = [sentence(obj["query"], "query", config.max_chars)]
    else:
        listed = items(obj, "queries", "", config.max_items, SEARCH_EXAMPLE)
        queries = [sentence(q, f"queries[{i}]", config.max_chars) for i, q in enumerate(listed)]
    top_k = number(obj, "top_k", 1, MAX_TOP_K, integer=True)
    min_cosine = number(obj, "min_cosine", -1, 1)
    return SearchRequest(queries, top_k=10 if top_k is None else top_k,
                         min_cosine=0.5 if min_cosine is None else float(min_cosine),
                         threshold=number(obj, "threshold", 0, 1))


def parse_dedupe(obj: dict[str, Any], config: ServeConfig) -> list[str]:
    """/dedupe: the sentences, in reading order."""
    only_fields(obj, ["sentences"], "the request")
    required(obj, ["sentences"], "the request", DEDUPE_EXAMPLE)
    listed = items(obj, "sentences", "", config.max_items, DEDUPE_EXAMPLE)
    return [sentence(s, f"sentences[{i}]", config.max_chars) for i, s in enumerate(listed)]


# --- answers ----------------------------------------------------------------------------------------------------

def check_answer(checks: list[Check], single: bool) -> dict[str, Any]:
    """/check's answer: ``scan check``'s verdict (score, paraphrase, match, threshold, note), or a list of them."""
    rows = [dataclasses.asdict(c) for c in checks]
    return rows[0] if single else {"results": rows}


def search_answer(hits: pa.Table) -> dict[str, Any]:
    """/search's answer: ``scan search``'s rows (query, rank, doc, index, start, end, text, cosine, score, match,
    reason), best first per query, with the threshold and options used."""
    meta = json.loads(hits.schema.metadata[b"scanner"])
    rows = hits.to_pylist()
    for row in rows:
        row["cosine"], row["score"] = round(row["cosine"], 6), round(row["score"], 6)
    return {"hits": rows, "threshold": meta["threshold"], "top_k": meta["top_k"], "min_cosine": meta["min_cosine"]}


def dedupe_answer(result: Any) -> dict[str, Any]:
    """/dedupe's answer: the kept sentences, and each removed one with the kept sentence it repeats (as
    ``scan dedupe --show`` marks them)."""
    removed = sorted(({"index": r.index, "text": r.text, "match": r.match, "score": round(r.score, 6),
                       "kept_index": g.index, "kept_text": g.text} for g in result.groups for r in g.removed),
                     key=lambda r: r["index"])
    return {"kept": result.kept, "removed": removed, "threshold": result.threshold}


def model_name(name: str) -> str:
    """A model as /info names it: the folder's name, never its path on the server."""
    from scanner.modelfiles import looks_like_path

    return Path(name).name if looks_like_path(name) else name


# --- the models -------------------------------------------------------------------------------------------------

class CheckQueue:
    """/check requests on their way to the model: free model processes share what is waiting, each call at most
    ``max_requests`` requests.

    ``submit`` takes a group of requests (the callers that the HTTP front gathered) and returns at once, with a
    future per request. Up to ``concurrent`` calls run at once (one per model process). What is waiting when
    processes are free is shared between them (a group of 32 on two free processes: two calls of 16 side by side,
    not one call of 32 while the other process idles); groups that arrive while every process is busy wait here,
    and the next process to be free scores all of them together: under load every call is as large as the load
    allows, and no timer splits the waiting callers into small calls (which cost up to 1.3x the CPU per pair).
    ``run`` carries a call to a model thread (the event loop stays free); ``score`` is ``Scanner.check``.
    Requests whose caller went away are still scored (they are in a call already) but not answered.
    """

    def __init__(self, score: Callable[[list[str], list[str]], Sequence[Check]],
                 run: Callable[[Callable[[], Sequence[Check]]], Awaitable[Sequence[Check]]], max_requests: int,
                 concurrent: int = 1) -> None:
        if max_requests < 1 or concurrent < 1:
            raise ValueError(f"max_requests and concurrent must be at least 1, got {max_requests} and {concurrent}")
        self.score, self.run, self.max_requests, self.concurrent = score, run, max_requests, concurrent
        self.waiting: collections.deque[tuple[list[str], list[str], asyncio.Future[list[Check]]]] = collections.deque()
        #: the tasks feeding model calls (at most ``concurrent``; each ends when nothing is left waiting)
        self.workers: set[asyncio.Task[None]] = set()
        #: how many of them are in a model call now (the others are about to take their share of what waits)
        self.in_call = 0
        #: requests answered, and the model calls that answered them (their ratio: the batching achieved)
        self.requests = self.calls = 0
        #: seconds spent in model calls (against the wall time: how busy the model was kept)
        self.busy_s = 0.0

    def submit(self, group: Sequence[tuple[list[str], list[str]]]) -> list[asyncio.Future[list[Check]]]:
        loop = asyncio.get_running_loop()
        futures = []
        for a, b in group:
            futures.append(loop.create_future())
            self.waiting.append((a, b, futures[-1]))
        while len(self.workers) < min(self.concurrent, self.in_call + len(self.waiting)):
            worker = loop.create_task(self._work())
            self.workers.add(worker)
            worker.add_done_callback(self.workers.discard)
        return futures

    async def _work(self) -> None:
        while self.waiting:
            free = len(self.workers) - self.in_call  # this worker and the others not in a call
            share = -(-len(self.waiting) // free)  # what waits, shared between the free processes (rounded up)
            take = [self.waiting.popleft() for _ in range(min(self.max_requests, share))]
            self.in_call += 1
            a = [x for part, _, _ in take for x in part]
            b = [x for _, part, _ in take for x in part]
            started = time.perf_counter()
            try:
                checks = await self.run(lambda a=a, b=b: self.score(a, b))
            except Exception as exc:  # this call's requests fail with it; the queue keeps serving
                for _, _, future in take:
                    if not future.done():
                        future.set_exception(exc)
                continue
            finally:
                self.in_call -= 1
                self.busy_s += time.perf_counter() - started
            self.requests += len(take)
            self.calls += 1
            start = 0
            for part, _, future in take:
                if not future.done():
                    future.set_result(list(checks[start : start + len(part)]))
                start += len(part)


class Scanner:
    """The models of one replica, loaded once when it is built, and the calls the endpoints make.

    Not thread-safe (the tokenizer is not): one call at a time (``scanner.serve`` builds it in the replica's
    ``scanner.model_process``, which takes one call at a time)."""

    def __init__(self, config: ServeConfig, engine: Any = None) -> None:
        from scanner.engine import LocalEngine
        from scanner.index import ReferenceIndex

        self.config = config
        self.scan = config.scan_config()
        self.engine = engine or LocalEngine()
        if config.index is not None:
            ReferenceIndex(config.index).check_embedder(self.scan.embed.model)
        # load both models now rather than on a caller's first request
        self.check(["The models load once."], ["Loading the models once."])
        self.engine.embed(["The models load once."], self.scan.embed)

    def check(self, a: Sequence[str], b: Sequence[str]) -> list[Check]:
        from scanner.pair_check import check_pairs, verdicts

        v = self.scan.verify
        return verdicts(check_pairs(a, b, threshold=v.threshold, cross_encoder=v.model, device=v.device,
                                    engine=self.engine, both_orders=v.both_orders, swap_rule=v.swap_rule))

    def search(self, request: SearchRequest) -> pa.Table:
        from scanner.reference import search

        if self.config.index is None:
            raise RequestError(404, "this service has no reference index to search: start it with "
                               "scan serve --index DIR (an index built by scan index)")
        return search(request.queries, self.config.index, threshold=request.threshold, top_k=request.top_k,
                      min_cosine=request.min_cosine, config=self.scan, engine=self.engine)

    def dedupe(self, sentences: Sequence[str]) -> Any:
        from scanner.redundancy import dedupe

        v = self.scan.verify
        return dedupe(list(sentences), v.threshold, cross_encoder=v.model, embedder=self.scan.embed.model,
                      device=v.device, engine=self.engine, both_orders=v.both_orders, swap_rule=v.swap_rule,
                      cache=False)


def service_info(config: ServeConfig) -> dict[str, Any]:
    """/info: what answers (models by name and weight hash, the threshold, the index's size) and the limits."""
    from scanner.embed import resolve_embedder
    from scanner.index import ReferenceIndex
    from scanner.modelfiles import model_fingerprint

    scan = config.scan_config()
    v, e, c = scan.verify, scan.embed, config
    index = None
    if c.index is not None:
        ref = ReferenceIndex(c.index)  # read again: the index may have been updated since the start
        index = {"documents": len(ref.documents), "sentences": ref.sentences, "updated": ref.manifest["updated"]}
    return {
        "service": "paraphrase-scanner", "version": __version__,
        "cross_encoder": {"name": model_name(v.model), "sha256": model_fingerprint(v.model)},
        "embedder": {"name": model_name(e.model), "sha256": model_fingerprint(resolve_embedder(e.model))},
        "threshold": v.resolved_threshold(), "both_orders": v.both_orders, "swap_rule": v.swap_rule,
        "index": index,
        "batching": {"max_batch_size": c.max_batch_size, "batch_wait_s": c.batch_wait_s,
                     "model_processes": c.model_processes, "torch_threads": c.torch_threads},
        "limits": {"max_body_bytes": c.max_body_bytes, "max_chars": c.max_chars, "max_items": c.max_items},
    }
