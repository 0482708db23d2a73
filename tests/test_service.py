"""The service without the server: request validation (pure functions, no model) and the answers of a
``Scanner`` built on the tiny verifier and the hashing embedder, compared with ``check``, ``search`` and
``dedupe`` themselves. ``BAD_REQUESTS`` is replayed over HTTP against a running service in tests/test_serve.py."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from scanner.errors import ConfigError, RequestError
from scanner.service import (
    CheckQueue,
    ServeConfig,
    parse_check,
    parse_dedupe,
    parse_search,
    read_json,
    route,
    service_info,
)

LIMITS = ServeConfig(max_body_bytes=1_000_000, max_chars=10_000, max_items=1_000)
PAIR = {"text_a": "I took a flight from New York to Paris.", "text_b": "I flew to Paris from New York."}


def body(obj: object) -> bytes:
    return json.dumps(obj).encode()


#: (what, method, path, body, status, words the message must hold): every one must be refused with a 4xx that
#: says what to fix, by the pure functions here and by the running service (tests/test_serve.py)
BAD_REQUESTS = [
    ("malformed JSON", "POST", "/check", b'{"text_a": "a", "text_b": ', 400, "not valid JSON"),
    ("not JSON at all", "POST", "/check", b"text_a=a&text_b=b", 400, "not valid JSON"),
    ("empty body", "POST", "/check", b"", 400, "body is empty"),
    ("non-UTF-8 bytes", "POST", "/check", b'{"text_a": "caf\xe9", "text_b": "cafe"}', 400, "not UTF-8"),
    ("a JSON array", "POST", "/check", body([PAIR]), 422, "not an object"),
    ("missing field", "POST", "/check", body({"text_a": "I flew to Paris."}), 422, "missing field 'text_b'"),
    ("unknown field", "POST", "/check", body({**PAIR, "threshhold": 0.5}), 422, "unknown field 'threshhold'"),
    ("misspelt field", "POST", "/check", body({"text_a": "A b c.", "text_B": "A b c."}), 422, "did you mean 'text_b'"),
    ("empty string", "POST", "/check", body({"text_a": "", "text_b": "I flew."}), 422, "text_a is empty"),
    ("blank string", "POST", "/check", body({"text_a": "I flew.", "text_b": " \n\t"}), 422, "text_b is empty"),
    ("number for a sentence", "POST", "/check", body({"text_a": 1, "text_b": "b"}), 422, "must be a string"),
    ("100,000-character sentence", "POST", "/check", body({"text_a": "word " * 20_000, "text_b": "word"}), 422,
     "--max-chars"),
    ("unpaired surrogate", "POST", "/check", b'{"text_a": "a \\ud800 b", "text_b": "a b"}', 422, "surrogate"),
    ("10 MB body", "POST", "/check", body({"pairs": [PAIR] * 130_000}), 413, "--max-body-bytes"),
    ("empty pair list", "POST", "/check", body({"pairs": []}), 422, "pairs is empty"),
    ("pair not an object", "POST", "/check", body({"pairs": [["a", "b"]]}), 422, "pairs[0] must be an object"),
    ("bad pair in a list", "POST", "/check", body({"pairs": [PAIR, {"text_a": "x"}]}), 422, "in pairs[1]"),
    ("too many pairs", "POST", "/check", body({"pairs": [PAIR] * 1_001}), 422, "--max-items"),
    ("pairs and a pair", "POST", "/check", body({"pairs": [PAIR], "text_a": "x"}), 422, "unknown field 'text_a'"),
    ("nested 100,000 deep", "POST", "/check", b"[" * 100_000 + b"]" * 100_000, 400, "cannot be read as JSON"),
    ("query and queries", "POST", "/search", body({"query": "a", "queries": ["b"]}), 422, "either \"query\""),
    ("top_k of 0", "POST", "/search", body({"query": "Bees dance.", "top_k": 0}), 422, "top_k must be an integer"),
    ("top_k true", "POST", "/search", body({"query": "Bees dance.", "top_k": True}), 422, "top_k must be an integer"),
    ("threshold 2", "POST", "/search", body({"query": "Bees dance.", "threshold": 2}), 422, "threshold must be"),
    ("dedupe of a string", "POST", "/dedupe", body({"sentences": "Bees dance."}), 422, "must be an array"),
    ("dedupe with an empty sentence", "POST", "/dedupe", body({"sentences": ["Bees dance.", ""]}), 422,
     "sentences[1] is empty"),
    ("unknown path", "POST", "/chek", body(PAIR), 404, "POST /check"),
    ("wrong method", "GET", "/check", b"", 405, "/check takes POST"),
]


def answer(method: str, path: str, raw: bytes, config: ServeConfig = LIMITS) -> object:
    """What the service's validation makes of a request (a RequestError for a bad one)."""
    endpoint = route(method, path)
    if endpoint in ("healthz", "info"):
        return endpoint
    parse = {"check": parse_check, "search": parse_search, "dedupe": parse_dedupe}[endpoint]
    return parse(read_json(raw, config.max_body_bytes), config)


