"""GET /metrics: usage counters, budget rejections from render, active versions; and several
server processes sharing their counters through PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine
from support.server import ServeProcess
from support.wait import wait_for
from usage_helpers import event, make_token

from registry.usage import metrics


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, by name and labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def scrape(client: TestClient) -> str:
    response = client.get("/metrics", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def test_usage_counters_move_with_accepted_events_only(client):
    before = scrape(client)
    answer = client.post(
        "/v1/usage",
        json={
            "events": [
                event(id="m1", input_tokens=100, output_tokens=10, latency_ms=300, cost_usd=0.5),
                event(id="m1"),
                event(id="m2", outcome="timeout", latency_ms=12_000),
                event(outcome="nope"),
            ]
        },
    ).json()
    assert answer["accepted"] == 2
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    reply = {"feature": "support.reply", "model": "gpt-4o"}
    assert delta("promptreg_requests_total", **reply, outcome="ok") == 1
    assert delta("promptreg_requests_total", **reply, outcome="timeout") == 1
    assert delta("promptreg_tokens_total", **reply, direction="input") == 200
    assert delta("promptreg_tokens_total", **reply, direction="output") == 60
    # m1 reported $0.50; m2 is priced from the catalog: 100 * 2.5e-6 + 50 * 1e-5
    assert delta("promptreg_cost_usd_total", **reply) == pytest.approx(0.5 + 0.00075)
    latency = "promptreg_request_latency_seconds"
    assert delta(f"{latency}_count", feature="support.reply") == 2
    assert delta(f"{latency}_bucket", feature="support.reply", le="0.5") == 1
    assert delta(f"{latency}_bucket", feature="support.reply", le="15.0") == 2
    assert delta("promptreg_usage_events_total", result="accepted") == 2
    assert delta("promptreg_usage_events_total", result="duplicate") == 1
    assert delta("promptreg_usage_events_total", result="rejected") == 1


def test_budget_rejections_from_render_count_cached_answers_too(client):
    counter = "promptreg_budget_rejections_total"
    before = value(scrape(client), counter, feature="tight.reply")
    long_question = {"variables": {"question": "Why? " * 200}}
    for _ in range(2):  # the second answer comes from the render cache
        answer = client.post("/v1/features/tight.reply/render", json=long_question)
        assert answer.status_code == 200
        assert answer.json()["budget"]["allowed"] is False
    allowed = client.post("/v1/features/tight.reply/render", json={"variables": {"question": "Hi"}})
    assert allowed.json()["budget"]["allowed"] is True
    # a value that imitates the marker is escaped inside the JSON answer
    sneaky = {"variables": {"question": '"budget":{"allowed":false'}}
    assert client.post("/v1/features/kb.answer/render", json=sneaky).status_code == 200
    text = scrape(client)
    assert value(text, counter, feature="tight.reply") - before == 2
    assert value(text, counter, feature="kb.answer") == 0


def test_active_version_gauge_follows_label_moves(client, synced):
    gauge = "promptreg_active_version"
    text = scrape(client)
    assert value(text, gauge, feature="support.reply", label="production") == 2
    assert value(text, gauge, feature="kb.answer", label="production") == 1
    admin = {"Authorization": f"Bearer {make_token(synced, 'admin')}"}
    moved = client.post(
        "/v1/features/support.reply/rollback", json={"to_version": 1}, headers=admin
    )
    assert moved.status_code == 200, moved.text
    assert value(scrape(client), gauge, feature="support.reply", label="production") == 1


# -- several processes ----------------------------------------------------------------------


def test_prepare_processes_makes_and_empties_the_folder(tmp_path, monkeypatch):
    # set, then deleted: undoing restores whatever was there, and removes what
    # prepare_processes sets below
    monkeypatch.setenv(metrics.MULTIPROC_ENV, "")
    monkeypatch.delenv(metrics.MULTIPROC_ENV)
    assert metrics.prepare_processes(1) is None
    folder = metrics.prepare_processes(4)
    assert folder is not None and Path(folder).is_dir()
    assert os.environ[metrics.MULTIPROC_ENV] == folder
    metrics.cleanup_processes(folder)
    assert not Path(folder).exists()

    own = tmp_path / "metrics"
    own.mkdir()
    (own / "counter_123.db").write_bytes(b"stale")
    (own / "keep.txt").write_text("not ours")
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(own))
    assert metrics.prepare_processes(2) == str(own)
    assert sorted(p.name for p in own.iterdir()) == ["keep.txt"]
    metrics.cleanup_processes(str(own))  # an operator's folder is never removed
    assert own.is_dir()


@pytest.mark.slow
def test_two_worker_processes_report_the_same_totals(synced: Engine, tmp_path):
    folder = tmp_path / "prom"
    folder.mkdir()
    server = ServeProcess(
        synced.url.render_as_string(hide_password=False),
        tmp_path,
        workers=2,
        env={metrics.MULTIPROC_ENV: str(folder)},
    )
    with server:
        headers = {"Authorization": f"Bearer {make_token(synced)}"}
        posted, batch = 0, 0

        def post_batch() -> None:
            nonlocal posted, batch
            answer = httpx.post(  # each on a new connection
                f"{server.url}/v1/usage",
                json={"events": [event(id=f"w{batch}-{i}") for i in range(5)]},
                headers=headers,
            ).json()
            posted += answer["accepted"]
            batch += 1

        def both_workers_counted() -> bool:
            post_batch()
            return len(list(folder.glob("counter_*.db"))) >= 2

        for _ in range(60):
            post_batch()
        # The second worker may still be starting (it warms the catalog first): post until
        # both workers have counted something.
        wait_for(both_workers_counted, 60, "both workers to count usage (one took every request)")
        assert posted == 5 * batch
        for _ in range(10):
            text = httpx.get(f"{server.url}/metrics").text
            assert value(text, "promptreg_usage_events_total", result="accepted") == posted
            assert (
                value(
                    text,
                    "promptreg_requests_total",
                    feature="support.reply",
                    model="gpt-4o",
                    outcome="ok",
                )
                == posted
            )
            assert (
                value(text, "promptreg_active_version", feature="support.reply", label="production")
                == 2
            )
