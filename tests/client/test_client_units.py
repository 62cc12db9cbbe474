"""Pieces of the client on their own: circuit breaker, Retry-After, adapters' edge cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import openai
import pytest
from client_fakes import answer, cut

from registry.client import IncompleteStream, Usage, litellm_call
from registry.client.breaker import Breaker
from registry.client.retry import retry_after, retryable
from registry.definitions.policy import CircuitBreaker

SETTINGS = CircuitBreaker(failure_rate_pct=50, min_requests=4, cooldown_s=30)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_needs_min_requests_before_it_judges():
    breaker = Breaker("m", Clock())
    for _ in range(3):
        breaker.record(False, SETTINGS)
    assert breaker.state == "closed"
    breaker.record(True, SETTINGS)  # 3 of 4 failed: 75% >= 50%
    assert breaker.state == "closed"  # a success never opens it...
    breaker.record(False, SETTINGS)  # ...the next failure does (3 of the last 4)
    assert breaker.state == "open" and not breaker.allow(SETTINGS)


def test_below_the_failure_rate_the_breaker_stays_closed():
    breaker = Breaker("m", Clock())
    for ok in [True, False, True, True, True, False, True, True]:  # 1 in 4: 25%
        breaker.record(ok, SETTINGS)
    assert breaker.state == "closed"


def _opened(clock: Clock) -> Breaker:
    """A breaker that four failures in a row opened at `clock`'s time."""
    breaker = Breaker("m", clock)
    for _ in range(4):
        breaker.record(False, SETTINGS)
    return breaker


def test_after_the_cooldown_one_probe_goes_through_and_decides():
    clock = Clock()
    breaker = _opened(clock)
    clock.now += 29
    assert not breaker.allow(SETTINGS)
    clock.now += 1
    assert breaker.allow(SETTINGS)  # the probe
    assert not breaker.allow(SETTINGS)  # only one at a time
    breaker.record(False, SETTINGS)
    assert breaker.state == "open" and not breaker.allow(SETTINGS)  # a new cooldown

    clock.now += 30
    assert breaker.allow(SETTINGS)
    breaker.record(True, SETTINGS)
    assert breaker.state == "closed" and breaker.allow(SETTINGS)
    for _ in range(3):  # a fresh window: three failures are not enough to judge
        breaker.record(False, SETTINGS)
    assert breaker.state == "closed"


def test_a_probe_that_never_reports_frees_its_slot_after_a_cooldown():
    clock = Clock()
    breaker = _opened(clock)
    clock.now += 30
    assert breaker.allow(SETTINGS)
    clock.now += 10
    assert not breaker.allow(SETTINGS)
    clock.now += 20
    assert breaker.allow(SETTINGS)


def _status_error(status: int, headers: dict[str, str]) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://provider/v1/chat/completions")
    response = httpx.Response(status, headers=headers, request=request)
    return httpx.HTTPStatusError("failed", request=request, response=response)


def test_retry_after_reads_seconds_milliseconds_and_dates():
    assert retry_after(_status_error(429, {"Retry-After": "2"})) == 2.0
    assert retry_after(_status_error(429, {"retry-after-ms": "250"})) == 0.25
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= retry_after(_status_error(503, {"Retry-After": when})) <= 30
    assert retry_after(_status_error(429, {"Retry-After": "soon"})) is None
    assert retry_after(_status_error(500, {})) is None
    assert retry_after(RuntimeError("x")) is None


def test_which_failures_are_retried():
    assert retryable(_status_error(500, {})) and retryable(_status_error(429, {}))
    assert retryable(_status_error(408, {})) and retryable(TimeoutError())
    assert not retryable(_status_error(400, {})) and not retryable(_status_error(401, {}))
    assert not retryable(TypeError("call returned None"))


# litellm imports its provider modules lazily; one of them trips a pydantic UserWarning
@pytest.mark.filterwarnings("ignore:Item.*ReadOnly.*:UserWarning")
def test_litellm_adapter_against_the_fake_provider(provider):
    provider.script("fake-a", answer("via litellm"))
    call = litellm_call(api_base=provider.base_url, api_key="k", custom_llm_provider="openai")
    reply = call("fake-a", [{"role": "user", "content": "hi"}], {"temperature": 0}, 33, False, 5)
    assert reply.text == "via litellm" and reply.usage == Usage(11, 7)
    assert provider.requests[0].body["max_tokens"] == 33

    chunks = list(call("fake-a", [{"role": "user", "content": "hi"}], {}, 33, True, 5))
    assert "".join(c for c in chunks if isinstance(c, str)) == "via litellm"
    assert provider.requests[1].stream
    assert len(provider.requests) == 2  # the SDK's own retries are off


def test_the_openai_adapter_never_passes_a_cut_stream_for_a_whole_answer(provider, call):
    messages = [{"role": "user", "content": "hi"}]
    provider.script("fake-a", cut(after=1), cut(after=1, clean=True))
    dropped = call("fake-a", messages, {}, 10, True, 5)
    with pytest.raises(openai.APIConnectionError):
        list(dropped)  # the connection dropped mid-body
    ended = call("fake-a", messages, {}, 10, True, 5)
    assert next(ended) == "answer "
    with pytest.raises(IncompleteStream, match="without a finish reason"):
        next(ended)  # the body ended properly, but before the answer did
