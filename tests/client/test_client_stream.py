"""Streams, sync and async: fallback only before the first chunk, never after it."""

from __future__ import annotations

import asyncio

import openai
import pytest
from client_fakes import FakeCollector, answer, cut, fail, slow
from support.wait import wait_for

from registry.client import AsyncRegistry, StreamInterrupted, Usage, openai_call

DEGRADED = "The assistant is unavailable right now."
QUESTION = {"question": "How do I reset my password?"}


def test_a_stream_yields_the_answer_with_the_providers_usage(make_registry, provider, call):
    provider.script("fake-a", answer("one two three four"))
    stream = make_registry().stream("demo.answer", QUESTION, call=call)
    assert stream.result is None

    assert list(stream) == ["one ", "two ", "three ", "four"]
    result = stream.result
    assert (result.text, result.model, result.outcome) == ("one two three four", "fake-a", "ok")
    assert result.usage == Usage(11, 7, estimated=False)
    [request] = provider.requests
    assert request.stream and request.body["stream_options"] == {"include_usage": True}
    assert request.body["max_completion_tokens"] == 50


def test_a_stream_falls_back_before_its_first_chunk(make_registry, provider, call):
    provider.script("fake-a", fail(500))
    provider.script("fake-b", answer("from the fallback"))
    stream = make_registry().stream("demo.answer", QUESTION, call=call)

    assert "".join(stream) == "from the fallback"
    assert (stream.result.model, stream.result.outcome) == ("fake-b", "fallback")


def test_a_stream_cut_mid_answer_raises_after_its_chunks_and_never_falls_back(
    make_registry, provider, call, collector: FakeCollector
):
    provider.script("fake-a", cut(after=2))
    reg = make_registry(collector.url, usage_flush_s=0.05)
    stream = reg.stream("demo.answer", {"question": "Tell me a long story"}, call=call)
    received = []
    with pytest.raises(StreamInterrupted) as caught:
        for chunk in stream:
            received.append(chunk)

    assert received == ["answer ", "from "]
    assert provider.models_called() == ["fake-a"]  # no silent continuation by fake-b
    result = caught.value.result
    assert result is stream.result
    assert (result.outcome, result.model, result.text) == ("error", "fake-a", "answer from ")
    assert not result.degraded
    assert result.usage.estimated and result.usage.output_tokens > 0
    assert "broke after 12 characters" in str(caught.value)
    wait_for(lambda: collector.events, 10, "the usage event")
    assert collector.events[0]["outcome"] == "error"


def test_a_stream_whose_chain_fails_yields_the_degraded_message_once(make_registry, provider, call):
    provider.script("fake-a", fail(500))
    provider.script("fake-b", slow(5))
    stream = make_registry().stream("demo.answer", QUESTION, call=call)
    assert list(stream) == [DEGRADED]
    assert stream.result.outcome == "degraded" and stream.result.degraded


def test_an_over_budget_stream_yields_the_degraded_message_and_calls_nothing(
    make_registry, provider, call
):
    stream = make_registry().stream("demo.answer", {"question": "word " * 2000}, call=call)
    assert list(stream) == [DEGRADED]
    assert stream.result.outcome == "rejected"
    assert provider.requests == []


def test_a_reader_that_stops_early_closes_the_stream_and_reports(make_registry, provider, call):
    provider.script("fake-a", answer("a b c d e f"))
    stream = make_registry().stream("demo.answer", QUESTION, call=call)
    assert next(stream) == "a "
    stream.close()
    assert (stream.result.outcome, stream.result.text) == ("ok", "a ")


def test_plain_iterables_are_streams_too(make_registry):
    def call(model, messages, params, max_output_tokens, stream, timeout):
        assert stream and max_output_tokens == 50
        return iter(["", "Hel", "lo", {"input_tokens": 5, "output_tokens": 2}])

    stream = make_registry().stream("demo.answer", QUESTION, call=call)
    assert list(stream) == ["Hel", "lo"]
    assert stream.result.usage == Usage(5, 2)


# -- asyncio --------------------------------------------------------------------------------


def test_async_run_falls_back_through_the_async_sdk(snapshot_file, provider):
    provider.script("fake-a", fail(502))

    async def main():
        client = openai.AsyncOpenAI(base_url=provider.base_url, api_key="test-key")
        async with client, AsyncRegistry(None, snapshot=snapshot_file) as reg:
            return await reg.run("demo.answer", QUESTION, call=openai_call(client))

    result = asyncio.run(main())
    assert (result.model, result.outcome, result.text) == (
        "fake-b",
        "fallback",
        "answer from fake-b",
    )
    assert provider.models_called() == ["fake-a", "fake-a", "fake-b"]


@pytest.mark.slow
def test_async_timeouts_are_enforced_even_when_the_call_ignores_them(snapshot_file):
    async def sleepy(model, messages, params, max_output_tokens, stream, timeout):
        if model == "fake-a":
            await asyncio.sleep(30)
        return "awake"

    async def main():
        async with AsyncRegistry(None, snapshot=snapshot_file) as reg:
            return await reg.run("demo.answer", QUESTION, call=sleepy)

    result = asyncio.run(main())
    assert (result.text, result.model) == ("awake", "fake-b")
    assert [a.outcome for a in result.attempts] == ["timeout", "timeout", "ok"]


def test_async_stream_cut_raises_stream_interrupted(snapshot_file, provider):
    provider.script("fake-a", cut(after=3, text="one two three four five"))

    async def main():
        received = []
        client = openai.AsyncOpenAI(base_url=provider.base_url, api_key="test-key")
        async with client, AsyncRegistry(None, snapshot=snapshot_file) as reg:
            stream = reg.stream("demo.answer", QUESTION, call=openai_call(client))
            with pytest.raises(StreamInterrupted):
                async for chunk in stream:
                    received.append(chunk)
        return received, stream.result

    received, result = asyncio.run(main())
    assert received == ["one ", "two ", "three "]
    assert result.outcome == "error"
    assert provider.models_called() == ["fake-a"]


def test_async_stream_with_a_sync_call_runs_it_in_a_thread(snapshot_file, provider, call):
    provider.script("fake-a", fail(500))

    async def main():
        async with AsyncRegistry(None, snapshot=snapshot_file) as reg:
            stream = reg.stream("demo.answer", QUESTION, call=call)
            return [chunk async for chunk in stream], stream.result

    chunks, result = asyncio.run(main())
    assert "".join(chunks) == "answer from fake-b"
    assert result.outcome == "fallback"
