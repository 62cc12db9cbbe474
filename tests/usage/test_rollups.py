"""Hourly rollups, latency percentiles, windows, alarms, and GET /v1/features/{name}/stats."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from support.clock import earlier_today
from usage_helpers import event

from registry.errors import NotFound
from registry.usage import BadWindow, Ingestor, feature_stats, parse_window
from registry.usage.rollup import bucket_bounds, latency_bucket, percentile
from registry.usage.stats import window_start

NOW = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)


def at(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).isoformat()


def ingest(engine: Engine, *events: dict[str, Any]) -> None:
    result = Ingestor(engine).ingest(list(events), now=NOW)
    assert not result.rejected, result.rejected


def stats(engine: Engine, name: str = "support.reply", **kw: Any) -> dict[str, Any]:
    with Session(engine) as session:
        return feature_stats(session, name, now=NOW, **kw)


def kinds(data: dict[str, Any]) -> list[str]:
    return [alarm["kind"] for alarm in data["alarms"]]


# -- histogram --------------------------------------------------------------------------


def test_percentiles_from_the_histogram_are_within_five_percent():
    rng = random.Random(7)
    samples = [rng.lognormvariate(6.5, 0.8) for _ in range(20_000)]
    histogram: dict[int, int] = {}
    for value in samples:
        histogram[latency_bucket(value)] = histogram.get(latency_bucket(value), 0) + 1
    exact = statistics.quantiles(samples, n=100)
    for pct in (50, 95, 99):
        estimate = percentile(histogram, pct)
        assert estimate == pytest.approx(exact[pct - 1], rel=0.05), pct


@pytest.mark.parametrize("value", [0, 0.4, 1, 1.04, 7.3, 250, 999.9, 1000, 3_599_999])
def test_a_value_falls_inside_its_bucket(value):
    low, high = bucket_bounds(latency_bucket(value))
    assert low <= value < high


def test_percentile_of_nothing_is_none():
    assert percentile({}, 50) is None


# -- windows ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "span"),
    [("24h", timedelta(hours=24)), ("90m", timedelta(minutes=90)), ("7d", timedelta(days=7))],
)
def test_windows_parse(text, span):
    assert parse_window(text) == span


@pytest.mark.parametrize("text", ["", "24", "0h", "91d", "-1h", "1w", "h", "24 hours"])
def test_bad_windows_are_refused(text):
    with pytest.raises(BadWindow, match="window"):
        parse_window(text)


@pytest.mark.parametrize(
    ("window", "since"),
    [
        ("24h", datetime(2026, 3, 9, 15, tzinfo=UTC)),
        ("1h", datetime(2026, 3, 10, 14, tzinfo=UTC)),
        ("90m", datetime(2026, 3, 10, 13, tzinfo=UTC)),
        ("2d", datetime(2026, 3, 8, 15, tzinfo=UTC)),
    ],
)
def test_a_window_is_whole_hours_ending_with_the_current_one(window, since):
    assert window_start(NOW, parse_window(window)) == since


# -- stats ------------------------------------------------------------------------------


def test_stats_sum_the_window(synced):
    ingest(
        synced,
        event(at=at(0.1), input_tokens=120, output_tokens=30, latency_ms=400),
        event(at=at(5), input_tokens=100, output_tokens=20, latency_ms=800),
        event(at=at(23), input_tokens=80, output_tokens=10, latency_ms=1600),
        event(at=at(25), input_tokens=1, output_tokens=1, latency_ms=9000),  # outside 24h
    )
    data = stats(synced)
    assert data["requests"] == 3
    assert data["tokens"] == {"input": 300, "output": 60, "estimated_input": 300}
    assert data["since"] == "2026-03-09T15:00:00+00:00"
    assert data["latency_ms"]["p50"] == pytest.approx(800, rel=0.05)
    assert data["latency_ms"]["mean"] == pytest.approx(2800 / 3, abs=0.1)
    assert stats(synced, window="48h")["requests"] == 4
    assert stats(synced, window="1h")["requests"] == 1


def test_outcomes_error_rate_and_drift(synced):
    ingest(
        synced,
        event(outcome="ok", input_tokens=130),
        event(
            outcome="fallback", model="gpt-4o-mini", input_tokens=130, estimated_input_tokens=100
        ),
        event(outcome="error", input_tokens=100, estimated_input_tokens=100),
        event(outcome="timeout", input_tokens=100, estimated_input_tokens=100),
        event(outcome="degraded", input_tokens=0, estimated_input_tokens=100),
        # a budget rejection made no call: not in the error rate, the drift or the latency
        event(outcome="rejected", input_tokens=0, estimated_input_tokens=5000, latency_ms=0),
    )
    data = stats(synced)
    assert data["requests"] == 6
    assert data["outcomes"] == {
        "ok": 1,
        "error": 1,
        "timeout": 1,
        "fallback": 1,
        "degraded": 1,
        "rejected": 1,
    }
    assert data["error_rate_pct"] == 60.0  # 3 of 5 calls
    assert data["drift_pct"] == 30.0  # answered calls: 260 real vs 200 estimated
    assert data["latency_ms"]["p50"] == pytest.approx(800, rel=0.05)


def test_rows_per_day_version_and_model(synced):
    ingest(
        synced,
        event(at=at(1), version=2),
        event(at=at(1), version=2, model="gpt-4o-mini", outcome="fallback"),
        event(at=at(2), version=1),
        event(at=at(20), version=2),  # yesterday (UTC)
    )
    rows = [(r["day"], r["version"], r["model"], r["requests"]) for r in stats(synced)["rows"]]
    assert rows == [
        ("2026-03-09", 2, "gpt-4o", 1),
        ("2026-03-10", 1, "gpt-4o", 1),
        ("2026-03-10", 2, "gpt-4o", 1),
        ("2026-03-10", 2, "gpt-4o-mini", 1),
    ]


def test_cost_today_counts_the_whole_utc_day_whatever_the_window(synced):
    ingest(
        synced,
        event(at=at(0), cost_usd=0.10),
        event(at=at(10), cost_usd=0.20),  # 04:30 today
        event(at=at(20), cost_usd=0.40),  # yesterday
    )
    short = stats(synced, window="1h")
    assert short["cost_usd"] == pytest.approx(0.10)
    assert short["cost_today_usd"] == pytest.approx(0.30)
    day = stats(synced)
    assert day["cost_usd"] == pytest.approx(0.70)
    assert day["cost_today_usd"] == pytest.approx(0.30)


def test_no_usage_gives_zeros_and_no_alarm(synced):
    data = stats(synced)
    assert data["requests"] == 0
    assert data["error_rate_pct"] is None and data["drift_pct"] is None
    assert data["latency_ms"] == {"p50": None, "p95": None, "mean": None}
    assert data["alarms"] == [] and data["rows"] == []
    assert data["live_version"] == 2


# -- alarms -----------------------------------------------------------------------------


def test_daily_spend_over_budget_alarms(synced):
    ingest(synced, event(cost_usd=0.6), event(cost_usd=0.3))
    assert kinds(stats(synced)) == []
    ingest(synced, event(cost_usd=0.3))
    [alarm] = stats(synced)["alarms"]
    assert alarm["kind"] == "daily_budget"
    assert alarm["threshold"] == 1 and alarm["value"] == pytest.approx(1.2)
    assert "2026-03-10" in alarm["message"] and "$1.20" in alarm["message"]


def test_yesterdays_overspend_alarms_in_a_two_day_window(synced):
    ingest(synced, event(at=at(20), cost_usd=1.5))
    assert kinds(stats(synced, window="48h")) == ["daily_budget"]
    assert kinds(stats(synced, window="1h")) == []


def test_drift_over_the_threshold_alarms(synced):
    ingest(synced, event(input_tokens=119, estimated_input_tokens=100))
    assert kinds(stats(synced)) == []  # +19% < 20%
    ingest(synced, event(input_tokens=150, estimated_input_tokens=100))
    data = stats(synced)
    assert data["drift_pct"] == 34.5
    assert kinds(data) == ["drift"]
    assert "+34.5%" in data["alarms"][0]["message"]
    assert kinds({"alarms": data["rows"][0]["alarms"]}) == ["drift"]


def test_error_rate_over_the_breaker_threshold_alarms_after_min_requests(synced):
    ingest(synced, *[event(outcome="error") for _ in range(3)])
    assert kinds(stats(synced)) == []  # 3 calls < min_requests 4
    ingest(synced, event(outcome="ok"))
    data = stats(synced)
    assert data["error_rate_pct"] == 75.0
    assert kinds(data) == ["error_rate"]
    assert "circuit_breaker.failure_rate_pct 50%" in data["alarms"][0]["message"]


def test_a_feature_without_thresholds_never_alarms(synced):
    ingest(
        synced,
        *[
            event(feature="kb.answer", version=1, outcome="error", input_tokens=999, cost_usd=9)
            for _ in range(20)
        ],
    )
    data = stats(synced, "kb.answer")
    assert data["drift_pct"] is None  # failed calls carry no real input count
    # kb.answer has no daily budget nor drift alarm; its breaker is the default (50%, 10)
    assert kinds(data) == ["error_rate"]


def test_stats_of_an_unknown_feature(synced):
    with pytest.raises(NotFound, match="unknown feature 'nope'"):
        stats(synced, "nope")


# -- the API route ----------------------------------------------------------------------


def test_stats_route(client, synced):
    ingest_now = Ingestor(synced).ingest(
        [event(cost_usd=2.0, at=earlier_today(minutes=1).isoformat())]
    )
    assert ingest_now.accepted == 1
    response = client.get("/v1/features/support.reply/stats", params={"window": "24h"})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["requests"] == 1 and data["window"] == "24h"
    assert data["live_version"] == 2 and data["label"] == "production"
    assert kinds(data) == ["daily_budget"]


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/v1/features/nope/stats", {}, 404),
        ("/v1/features/support.reply/stats", {"window": "forever"}, 422),
        ("/v1/features/support.reply/stats", {"window": "365d"}, 422),
    ],
)
def test_stats_route_errors(client, path, params, status):
    response = client.get(path, params=params)
    assert response.status_code == status
    assert response.json()["detail"]


def test_stats_route_needs_a_token(client):
    response = client.get("/v1/features/support.reply/stats", headers={"Authorization": ""})
    assert response.status_code == 401
