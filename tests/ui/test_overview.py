"""The features page's numbers: the same as `promptreg stats` gives feature by feature,
read for every feature at once, and fresh after a label move or new usage."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from usage_helpers import event, repo_fixture, synced_fixture  # noqa: F401  (fixtures repo, synced)

from registry import labels
from registry.store.db import session_scope
from registry.ui.overview import Overview, select_rows, sort_rows
from registry.usage import Ingestor, feature_stats

NOW = datetime(2026, 3, 10, 1, 30, tzinfo=UTC)  # early in the day: the window spans two days
FEATURES = ("support.reply", "kb.answer", "tight.reply")


def traffic(seed: int, count: int, within_h: float = 30) -> list[dict[str, Any]]:
    """Events over the last `within_h` hours (30: some outside the window), every outcome."""
    rng = random.Random(seed)
    events = []
    for _ in range(count):
        name = rng.choice(FEATURES)
        version = rng.choice((1, 2)) if name == "support.reply" else 1
        estimate = rng.randint(100, 900)
        events.append(
            event(
                feature=name,
                version=version,
                model=rng.choice(("gpt-4o", "gpt-4o-mini")),
                outcome=rng.choice(("ok",) * 6 + ("error", "timeout", "fallback", "rejected")),
                input_tokens=int(estimate * rng.uniform(0.9, 1.5)),
                estimated_input_tokens=estimate,
                latency_ms=round(rng.lognormvariate(6.5, 0.7), 1),
                cost_usd=round(rng.uniform(0.001, 0.2), 6),
                at=(NOW - timedelta(minutes=rng.uniform(0, within_h * 60))).isoformat(),
            )
        )
    return events


def ingest(engine: Engine, events: list[dict[str, Any]]) -> None:
    result = Ingestor(engine).ingest(events, now=NOW)
    assert not result.rejected, result.rejected


class Marker:
    """A stand-in for the serving cache's change marker."""

    value = 1

    def __call__(self) -> int:
        return self.value


def assert_same_as_stats(engine: Engine, overview: Overview, now: datetime = NOW) -> None:
    rows, _ = overview.rows("production", now=now)
    assert [r.name for r in rows] == sorted(FEATURES)
    with Session(engine) as session:
        for row in rows:
            stats = feature_stats(session, row.name, window="24h", now=now)
            assert row.requests == stats["requests"], row.name
            assert row.error_pct == stats["error_rate_pct"], row.name
            assert row.p95_ms == stats["latency_ms"]["p95"], row.name
            assert row.cost_today == pytest.approx(stats["cost_today_usd"], abs=1e-6), row.name
            assert row.alarms == stats["alarms"], row.name


def test_every_row_matches_stats_and_follows_new_usage(synced: Engine) -> None:
    ingest(synced, traffic(1, 600))
    overview = Overview(synced, Marker())
    assert_same_as_stats(synced, overview)
    rows, _ = overview.rows("production", now=NOW)
    reply = next(r for r in rows if r.name == "support.reply")
    assert {a["kind"] for a in reply.alarms} >= {"daily_budget", "drift"}
    # New events in the current hour show at once.
    ingest(synced, traffic(2, 300, within_h=0.5))
    assert_same_as_stats(synced, overview)
    # Settled hours were read once and kept: an event reported hours late shows when the
    # next hour settles and they are read again.
    ingest(synced, traffic(3, 50, within_h=20))
    assert_same_as_stats(synced, overview, now=NOW + timedelta(hours=1))
    # In the first minutes of an hour the one before is still read live.
    ingest(synced, traffic(4, 50, within_h=0.5))
    assert_same_as_stats(synced, overview, now=NOW + timedelta(minutes=32))


def test_a_label_move_shows_after_the_change_marker_moves(synced: Engine) -> None:
    marker = Marker()
    overview = Overview(synced, marker)
    rows, _ = overview.rows("production", now=NOW)
    assert next(r for r in rows if r.name == "support.reply").version == 2
    with session_scope(synced) as session:
        labels.rollback(session, "support.reply", actor="test")
    rows, _ = overview.rows("production", now=NOW)
    assert next(r for r in rows if r.name == "support.reply").version == 2  # same marker
    marker.value += 1
    rows, catalog = overview.rows("production", now=NOW)
    reply = next(r for r in rows if r.name == "support.reply")
    assert (reply.version, reply.pinned) == (1, True)
    assert catalog.labels == ["production"]


def test_filters_and_sorts(synced: Engine) -> None:
    ingest(synced, traffic(5, 300))
    rows, _ = Overview(synced, Marker()).rows("production", now=NOW)
    assert [r.name for r in select_rows(rows, query="REPLY", show="all")] == [
        "support.reply",
        "tight.reply",
    ]
    assert [r.name for r in select_rows(rows, query="", show="alarms")] == ["support.reply"]
    assert select_rows(rows, query="", show="pinned") == []
    busiest = sort_rows(rows, by="requests", descending=True)
    assert [r.requests for r in busiest] == sorted((r.requests for r in rows), reverse=True)
    assert [r.name for r in sort_rows(rows, by="name", descending=True)] == sorted(
        FEATURES, reverse=True
    )
