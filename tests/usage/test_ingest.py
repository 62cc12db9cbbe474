"""POST /v1/usage (SPEC §4, §8 "Usage event ids"): validation, duplicates, limits, atomicity.

Every test runs on SQLite and, in CI, on PostgreSQL (the `engine` fixture behind `synced`).
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select
from usage_helpers import app_for, event

from registry.store import usage_crud
from registry.store.models import UsageEvent, UsageLatency, UsageRollup
from registry.usage import Ingestor

NOW = datetime.now(UTC)


def stored(engine: Engine) -> list[UsageEvent]:
    with Session(engine) as session:
        return list(session.exec(select(UsageEvent).order_by(col(UsageEvent.id))).all())


def requests_rolled_up(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.coalesce(func.sum(UsageRollup.requests), 0))).one())


def histogram_count(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.coalesce(func.sum(UsageLatency.count), 0))).one())


def post(client: TestClient, *events: Any) -> dict[str, Any]:
    response = client.post("/v1/usage", json={"events": list(events)})
    assert response.status_code == 202, response.text
    return response.json()


# -- accepted ---------------------------------------------------------------------------


def test_a_batch_is_stored_and_answered_with_202(client, synced):
    answer = post(client, event(id="e1"), event(id="e2", outcome="fallback", model="gpt-4o-mini"))
    assert answer == {"accepted": 2, "duplicates": 0, "rejected": []}
    rows = stored(synced)
    assert [r.event_id for r in rows] == ["e1", "e2"]
    assert rows[1].outcome == "fallback" and rows[1].model == "gpt-4o-mini"
    assert requests_rolled_up(synced) == 2
    assert histogram_count(synced) == 2


def test_cost_comes_from_the_versions_catalog_entry_of_the_model_used(client, synced):
    post(
        client,
        event(id="first", input_tokens=1000, output_tokens=100),
        event(id="fallback", model="gpt-4o-mini", input_tokens=1000, output_tokens=100),
    )
    by_id = {r.event_id: r for r in stored(synced)}
    first, fallback = by_id["first"], by_id["fallback"]
    # gpt-4o: $2.50 / $10 per million tokens; gpt-4o-mini: $0.15 / $0.60 (the snapshot's)
    assert first.cost_usd == pytest.approx(1000 * 2.5e-6 + 100 * 10e-6)
    assert fallback.cost_usd == pytest.approx(1000 * 0.15e-6 + 100 * 0.6e-6)


def test_reported_cost_wins_and_an_unpriced_model_costs_nothing(client, synced):
    post(client, event(id="paid", cost_usd=0.25), event(id="other", model="some-proxy-alias"))
    by_id = {r.event_id: r for r in stored(synced)}
    paid, other = by_id["paid"], by_id["other"]
    assert paid.cost_usd == 0.25
    assert other.cost_usd is None


def test_event_without_at_is_stamped_now_and_an_offset_is_normalised(client, synced):
    earlier = (NOW - timedelta(hours=3)).astimezone(timezone(timedelta(hours=2)))
    post(client, event(id="now"), event(id="earlier", at=earlier.isoformat()))
    by_id = {r.event_id: r for r in stored(synced)}
    assert abs(by_id["now"].at - datetime.now(UTC)) < timedelta(minutes=1)
    assert by_id["earlier"].at == earlier.astimezone(UTC)
    assert by_id["earlier"].at.tzinfo is not None


def test_a_naive_timestamp_is_taken_as_utc(client, synced):
    naive = (NOW - timedelta(minutes=30)).replace(tzinfo=None, microsecond=0)
    post(client, event(at=naive.isoformat()))
    assert stored(synced)[0].at == naive.replace(tzinfo=UTC)


def test_an_empty_batch_is_fine(client, synced):
    assert post(client) == {"accepted": 0, "duplicates": 0, "rejected": []}


# -- bad events: clear per-event reasons, nothing of them stored --------------------------

BAD = [
    pytest.param({"input_tokens": -5}, "input_tokens -5 is negative", id="negative-tokens"),
    pytest.param({"output_tokens": -1}, "output_tokens -1 is negative", id="negative-output"),
    pytest.param({"input_tokens": 10**12}, "input_tokens 1000000000000 is absurd", id="absurd"),
    pytest.param(
        {"estimated_input_tokens": 20_000_000},
        "estimated_input_tokens 20000000 is absurd",
        id="absurd-estimate",
    ),
    pytest.param({"input_tokens": 1.5}, "input_tokens must be an integer", id="float-tokens"),
    pytest.param({"input_tokens": True}, "input_tokens must be an integer", id="bool-tokens"),
    pytest.param({"input_tokens": "12"}, "input_tokens must be an integer", id="string-tokens"),
    pytest.param({"latency_ms": -3}, "latency_ms -3 is negative", id="negative-latency"),
    pytest.param({"latency_ms": 10**9}, "latency_ms 1000000000 is absurd", id="absurd-latency"),
    pytest.param({"cost_usd": -0.01}, "cost_usd -0.01 is negative", id="negative-cost"),
    pytest.param({"cost_usd": 5000}, "cost_usd 5000 is absurd", id="absurd-cost"),
    pytest.param({"outcome": "exploded"}, "unknown outcome 'exploded'", id="unknown-outcome"),
    pytest.param({"outcome": "OK"}, "unknown outcome 'OK'", id="outcome-case"),
    pytest.param(
        {"at": (NOW + timedelta(days=365)).isoformat()}, "is in the future", id="future-year"
    ),
    pytest.param(
        {"at": (NOW + timedelta(minutes=30)).isoformat()}, "is in the future", id="future-30min"
    ),
    pytest.param({"at": (NOW - timedelta(days=400)).isoformat()}, "days old", id="too-old"),
    pytest.param({"at": "yesterday"}, "'yesterday' is not an ISO 8601 timestamp", id="bad-at"),
    pytest.param({"at": 1700000000}, "at must be an ISO 8601 timestamp string", id="epoch-at"),
    pytest.param({"version": 0}, "version must be a positive integer", id="version-0"),
    pytest.param({"version": "2"}, "version must be a positive integer", id="version-string"),
    pytest.param({"feature": "Support Reply"}, "is not a valid feature name", id="bad-name"),
    pytest.param({"model": ""}, "model must be a non-empty string", id="empty-model"),
    pytest.param({"id": "x" * 201}, "id is longer than 200 characters", id="long-id"),
    pytest.param({"id": 7}, "id must be a non-empty string", id="numeric-id"),
    pytest.param({"tokens": 3}, "unknown field(s): tokens", id="unknown-field"),
    pytest.param({"model": "gpt\x00"}, "model contains a NUL character", id="nul"),
    pytest.param({"version": 2**31}, "version must be a positive integer", id="huge-version"),
    pytest.param({"latency_ms": 10**400}, "latency_ms must be a finite number", id="huge-int"),
    pytest.param({"at": "0001-01-01T00:00:00+14:00"}, "is out of range", id="at-overflow"),
    pytest.param({"feature": "x" * 10_000}, "feature is longer than 200", id="long-name"),
    pytest.param({"outcome": None}, "missing field(s): outcome", id="missing-field"),
]


@pytest.mark.parametrize(("change", "reason"), BAD)
def test_a_bad_event_is_rejected_with_its_reason(client, synced, change, reason):
    answer = post(client, event(id="good"), event(**{"id": "bad", **change}))
    assert answer["accepted"] == 1 and answer["duplicates"] == 0
    assert len(answer["rejected"]) == 1
    assert answer["rejected"][0]["index"] == 1
    assert reason in answer["rejected"][0]["reason"]
    assert [r.event_id for r in stored(synced)] == ["good"]
    assert requests_rolled_up(synced) == 1


def test_infinity_and_nan_are_not_numbers(client, synced):
    body = json.dumps({"events": [event()]})
    for word in ("Infinity", "NaN"):
        raw = body.replace('"latency_ms": 800', f'"latency_ms": {word}')
        response = client.post(
            "/v1/usage", content=raw, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 202, response.text
        [rejected] = response.json()["rejected"]
        assert rejected["reason"].startswith("latency_ms must be a finite number")
    assert stored(synced) == []


def test_a_lone_surrogate_is_not_text(client, synced):
    raw = json.dumps({"events": [event(id="SURROGATE")]}).replace("SURROGATE", "a\\ud800")
    response = client.post("/v1/usage", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 202, response.text
    assert response.json()["rejected"][0]["reason"] == "id is not valid Unicode (a lone surrogate)"
    assert stored(synced) == []


def test_an_event_that_is_not_an_object_is_rejected(client, synced):
    answer = post(client, "hello", [1, 2], event())
    assert answer["accepted"] == 1
    assert answer["rejected"] == [
        {"index": 0, "reason": "an event must be a JSON object"},
        {"index": 1, "reason": "an event must be a JSON object"},
    ]


def test_unknown_feature_and_version_are_named(client, synced):
    answer = post(
        client,
        event(feature="billing.refund"),
        event(version=99),
        event(feature="kb.answer", version=2),
        event(feature="kb.answer", version=1),
    )
    assert answer["accepted"] == 1
    assert answer["rejected"] == [
        {"index": 0, "reason": "unknown feature 'billing.refund'"},
        {"index": 1, "reason": "feature 'support.reply' has no version 99"},
        {"index": 2, "reason": "feature 'kb.answer' has no version 2"},
    ]


def test_a_version_synced_after_a_rejection_is_accepted(client, synced, repo, tmp_path):
    from usage_helpers import registry_files, sync

    assert post(client, event(version=3))["rejected"][0]["reason"].endswith("no version 3")
    repo.commit("Third version", registry_files("Yet another system prompt."))
    sync(synced, repo, tmp_path / "cache")
    assert post(client, event(version=3))["accepted"] == 1


def test_events_are_checked_one_by_one_and_reported_in_order(client, synced):
    answer = post(
        client,
        event(input_tokens=-1),
        event(),
        event(outcome="nope"),
        event(feature="nope"),
        event(),
    )
    assert answer["accepted"] == 2
    assert [r["index"] for r in answer["rejected"]] == [0, 2, 3]


# -- duplicates ---------------------------------------------------------------------------


def test_the_same_id_twice_in_one_batch_counts_once(client, synced):
    answer = post(client, event(id="dup"), event(id="dup"), event(id="other"))
    assert answer == {"accepted": 2, "duplicates": 1, "rejected": []}
    assert requests_rolled_up(synced) == 2


def test_a_retried_batch_is_not_counted_again(client, synced):
    batch = [event(id=f"retry-{i}") for i in range(5)] + [event()]
    first = post(client, *batch)
    again = post(client, *batch)
    assert first == {"accepted": 6, "duplicates": 0, "rejected": []}
    # the event without an id cannot be recognised: it is new every time
    assert again == {"accepted": 1, "duplicates": 5, "rejected": []}
    assert len(stored(synced)) == 7
    assert requests_rolled_up(synced) == 7
    assert histogram_count(synced) == 7


def test_a_partly_retried_batch_stores_only_the_new_events(client, synced):
    post(client, event(id="a"), event(id="b"))
    answer = post(client, event(id="b"), event(id="c"), event(id="a"), event(id="d"))
    assert answer == {"accepted": 2, "duplicates": 2, "rejected": []}
    assert sorted(r.event_id or "" for r in stored(synced)) == ["a", "b", "c", "d"]


def test_concurrent_retries_of_one_batch_store_it_once(synced):
    """Several replicas receiving the same retried batch at once: the unique index decides."""
    batch = [event(id=f"race-{i}-{uuid.uuid4().hex}") for i in range(50)]
    ingestors = [Ingestor(synced) for _ in range(4)]
    results: list[Any] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(ingestors))

    def run(ingestor: Ingestor) -> None:
        try:
            start.wait()
            results.append(ingestor.ingest(batch))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in ingestors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sum(r.accepted for r in results) == 50
    assert sum(r.duplicates for r in results) == 150
    assert len(stored(synced)) == 50
    assert requests_rolled_up(synced) == 50


# -- limits and auth ----------------------------------------------------------------------


def test_a_batch_over_the_size_limit_is_413_and_nothing_is_stored(client, synced):
    response = client.post("/v1/usage", json={"events": [event() for _ in range(1001)]})
    assert response.status_code == 413
    assert "at most 1000 events" in response.json()["detail"]
    assert stored(synced) == []


def test_a_batch_at_the_size_limit_is_accepted(client, synced):
    answer = post(client, *[event() for _ in range(1000)])
    assert answer["accepted"] == 1000
    assert requests_rolled_up(synced) == 1000


def test_a_body_over_one_mebibyte_is_413(client, synced):
    response = client.post("/v1/usage", json={"events": [event(model="m" * 200)] * 6000})
    assert response.status_code == 413
    assert stored(synced) == []


def test_usage_without_a_token_is_401_and_nothing_is_stored(synced, repo):
    with TestClient(app_for(synced, repo.path)) as anonymous:
        response = anonymous.post("/v1/usage", json={"events": [event()]})
        assert response.status_code == 401
        assert response.json()["detail"] == "missing bearer token"
        unknown = anonymous.post(
            "/v1/usage",
            json={"events": [event()]},
            headers={"Authorization": "Bearer prt_not-a-token"},
        )
        assert unknown.status_code == 401
    assert stored(synced) == []


@pytest.mark.parametrize(
    "body", [{}, {"events": "nope"}, {"events": [], "extra": 1}, [event()]], ids=str
)
def test_a_malformed_body_is_422(client, synced, body):
    response = client.post("/v1/usage", json=body)
    assert response.status_code == 422
    assert response.json()["detail"]


# -- atomicity ----------------------------------------------------------------------------


def test_a_failure_half_way_stores_nothing_of_the_batch(synced, monkeypatch):
    def broken(**_: Any) -> None:
        raise RuntimeError("disk full")

    post_ok = Ingestor(synced).ingest([event(id="before")])
    assert post_ok.accepted == 1
    monkeypatch.setattr(usage_crud, "add_latency", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        Ingestor(synced).ingest([event(id=f"lost-{i}") for i in range(10)])
    assert [r.event_id for r in stored(synced)] == ["before"]
    assert requests_rolled_up(synced) == 1


def test_a_failure_half_way_answers_500_and_a_retry_then_stores_it(
    synced, repo, token, monkeypatch
):
    real = usage_crud.add_latency
    monkeypatch.setattr(usage_crud, "add_latency", lambda **_: (_ for _ in ()).throw(OSError()))
    app = app_for(synced, repo.path)
    headers = {"Authorization": f"Bearer {token}"}
    batch = {"events": [event(id="x1"), event(id="x2")]}
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/v1/usage", json=batch, headers=headers).status_code == 500
        assert stored(synced) == []
        monkeypatch.setattr(usage_crud, "add_latency", real)
        answer = client.post("/v1/usage", json=batch, headers=headers).json()
    assert answer == {"accepted": 2, "duplicates": 0, "rejected": []}
