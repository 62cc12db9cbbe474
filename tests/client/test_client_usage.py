"""Usage reporting: batched in the background, bounded, ids per event, flushed at exit."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import httpx
import pytest
from client_fakes import FakeCollector, fail
from support.wait import wait_for

from registry.client.usage import UsageEvent, UsageReporter

QUESTION = {"question": "How do I reset my password?"}


def test_each_run_reports_one_event_in_batches_with_unique_ids(
    make_registry, provider, call, collector: FakeCollector
):
    provider.script("fake-a", fail(500))
    reg = make_registry(collector.url, usage_flush_s=0.05, usage_batch_size=2)
    results = [reg.run("demo.answer", QUESTION, call=call) for _ in range(3)]
    results.append(reg.run("demo.answer", {"question": "x " * 2000}, call=call))  # rejected

    wait_for(lambda: len(collector.events) == 4, 10, "4 usage events")
    events = collector.events
    assert len({e["id"] for e in events}) == 4
    assert [e["outcome"] for e in events] == ["fallback", "fallback", "fallback", "rejected"]
    ok = events[0]
    assert ok["feature"] == "demo.answer" and ok["version"] == 1 and ok["model"] == "fake-b"
    assert (ok["input_tokens"], ok["output_tokens"]) == (11, 7)  # the provider's usage
    assert ok["estimated_input_tokens"] > 20  # counted on fake-b's tokenizer
    assert ok["cost_usd"] == pytest.approx(11 * 0.5e-6 + 7 * 1.0e-6)  # fake-b's prices
    assert ok["latency_ms"] >= 0
    assert datetime.fromisoformat(ok["at"]) <= datetime.now(UTC)  # when it ran, not when sent
    rejected = events[3]
    assert (rejected["input_tokens"], rejected["model"]) == (0, "fake-a")
    assert rejected["estimated_input_tokens"] > 400
    assert "cost_usd" not in rejected
    assert results[3].outcome == "rejected"
    wait_for(lambda: reg.stats()["usage_accepted"] == 4, 10, "the collector's answers")


def test_flush_sends_at_once_without_waiting_for_the_interval(
    make_registry, call, collector: FakeCollector
):
    reg = make_registry(collector.url, usage_flush_s=60)
    reg.run("demo.answer", QUESTION, call=call)
    assert reg.stats()["usage_pending"] == 1
    assert reg.flush(timeout_s=10)
    assert len(collector.events) == 1 and reg.stats()["usage_pending"] == 0


def test_a_full_queue_drops_and_counts_instead_of_blocking(monkeypatch):
    reporter = UsageReporter("http://127.0.0.1:9", None, max_queue=2)
    monkeypatch.setattr(reporter, "_start", lambda: None)  # no worker: nothing drains
    reporter._worker = None
    event = UsageEvent("id", "f", 1, "m", 1, 1, 1, "ok", 1)
    for _ in range(5):
        reporter.submit(event)
    assert reporter.counts["dropped"] == 3 and len(reporter.queue) == 2


def test_a_failing_collector_is_retried_then_counted(collector: FakeCollector):
    reporter = UsageReporter(collector.url.replace("http://", "http://x."), None, flush_s=0.01)
    reporter.retries = 1
    reporter.submit(UsageEvent("id-1", "f", 1, "m", 1, 1, 1, "ok", 1))
    wait_for(lambda: reporter.counts["failed"] == 1, 10, "a failed batch")
    reporter.close()


EXIT_SCRIPT = """
import sys
import openai
from registry.client import Registry, openai_call

url, token, snapshot, provider = sys.argv[1:]
kwargs = {"snapshot": snapshot} if snapshot != "-" else {}
# flush_s=60: nothing is sent while the process runs; only the exit flush can deliver
reg = Registry(url, token, usage_flush_s=60, **kwargs)
with openai.OpenAI(base_url=provider, api_key="k") as client:
    call = openai_call(client)
    for i in range(3):
        assert reg.run("demo.answer", {"question": f"q{i}"}, call=call).outcome == "ok"
print("done")
"""


def _run_and_exit(url, token, snapshot, provider, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(EXIT_SCRIPT), url, token, snapshot, provider],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"


@pytest.mark.slow
def test_usage_events_arrive_at_the_server_after_a_normal_exit(live_registry, provider, tmp_path):
    _run_and_exit(live_registry.url, live_registry.token, "-", provider.base_url, tmp_path)
    headers = {"Authorization": f"Bearer {live_registry.token}"}
    stats = httpx.get(
        f"{live_registry.url}/v1/features/demo.answer/stats",
        params={"window": "24h"},
        headers=headers,
    )
    assert stats.status_code == 200, stats.text
    # usage_flush_s=60 in the child: only its exit flush can have delivered these
    assert stats.json()["requests"] == 3, json.dumps(stats.json())
