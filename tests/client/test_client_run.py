"""`Registry.run` against a scripted OpenAI-compatible provider, through the real SDK."""

from __future__ import annotations

import time

import pytest
from client_fakes import FakeCollector, FakeProvider, answer, cut, fail, slow
from support.wait import wait_for

from registry.client import Backoff, Reply, Usage
from registry.errors import InputError

DEGRADED = "The assistant is unavailable right now."
QUESTION = {"question": "How do I reset my password?"}


def test_the_primary_answers_with_the_policy_applied(make_registry, provider, call):
    reg = make_registry()
    result = reg.run("demo.answer", QUESTION, call=call)

    assert (result.text, result.model, result.outcome) == ("answer from fake-a", "fake-a", "ok")
    assert not result.degraded
    assert result.version == 1 and len(result.content_hash) == 64
    assert result.usage == Usage(11, 7, estimated=False)
    assert [(a.model, a.number, a.outcome) for a in result.attempts] == [("fake-a", 1, "ok")]
    [request] = provider.requests
    body = request.body
    assert body["max_completion_tokens"] == 50  # max_output_tokens, always passed
    assert body["temperature"] == 0.2
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "Be kind and precise." in body["messages"][0]["content"]
    assert body["messages"][1]["content"] == QUESTION["question"]


def test_primary_fails_then_the_second_model_answers(make_registry, provider, call):
    provider.script("fake-a", fail(500))
    result = make_registry().run("demo.answer", QUESTION, call=call)

    assert (result.text, result.model, result.outcome) == (
        "answer from fake-b",
        "fake-b",
        "fallback",
    )
    assert provider.models_called() == ["fake-a", "fake-a", "fake-b"]  # max_retries: 1
    outcomes = [(a.model, a.outcome) for a in result.attempts]
    assert outcomes == [("fake-a", "error"), ("fake-a", "error"), ("fake-b", "ok")]
    assert result.attempts[0].error.startswith("HTTP 500")


def test_every_model_fails_gives_the_degraded_message_not_an_exception(
    make_registry, provider, call
):
    provider.script("fake-a", fail(503))
    provider.script("fake-b", fail(500))
    result = make_registry().run("demo.answer", QUESTION, call=call)

    assert result.degraded and result.outcome == "degraded"
    assert result.text == DEGRADED and result.model is None
    assert "fake-a: HTTP 503" in result.reason and "fake-b: HTTP 500" in result.reason
    assert provider.models_called() == ["fake-a", "fake-a", "fake-b"]


def test_a_call_that_raises_anything_is_a_failure_of_that_model(make_registry):
    def broken(model, messages, params, max_output_tokens, stream, timeout):
        if model == "fake-a":
            raise RuntimeError("the SDK exploded")
        return Reply("fine", Usage(3, 1))

    result = make_registry().run("demo.answer", QUESTION, call=broken)
    assert (result.text, result.outcome, result.usage) == ("fine", "fallback", Usage(3, 1))
    assert result.attempts[0].error == "RuntimeError: the SDK exploded"


def test_over_budget_never_reaches_the_provider(make_registry, provider, call):
    long_question = {"question": "Please explain every setting in detail. " * 120}
    result = make_registry().run("demo.answer", long_question, call=call)

    assert result.outcome == "rejected" and result.degraded
    assert result.text == DEGRADED
    assert "exceeds budget.max_request_tokens of 400" in result.reason
    assert result.attempts == ()
    assert provider.requests == []


def test_a_missing_input_is_the_callers_bug_and_raises(make_registry, provider, call):
    with pytest.raises(InputError, match="question"):
        make_registry().run("demo.answer", {}, call=call)
    assert provider.requests == []


@pytest.mark.slow
def test_too_slow_times_out_and_falls_back(make_registry, provider, call):
    provider.script("fake-a", slow(5))
    started = time.monotonic()
    result = make_registry().run("demo.answer", QUESTION, call=call)

    assert (result.model, result.outcome) == ("fake-b", "fallback")
    assert [a.outcome for a in result.attempts] == ["timeout", "timeout", "ok"]
    assert all(0.9 < a.latency_s < 2.0 for a in result.attempts[:2])  # timeout_s: 1.0
    assert time.monotonic() - started < 4


def test_retry_after_is_honoured_before_retrying(make_registry, provider, call):
    provider.script("fake-a", fail(429, retry_after="0.4"), answer("second try"))
    result = make_registry().run("demo.answer", QUESTION, call=call)

    assert (result.text, result.outcome) == ("second try", "ok")
    first, second = provider.requests
    assert second.at - first.at >= 0.4  # the backoff alone would be ~0.02 s
    assert [a.outcome for a in result.attempts] == ["error", "ok"]


def test_a_retry_after_longer_than_allowed_moves_on_to_the_next_model(
    make_registry, provider, call
):
    provider.script("fake-a", fail(429, retry_after="120"))
    reg = make_registry(backoff=Backoff(initial_s=0.02, max_s=0.1, max_retry_after_s=5))
    started = time.monotonic()
    result = reg.run("demo.answer", QUESTION, call=call)

    assert (result.model, result.outcome) == ("fake-b", "fallback")
    assert provider.models_called() == ["fake-a", "fake-b"]
    assert time.monotonic() - started < 2


def test_a_client_error_is_not_retried_on_the_same_model(make_registry, provider, call):
    provider.script("fake-a", fail(400))
    result = make_registry().run("demo.answer", QUESTION, call=call)
    assert provider.models_called() == ["fake-a", "fake-b"]
    assert result.outcome == "fallback"


