"""The answer cache on its own: keys, what is kept, concurrent identical requests."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from registry.client.result import Reply, Usage
from registry.evals.cache import AnswerCache, Trace

MESSAGES = [{"role": "user", "content": "hi"}]


def test_the_key_covers_model_messages_params_output_cap_and_sample():
    key = AnswerCache.key("m", MESSAGES, {"temperature": 0}, 10)
    assert key == AnswerCache.key("m", [dict(MESSAGES[0])], {"temperature": 0}, 10)
    assert key == AnswerCache.key("m", MESSAGES, {"temperature": 0}, 10, sample=0)
    for other in (
        AnswerCache.key("n", MESSAGES, {"temperature": 0}, 10),
        AnswerCache.key("m", [{"role": "user", "content": "hi!"}], {"temperature": 0}, 10),
        AnswerCache.key("m", MESSAGES, {"temperature": 1}, 10),
        AnswerCache.key("m", MESSAGES, {"temperature": 0}, 11),
        AnswerCache.key("m", MESSAGES, {"temperature": 0}, 10, sample=1),
    ):
        assert other != key


def test_answers_are_kept_failures_are_not(tmp_path):
    cache = AnswerCache(tmp_path / "answers")
    calls: list[str] = []

    def call(model, messages, params, limit, stream, timeout):
        calls.append(model)
        if model == "broken":
            raise RuntimeError("500")
        return Reply("hello", Usage(3, 1))

    trace = Trace()
    wrapped = cache.wrap(call, trace)
    assert wrapped("m", MESSAGES, {}, 5, False, 1.0) == Reply("hello", Usage(3, 1))
    assert wrapped("m", MESSAGES, {}, 5, False, 1.0) == Reply("hello", Usage(3, 1))
    for _ in range(2):
        with pytest.raises(RuntimeError):
            wrapped("broken", MESSAGES, {}, 5, False, 1.0)
    assert calls == ["m", "broken", "broken"]
    assert (trace.requests, trace.hits) == (3, 1)
    # kept on disk: a new cache over the same folder finds it; read=False asks again
    again = Trace()
    assert AnswerCache(tmp_path / "answers").wrap(call, again)("m", MESSAGES, {}, 5, False, 1.0)
    assert (again.requests, again.hits) == (0, 1)
    fresh = Trace()
    AnswerCache(tmp_path / "answers", read=False).wrap(call, fresh)("m", MESSAGES, {}, 5, False, 1)
    assert (fresh.requests, fresh.hits) == (1, 0)


def test_a_corrupt_entry_is_a_miss(tmp_path):
    cache = AnswerCache(tmp_path)
    key = AnswerCache.key("m", MESSAGES, {}, 5)
    path = tmp_path / key[:2] / f"{key}.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert cache.get(key) is None
    trace = Trace()
    assert cache.wrap(lambda *a: "fresh", trace)("m", MESSAGES, {}, 5, False, 1.0).text == "fresh"
    assert cache.get(key) is not None and trace.requests == 1


def test_identical_requests_at_once_make_one_request(tmp_path):
    cache = AnswerCache(tmp_path)
    started = threading.Event()
    release = threading.Event()
    count = 0

    def call(*args):
        nonlocal count
        count += 1
        started.set()
        assert release.wait(10)
        return "answer"

    traces = [Trace() for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        futures = [
            pool.submit(cache.wrap(call, t), "m", MESSAGES, {}, 5, False, 1.0) for t in traces
        ]
        assert started.wait(10)
        release.set()
        assert [f.result().text for f in futures] == ["answer"] * 4
    assert count == 1
    assert sum(t.requests for t in traces) == 1 and sum(t.hits for t in traces) == 3