@pytest.mark.parametrize(("what", "method", "path", "raw", "status", "words"), BAD_REQUESTS,
                         ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_get_a_4xx_that_says_what_to_fix(what, method, path, raw, status, words):
    with pytest.raises(RequestError) as caught:
        answer(method, path, raw)
    assert caught.value.status == status
    assert words in str(caught.value)
    assert len(str(caught.value)) < 400  # a 100,000-character input is never echoed back


def test_good_requests_are_parsed():
    assert answer("POST", "/check", body(PAIR)) == ([PAIR["text_a"]], [PAIR["text_b"]], True)
    assert answer("POST", "/check/", body({"pairs": [PAIR, PAIR]})) == ([PAIR["text_a"]] * 2, [PAIR["text_b"]] * 2, False)
    got = answer("POST", "/search", body({"queries": ["Bees dance."], "top_k": 3, "min_cosine": 0.2, "threshold": None}))
    assert (got.queries, got.top_k, got.min_cosine, got.threshold) == (["Bees dance."], 3, 0.2, None)
    assert answer("POST", "/search", body({"query": "Bees dance."})).top_k == 10
    assert answer("POST", "/dedupe", body({"sentences": ["A.", "B."]})) == ["A.", "B."]
    assert answer("GET", "/healthz", b"") == "healthz" and answer("GET", "/info", b"") == "info"
    # the limits are the config's: one character and one byte less is refused
    long_pair = body({"text_a": "x" * 10_000, "text_b": "y"})
    assert answer("POST", "/check", long_pair)[0] == ["x" * 10_000]
    with pytest.raises(RequestError, match="9,999"):
        answer("POST", "/check", long_pair, ServeConfig(max_chars=9_999))
    with pytest.raises(RequestError, match="over this service's limit") as caught:
        answer("POST", "/check", long_pair, ServeConfig(max_body_bytes=len(long_pair) - 1))
    assert caught.value.status == 413


@pytest.mark.parametrize(("option", "value"), [("port", 70_000), ("replicas", 0), ("max_batch_size", 0),
                                               ("batch_wait_s", -1.0), ("max_body_bytes", 0), ("threshold", 1.5)])
def test_config_values_out_of_range_are_refused(option, value):
    with pytest.raises(ConfigError, match="must be"):
        ServeConfig(**{option: value})


# --- the model queue (pure scheduling: the scorer is a stand-in that records its calls) ----------------------------

def run_queue(groups: list[list[tuple[list[str], list[str]]]], max_requests: int, fail_on: str = "") -> tuple[
        list[list[object]], list[int], tuple[int, int], float]:
    """Submit ``groups`` to a CheckQueue, the first alone and the rest while the model is busy with it: the
    answers per group (check results or an exception each), the requests of each model call, the queue's
    count of requests answered and calls that answered them, and its seconds in model calls."""
    started, release, calls = threading.Event(), threading.Event(), []

    def score(a: list[str], b: list[str]) -> list[str]:
        calls.append(len(a))
        started.set()
        release.wait(5)
        time.sleep(0.02)
        if fail_on in a:
            raise RuntimeError("model failed")
        return [f"{x}|{y}" for x, y in zip(a, b, strict=True)]

    async def main() -> tuple[list[list[object]], tuple[int, int], float]:
        pool = ThreadPoolExecutor(1)
        loop = asyncio.get_running_loop()
        queue = CheckQueue(score, lambda call: loop.run_in_executor(pool, call), max_requests)
        futures = [queue.submit(groups[0])]
        await loop.run_in_executor(None, started.wait, 5)  # the model is busy with the first group
        futures += [queue.submit(g) for g in groups[1:]]
        release.set()
        out = [await asyncio.gather(*f, return_exceptions=True) for f in futures]
        return out, (queue.requests, queue.calls), queue.busy_s

    answers, counts, busy_s = asyncio.run(main())
    return answers, calls, counts, busy_s


def test_groups_that_wait_while_the_model_is_busy_share_its_next_call():
    one = [(["a1"], ["b1"])]
    later = [[(["a2", "a3"], ["b2", "b3"])], [(["a4"], ["b4"]), (["a5"], ["b5"])], [(["a6"], ["b6"])]]
    answers, calls, counts, busy_s = run_queue([one, *later], max_requests=8)
    assert calls == [1, 5] and counts == (5, 2)  # pairs per call; 5 requests in 2 calls
    assert busy_s >= 0.04  # each call held the model at least 20 ms
    assert answers == [[["a1|b1"]], [["a2|b2", "a3|b3"]], [["a4|b4"], ["a5|b5"]], [["a6|b6"]]]


def test_a_model_call_takes_at_most_max_requests():
    groups = [[([f"a{i}"], [f"b{i}"])] for i in range(7)]
    answers, calls, _, _ = run_queue(groups, max_requests=4)
    assert calls == [1, 4, 2] and [a[0] for a in answers] == [[f"a{i}|b{i}"] for i in range(7)]


def test_a_failed_model_call_fails_only_its_requests_and_the_queue_goes_on():
    answers, calls, counts, busy_s = run_queue([[(["a1"], ["b1"])], [(["boom"], ["b2"])], [(["a3"], ["b3"])]],
                                               max_requests=1, fail_on="boom")
    assert answers[0] == [["a1|b1"]] and answers[2] == [["a3|b3"]] and isinstance(answers[1][0], RuntimeError)
    assert calls == [1, 1, 1] and counts == (2, 2)
    assert busy_s >= 0.06  # the failed call's time counts too


def test_two_free_model_processes_share_a_group_and_later_groups_wait_for_a_free_one():
    started = [threading.Event() for _ in range(3)]
    release = [threading.Event() for _ in range(2)]
    calls: list[list[str]] = []
    lock = threading.Lock()

    def score(a: list[str], b: list[str]) -> list[str]:
        with lock:
            calls.append(list(a))
            n = len(calls)
        started[min(n, 3) - 1].set()
        if n <= 2:
            release[0 if "a1" in a else 1].wait(5)  # the first two calls hold both processes until released
        return [f"{x}|{y}" for x, y in zip(a, b, strict=True)]

    async def main() -> list[list[object]]:
        pool = ThreadPoolExecutor(2)
        loop = asyncio.get_running_loop()
        queue = CheckQueue(score, lambda call: loop.run_in_executor(pool, call), max_requests=8, concurrent=2)
        # one group of three requests, both processes free: shared between them, two calls side by side
        futures = [queue.submit([(["a1"], ["b1"]), (["a2"], ["b2"]), (["a3"], ["b3"])])]
        for event in started[:2]:
            assert await loop.run_in_executor(None, event.wait, 5), "the group was not shared between the processes"
        futures += [queue.submit([(["a4"], ["b4"])]), queue.submit([(["a5"], ["b5"])])]
        await asyncio.sleep(0.05)
        assert not started[2].is_set() and len(queue.workers) == 2  # both processes are busy: the rest wait
        release[0].set()  # the first process is free again: it takes everything waiting, the other is still busy
        assert await loop.run_in_executor(None, started[2].wait, 5)
        release[1].set()
        out = [await asyncio.gather(*f) for f in futures]
        assert (queue.requests, queue.calls) == (5, 3)
        return out

    answers = asyncio.run(main())
    assert sorted(calls[:2]) == [["a1", "a2"], ["a3"]] and calls[2] == ["a4", "a5"]
    assert answers == [[["a1|b1"], ["a2|b2"], ["a3|b3"]], [["a4|b4"]], [["a5|b5"]]]


# --- the answers, with real (tiny) models -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scanner(tiny_verifier, hashing_index):
    from scanner.service import Scanner

    return Scanner(ServeConfig(cross_encoder=str(tiny_verifier), embedder="hashing", index=str(hashing_index)))


VOLCANO = "Volcanoes form where molten rock from deep inside the Earth rises to the surface."


def test_check_answers_as_scan_check(scanner, tiny_verifier):
    from scanner.pair_check import check
    from scanner.service import check_answer

    a = [PAIR["text_a"], "The cat sat on the mat.", VOLCANO]
    b = [PAIR["text_b"], "the  cat sat on the mat.", "Molten rock rises to the surface where volcanoes form."]
    got = check_answer(scanner.check(a, b), single=False)["results"]
    for x, y, row in zip(a, b, got, strict=True):
        expected = check(x, y, cross_encoder=str(tiny_verifier))
        assert set(row) == {"score", "paraphrase", "match", "threshold", "note"}
        assert row["match"] == expected.match and row["threshold"] == expected.threshold == 0.5
        assert row["score"] == pytest.approx(expected.score, abs=1e-5)
    assert got[1]["match"] == "exact" and got[1]["score"] == 1.0
    assert check_answer(scanner.check(a[:1], b[:1]), single=True) == got[0]


def test_search_answers_as_scan_search(scanner, hashing_index, tiny_verifier):
    from scanner.reference import search
    from scanner.service import SearchRequest, search_answer

    request = SearchRequest([VOLCANO.lower(), "Bees dance to show the others where the flowers are."], top_k=5,
                            min_cosine=0.2, threshold=0.0)
    got = search_answer(scanner.search(request))
    expected = search(request.queries, hashing_index, threshold=0.0, top_k=5, min_cosine=0.2, embedder="hashing",
                      cross_encoder=str(tiny_verifier), engine="local").to_pylist()
    assert [(h["query"], h["rank"], h["doc"], h["index"], h["match"]) for h in got["hits"]] == \
        [(h["query"], h["rank"], h["doc"], h["index"], h["match"]) for h in expected]
    assert got["hits"][0]["match"] == "exact" and got["hits"][0]["text"] == VOLCANO
    assert (got["threshold"], got["top_k"], got["min_cosine"]) == (0.0, 5, 0.2)
    assert set(got["hits"][0]) == {"query", "rank", "doc", "index", "start", "end", "text", "cosine", "score",
                                   "match", "reason"}


def test_dedupe_answers_as_scan_dedupe(scanner, tiny_verifier):
    from scanner.redundancy import dedupe
    from scanner.service import dedupe_answer

    sentences = [VOLCANO, "Bees dance to show the others where the flowers are.", VOLCANO.upper(), VOLCANO]
    got = dedupe_answer(scanner.dedupe(sentences))
    expected = dedupe(sentences, cross_encoder=str(tiny_verifier), embedder="hashing", cache=False)
    assert got["kept"] == expected.kept == sentences[:2]
    assert [(r["index"], r["kept_index"], r["match"]) for r in got["removed"]] == [(2, 0, "exact"), (3, 0, "exact")]


def test_info_names_the_models_by_weight_hash_and_sizes_the_index(scanner, tiny_verifier):
    from scanner.modelfiles import model_fingerprint

    info = service_info(scanner.config)
    assert info["cross_encoder"] == {"name": tiny_verifier.name, "sha256": model_fingerprint(str(tiny_verifier))}
    assert info["embedder"] == {"name": "hashing", "sha256": "hashing-v1"}
    assert info["index"]["documents"] == 3 and info["index"]["sentences"] == 24
    assert info["threshold"] == 0.5 and info["limits"]["max_chars"] == 10_000
    assert "/" not in json.dumps(info["cross_encoder"])  # no server paths


def test_search_without_an_index_is_a_404_that_says_how_to_add_one(tiny_verifier):
    from scanner.service import Scanner, SearchRequest

    bare = Scanner(ServeConfig(cross_encoder=str(tiny_verifier), embedder="hashing"))
    with pytest.raises(RequestError, match="--index DIR") as caught:
        bare.search(SearchRequest(["Bees dance."]))
    assert caught.value.status == 404
