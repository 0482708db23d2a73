"""A bounded load test of ``scan serve``'s /check on loopback, beside ``check_pairs`` in-process, in one run.

    python -m pipelines.load_test [--requests 1000] [--concurrency 1 8 32] [--repeats 3] [--replicas 1] [--out JSON]

The pairs are the first ``--requests`` pairs of PAWS-Wiki test (``shared/data``), one pair per request.
In order, in one process:

1. in-process, the ceiling: ``check_pairs`` on all the pairs in one call (length-sorted batches), and each
   pair alone (``check_pairs([a], [b])``: the model's own time for that pair); the ceiling is measured again
   after the service has stopped (step 4), and its median over both is the one the service is set against (this
   machine's speed drifts by 10-20% over the half hour of a run);
2. the service (``scanner.serve.start`` on 127.0.0.1, a free port): the same pairs as single-pair /check
   requests from ``c`` concurrent callers, for each ``c`` of ``--concurrency``: p50/p99 latency, pairs/s, the
   share of the wall time the model was busy and the pairs it answered per second of model time (``/info``);
   every answer is compared with the in-process verdict;
3. the same service without batching (``--max-batch-size 1``) at the highest concurrency: the batching gain;
4. the ceiling again.

Every loop is bounded: at most ``--requests`` requests per level, none started after ``--time-limit``
seconds, each abandoned after ``--request-timeout``. Only 127.0.0.1 is ever contacted.
Writes the measurements as JSON (``--out``) and prints the table of docs/serving.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.data import DEFAULT_DATA_DIR, paws_wiki

HOST = "127.0.0.1"  # the only address this script sends to
RESULTS = Path(__file__).resolve().parent / "results"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


@dataclass
class Level:
    """One load level's outcome: latencies (s) of the answered requests, failures by kind, wall time."""

    concurrency: int
    latencies: list[float] = field(default_factory=list)
    answers: dict[int, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    wall: float = 0.0
    per_pair_latency: dict[int, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        ok = len(self.latencies)
        return {"concurrency": self.concurrency, "answered": ok, "failures": self.failures,
                "wall_s": round(self.wall, 3), "pairs_per_s": round(ok / self.wall, 2) if self.wall else 0.0,
                "p50_ms": round(1000 * percentile(self.latencies, 50), 1),
                "p99_ms": round(1000 * percentile(self.latencies, 99), 1)}


async def load(url: str, pairs: list[tuple[str, str]], concurrency: int, time_limit: float,
               request_timeout: float) -> Level:
    """``len(pairs)`` single-pair /check requests from ``concurrency`` callers; none starts after ``time_limit``."""
    import aiohttp

    level, queue = Level(concurrency), list(range(len(pairs)))[::-1]
    deadline = time.perf_counter() + time_limit

    async def caller(session: aiohttp.ClientSession) -> None:
        while queue and time.perf_counter() < deadline:
            i = queue.pop()
            a, b = pairs[i]
            started = time.perf_counter()
            try:
                async with session.post(f"{url}/check", json={"text_a": a, "text_b": b}) as response:
                    got = await response.json()
                    if response.status != 200:
                        level.failures[str(response.status)] = level.failures.get(str(response.status), 0) + 1
                        continue
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                level.failures[exc.__class__.__name__] = level.failures.get(exc.__class__.__name__, 0) + 1
                continue
            took = time.perf_counter() - started
            level.latencies.append(took)
            level.per_pair_latency[i] = took
            level.answers[i] = got

    timeout = aiohttp.ClientTimeout(total=request_timeout)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(caller(session) for _ in range(concurrency)))
        level.wall = time.perf_counter() - started
    return level


def in_process(pairs: list[tuple[str, str]], repeats: int, alone: bool = True) -> dict[str, Any]:
    """``check_pairs`` on all pairs at once (seconds, ``repeats`` runs) and, with ``alone``, on each pair alone
    (seconds each)."""
    from scanner.engine import LocalEngine
    from scanner.pair_check import check_pairs, verdicts

    engine = LocalEngine()
    a, b = [x for x, _ in pairs], [y for _, y in pairs]
    check_pairs(a[:8], b[:8], engine=engine)  # load the model
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        table = check_pairs(a, b, engine=engine)
        runs.append(time.perf_counter() - started)
    alone_s = []
    for x, y in pairs if alone else []:
        started = time.perf_counter()
        check_pairs([x], [y], engine=engine)
        alone_s.append(time.perf_counter() - started)
    return {"verdicts": verdicts(table), "batch_runs_s": runs, "alone_s": alone_s}


def agreement(level: Level, expected: list[Any]) -> dict[str, Any]:
    """How many service answers carry the in-process label, and the largest score difference."""
    same = sum(level.answers[i]["match"] == expected[i].match for i in level.answers)
    diff = max((abs(level.answers[i]["score"] - expected[i].score) for i in level.answers), default=0.0)
    return {"same_match": same, "compared": len(level.answers), "max_score_diff": round(diff, 6)}


def model_seconds(url: str) -> tuple[float, int]:
    """The replica's seconds in /check model calls so far (summed over its model processes, which run calls side
    by side), and how many model processes it has (``GET /info``; one replica: the load test's default)."""
    import urllib.request

    with urllib.request.urlopen(f"{url}/info", timeout=10) as response:  # url is http://127.0.0.1:PORT
        batching = json.load(response)["batching"]
    return float(batching["check_model_seconds"]), int(batching.get("model_processes") or 1)


def measured_run(url: str, pairs: list[tuple[str, str]], c: int, args: argparse.Namespace) -> tuple[Level, dict[str, Any]]:
    """One load run and its summary, with how busy it kept the model processes: the share of their wall time
    spent in model calls, and the pairs answered per second of one process's model time."""
    before, processes = model_seconds(url)
    level = asyncio.run(load(url, pairs, c, args.time_limit, args.request_timeout))
    busy = model_seconds(url)[0] - before
    summary = level.summary()
    summary["model_processes"] = processes
    summary["model_busy_share"] = round(busy / (processes * level.wall), 3) if level.wall else 0.0
    summary["pairs_per_model_s"] = round(len(level.latencies) / busy, 2) if busy else 0.0
    return level, summary


def run_service(config: Any, pairs: list[tuple[str, str]], levels: list[int], repeats: int,
                args: argparse.Namespace, expected: list[Any]) -> dict[str, Any]:
    from scanner.serve import start

    out: dict[str, Any] = {"levels": {}}
    with start(config) as service:
        out["start_s"] = round(service.seconds_to_start, 1)
        asyncio.run(load(service.url, pairs[:32], 8, 60, args.request_timeout))  # warm the front and the models' replica
        for c in levels:
            runs, summaries = zip(*(measured_run(service.url, pairs, c, args) for _ in range(repeats)), strict=True)
            best = runs[int(np.argsort([s["pairs_per_s"] for s in summaries])[len(runs) // 2])]  # the median run
            out["levels"][c] = {"runs": list(summaries),
                                "median_pairs_per_s": statistics.median(s["pairs_per_s"] for s in summaries),
                                "median_p50_ms": statistics.median(s["p50_ms"] for s in summaries),
                                "median_p99_ms": statistics.median(s["p99_ms"] for s in summaries),
                                "median_model_busy_share": statistics.median(s["model_busy_share"] for s in summaries),
                                "median_pairs_per_model_s": statistics.median(s["pairs_per_model_s"] for s in summaries),
                                "agreement": agreement(best, expected), "_median_run": best}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="pairs, one per request, per load level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=3, help="runs per level (medians are reported)")
    parser.add_argument("--time-limit", type=float, default=300.0, help="no request starts later than this (s, per run)")
    parser.add_argument("--request-timeout", type=float, default=60.0)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-wait-ms", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads per model process (default: the "
                        "plan's: 1, and one process per core)")
    parser.add_argument("--replicas", type=int, default=1, help="model servers (each gets cores / replicas threads)")
    parser.add_argument("--no-unbatched", action="store_true", help="skip the run without batching")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, default=RESULTS / "load-test.json")
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= 100_000 or not all(1 <= c <= 256 for c in args.concurrency):
        parser.error("--requests must be in [1, 100000] and each --concurrency in [1, 256]")

    from scanner.service import ServeConfig

    pairs = [(p.a, p.b) for p in paws_wiki("test", args.data_dir)[: args.requests]]
    print(f"{len(pairs)} PAWS-Wiki test pairs; in-process first ...", flush=True)
    ceiling = in_process(pairs, args.repeats)
    expected = ceiling["verdicts"]
    alone = ceiling["alone_s"]
    from scanner.engine import EngineConfig, connect_ray
    from scanner.serve import LOCAL_RAY_ENV, shutdown

    port = free_port()
    config = ServeConfig(host=HOST, port=port, max_batch_size=args.max_batch_size,
                         batch_wait_s=args.batch_wait_ms / 1000, torch_threads=args.threads, replicas=args.replicas)
    # one local Ray and one Serve (one port) for both services, set up as scan serve sets up its own
    connect_ray(EngineConfig(engine="ray"), local_env=LOCAL_RAY_ENV)
    top, unbatched = max(args.concurrency), None
    try:
        print("service, batched ...", flush=True)
        batched = run_service(config, pairs, args.concurrency, args.repeats, args, expected)
        if not args.no_unbatched:
            print("service, unbatched ...", flush=True)
            config = ServeConfig(host=HOST, port=port, max_batch_size=1, batch_wait_s=0.0, torch_threads=args.threads,
                                 replicas=args.replicas)
            unbatched = run_service(config, pairs, [top], args.repeats, args, expected)
    finally:
        shutdown()
    print("in-process again ...", flush=True)
    after = in_process(pairs, args.repeats, alone=False)["batch_runs_s"]
    batch_s = statistics.median(ceiling["batch_runs_s"] + after)

    single = batched["levels"].get(1)
    ratios = []
    if single:
        run = single.pop("_median_run")
        ratios = [run.per_pair_latency[i] / alone[i] for i in run.per_pair_latency]
    for result in (batched, unbatched):
        for level in (result or {"levels": {}})["levels"].values():
            level.pop("_median_run", None)
    ceiling_rate = len(pairs) / batch_s
    result = {
        "pairs": len(pairs), "data": "PAWS-Wiki test, first pairs", "repeats": args.repeats,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {"max_batch_size": args.max_batch_size, "batch_wait_ms": args.batch_wait_ms, "threads": args.threads,
                     "replicas": args.replicas},
        "in_process": {"batch_runs_s": [round(s, 3) for s in ceiling["batch_runs_s"]],
                       "batch_runs_after_service_s": [round(s, 3) for s in after],
                       "pairs_per_s": round(ceiling_rate, 2),
                       "alone_p50_ms": round(1000 * percentile(alone, 50), 1),
                       "alone_p99_ms": round(1000 * percentile(alone, 99), 1)},
        "service": batched, "service_unbatched": unbatched,
        "targets": {
            "throughput_share_at_top_concurrency": round(batched["levels"][top]["median_pairs_per_s"] / ceiling_rate, 3),
            "p99_latency_over_model_p99_at_1": (round(single["median_p99_ms"] / (1000 * percentile(alone, 99)), 2)
                                                 if single else None),
            "per_pair_latency_ratio_p50_p99_at_1": ([round(percentile(ratios, 50), 2), round(percentile(ratios, 99), 2)]
                                                     if ratios else None),
            "batching_gain_at_top_concurrency": (round(batched["levels"][top]["median_pairs_per_s"]
                                                       / unbatched["levels"][top]["median_pairs_per_s"], 2)
                                                 if unbatched else None),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(table(result))
    print(f"written to {args.out}")


def table(result: dict[str, Any]) -> str:
    """The Markdown table of docs/serving.md."""
    ip = result["in_process"]
    lines = ["| run | concurrency | pairs/s | share of in-process | p50 ms | p99 ms | model busy | pairs per model s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|",
             f"| in-process `check_pairs`, all pairs in one call | - | {ip['pairs_per_s']:.1f} | 100% | - | - | | |",
             f"| in-process, one pair per call | 1 | {1000 / ip['alone_p50_ms']:.1f} | | {ip['alone_p50_ms']:.0f} | "
             f"{ip['alone_p99_ms']:.0f} | | |"]
    for name, key in (("service, batched", "service"), ("service, max-batch-size 1", "service_unbatched")):
        for c, level in ((result.get(key) or {}).get("levels") or {}).items():
            share = level["median_pairs_per_s"] / ip["pairs_per_s"]
            busy, per_model_s = level.get("median_model_busy_share"), level.get("median_pairs_per_model_s")
            lines.append(f"| {name} | {c} | {level['median_pairs_per_s']:.1f} | {share:.0%} | {level['median_p50_ms']:.0f} | "
                         f"{level['median_p99_ms']:.0f} | {'' if busy is None else f'{busy:.0%}'} | "
                         f"{'' if per_model_s is None else f'{per_model_s:.1f}'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