def test_the_breaker_opens_and_the_next_call_goes_straight_to_the_fallback(
    make_registry, provider, call
):
    provider.script("fake-a", fail(500))
    reg = make_registry()
    # circuit_breaker: 50% of min_requests 4; fake-a fails twice per run (max_retries: 1)
    for _ in range(2):
        assert reg.run("demo.answer", QUESTION, call=call).model == "fake-b"
    assert reg.stats()["circuits"]["fake-a"] == "open"
    before = len(provider.requests)

    result = reg.run("demo.answer", QUESTION, call=call)
    assert (result.model, result.outcome) == ("fake-b", "fallback")
    assert provider.models_called()[before:] == ["fake-b"]  # fake-a was not even tried
    assert (result.attempts[0].model, result.attempts[0].outcome) == ("fake-a", "skipped")
    assert reg.stats()["circuit_opens"] == 1


def test_the_deadline_cuts_a_long_retry_chain(make_registry, provider, call):
    provider.script("fake-a", fail(500))
    provider.script("fake-b", fail(500))
    reg = make_registry(backoff=Backoff(initial_s=0.2, max_s=0.4, jitter_s=0.0))
    started = time.monotonic()
    # demo.patient: 11 tries per model allowed, deadline_s 1.2
    result = reg.run("demo.patient", QUESTION, call=call)
    took = time.monotonic() - started

    assert result.outcome == "timeout" and result.degraded and result.text == DEGRADED
    assert "deadline of 1.2 s passed" in result.reason
    assert took < 3.0  # without the deadline the chain would run for ~8 s
    # fake-a at 0 s, +0.2, +0.6; its next wait (0.4 s) does not fit, so fake-b gets the rest
    assert 3 <= len(provider.requests) <= 6  # never the 22 the chain allows
    assert provider.models_called()[:3] == ["fake-a"] * 3


def test_the_deadline_shortens_each_attempts_timeout(make_registry, provider, call):
    provider.script("fake-a", slow(5))
    provider.script("fake-b", slow(5))
    started = time.monotonic()
    result = make_registry().run("demo.patient", QUESTION, call=call)

    assert result.outcome == "timeout"
    assert time.monotonic() - started < 3.0  # not 1.0 s per attempt, 22 attempts


def test_missing_usage_records_the_estimate_never_zero(
    make_registry, provider, call, collector: FakeCollector
):
    provider.script("fake-a", answer("The answer has seven words in it.", usage=False))
    reg = make_registry(collector.url, usage_flush_s=0.05)
    result = reg.run("demo.answer", QUESTION, call=call)

    assert result.usage.estimated
    assert result.usage.input_tokens > 20 and 7 <= result.usage.output_tokens <= 10
    wait_for(lambda: collector.events, 10, "the usage event")
    [event] = collector.events
    assert event["input_tokens"] == result.usage.input_tokens
    assert event["estimated_input_tokens"] == result.usage.input_tokens
    assert event["output_tokens"] == result.usage.output_tokens > 0


def test_a_stream_without_a_finish_reason_is_not_a_complete_answer(make_registry, provider, call):
    provider.script("fake-a", cut(after=1))
    reg = make_registry()
    chunks = []
    with pytest.raises(Exception) as caught:
        chunks.extend(reg.stream("demo.answer", QUESTION, call=call))
    assert type(caught.value).__name__ == "StreamInterrupted"
    assert chunks == ["answer "]


def test_empty_answers_fall_back(make_registry, provider, call):
    provider.script("fake-a", answer(" "), answer(""))

    def blank_a(model, messages, params, max_output_tokens, stream, timeout):
        return (
            ""
            if model == "fake-a"
            else call(model, messages, params, max_output_tokens, stream, timeout)
        )

    result = make_registry().run("demo.answer", QUESTION, call=blank_a)
    assert (result.model, result.outcome) == ("fake-b", "fallback")
    assert result.attempts[0].error == "EmptyAnswer: the model returned an empty answer"


def test_a_provider_that_always_fails_never_stalls_other_features(make_registry, provider, call):
    provider.script("fake-a", fail(500))
    provider.script("fake-b", fail(500))
    reg = make_registry()
    results = [reg.run("demo.answer", QUESTION, call=call) for _ in range(4)]
    assert {r.outcome for r in results} == {"degraded"}
    # both circuits opened: later runs skip every model and degrade at once
    assert set(reg.stats()["circuits"].values()) == {"open"}
    sent = len(provider.requests)
    started = time.monotonic()
    result = reg.run("demo.answer", QUESTION, call=call)
    assert result.outcome == "degraded" and time.monotonic() - started < 3.0
    assert [a.outcome for a in result.attempts] == ["skipped", "skipped"]
    assert len(provider.requests) == sent  # no model was called


def test_fake_provider_scripts_are_per_model(provider: FakeProvider):
    provider.script("fake-a", fail(500), answer("ok"))
    assert provider._next("fake-a").status == 500
    assert provider._next("fake-a").text == "ok"
    assert provider._next("fake-a").text == "ok"  # the last behaviour repeats


def test_one_registry_serves_many_threads(make_registry):
    import threading

    def call(model, messages, params, max_output_tokens, stream, timeout):
        if model == "fake-a" and threading.get_ident() % 2:
            raise RuntimeError("flaky")
        return f"{model} ok"

    reg = make_registry()
    results = []

    def work():
        for i in range(20):
            results.append(reg.run("demo.answer", {"question": f"q{i}"}, call=call))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 120
    assert {r.outcome for r in results} <= {"ok", "fallback"}
