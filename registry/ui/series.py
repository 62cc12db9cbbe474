"""A feature's usage hour by hour, for the charts of its page (and their table fallback).

Two grouped queries over the hourly rollups of one feature, whatever the traffic: sums per
hour, and the latency histogram per hour, from which p50 and p95 are read exactly as
`stats` reads them. Every hour of the window gets a point; an hour without calls has no
error rate or latency (a gap in the chart), not a zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from registry.outcomes import ERROR_OUTCOMES
from registry.store.models import UsageLatency, UsageRollup
from registry.usage.latency import percentile
from registry.usage.rollup import hour_of
from registry.usage.stats import parse_window, window_start

_R = UsageRollup.__table__  # type: ignore[attr-defined]
_L = UsageLatency.__table__  # type: ignore[attr-defined]
WINDOWS = ("24h", "7d")
_SUMS = (
    "requests",
    "rejected",
    *ERROR_OUTCOMES,
    "cost_usd",
    "drift_input_tokens",
    "drift_estimated_tokens",
)


@dataclass
class Point:
    """One hour of a feature's usage."""

    hour: datetime
    requests: int = 0
    calls: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0  # real input tokens of answered calls that carried an estimate
    estimated_tokens: int = 0  # their estimates
    histogram: dict[int, int] = field(default_factory=dict)

    @property
    def error_pct(self) -> float | None:
        """Errors per call, in percent (None without calls)."""
        return None if self.calls <= 0 else round(100 * self.errors / self.calls, 2)

    def latency(self, pct: float) -> float | None:
        """The `pct` percentile latency in ms (None without calls)."""
        value = percentile(self.histogram, pct)
        return None if value is None else round(value, 1)


def hourly(
    session: Session, feature_id: int, *, window: str, now: datetime | None = None
) -> list[Point]:
    """One point per hour of the window (the current hour last)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    since = window_start(now, parse_window(window))
    points: dict[datetime, Point] = {}
    hour = since
    while hour <= hour_of(now):
        points[hour] = Point(hour)
        hour += timedelta(hours=1)
    sums = (
        select(_R.c.hour, *(func.sum(_R.c[name]).label(name) for name in _SUMS))
        .where(_R.c.feature_id == feature_id, _R.c.hour >= since)
        .group_by(_R.c.hour)
    )
    for row in session.execute(sums).mappings():
        point = points.get(hour_of(row["hour"]))
        if point is None:
            continue
        point.requests = int(row["requests"])
        point.calls = point.requests - int(row["rejected"])
        point.errors = sum(int(row[outcome]) for outcome in ERROR_OUTCOMES)
        point.cost_usd = float(row["cost_usd"])
        point.input_tokens = int(row["drift_input_tokens"])
        point.estimated_tokens = int(row["drift_estimated_tokens"])
    latency = (
        select(_L.c.hour, _L.c.bucket, func.sum(_L.c.count))
        .where(_L.c.feature_id == feature_id, _L.c.hour >= since)
        .group_by(_L.c.hour, _L.c.bucket)
    )
    for at, bucket, count in session.execute(latency):
        point = points.get(hour_of(at))
        if point is not None:
            point.histogram[int(bucket)] = int(count)
    return list(points.values())


def chart_data(points: list[Point]) -> dict[str, Any]:
    """The series the page's charts draw (uPlot's columns: x, then one array per line)."""
    return {
        "x": [int(p.hour.timestamp()) for p in points],
        "requests": [p.requests for p in points],
        "error_pct": [p.error_pct for p in points],
        "p50": [p.latency(50) for p in points],
        "p95": [p.latency(95) for p in points],
        "cost": [round(p.cost_usd, 6) for p in points],
        "input_real": [p.input_tokens for p in points],
        "input_estimated": [p.estimated_tokens for p in points],
    }
