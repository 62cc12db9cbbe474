"""The features page's numbers: every feature, where its label points, its rollout, and its
usage over the last 24 hours, with the same totals and alarms `promptreg stats` gives.

Cheap at 1,000 features because nothing is read per feature:
- the catalog (catalog.py: features, where the label points, pinned, the latest rollout;
  and the policy of each live version) takes a few queries and is kept until the change
  marker moves (`Serving.generation`: a label move, a sync, a rollout step, a token
  change); a version's policy is parsed once, since versions never change;
- usage is the 24-hour window of `stats` in two parts: the settled hours are summed once
  (two grouped queries) and kept, with the figures of each feature that has no newer
  usage; the current hour (and, in its first five minutes, the one before) is summed on
  every request (two grouped queries over the rollups' hour index). An event reported
  after its hour settled shows when the next one does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, case, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from registry.definitions.content import VersionContent
from registry.definitions.policy import Policy
from registry.store.models import (
    ROLLUP_SUMS,
    Feature,
    Label,
    UsageLatency,
    UsageRollup,
    Version,
    utcnow,
)
from registry.ui.catalog import Entry, RolloutBrief, newest_version_ids, read_entries
from registry.usage.latency import percentile
from registry.usage.rollup import hour_of
from registry.usage.stats import Totals, alarms, window_start

WINDOW = timedelta(hours=24)
# Clients report usage within seconds (the client library flushes every second), so five
# minutes into an hour the one before it is settled and read with the older hours.
SETTLE = timedelta(minutes=5)
POLICY_CACHE_SIZE = 8192
_F = Feature.__table__  # type: ignore[attr-defined]
_R = UsageRollup.__table__  # type: ignore[attr-defined]
_L = UsageLatency.__table__  # type: ignore[attr-defined]


# requests, error %, p95 ms, cost today, alarms: a feature's usage columns
Figures = tuple[int, float | None, float | None, float, list[dict[str, Any]]]


@dataclass
class FeatureRow:
    """One row of the features page."""

    name: str
    retired: bool
    version: int | None
    pinned: bool
    updated_at: datetime | None
    rollout: RolloutBrief | None
    requests: int = 0
    error_pct: float | None = None
    p95_ms: float | None = None
    cost_today: float = 0.0
    alarms: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Catalog:
    """What only a change marker move changes: the entries and the label names."""

    generation: int
    entries: list[Entry]
    labels: list[str]
    policies: dict[int, Policy | None]  # feature id -> its live version's policy


@dataclass
class Usage:
    """Sums per feature id over some hours, and latency histograms."""

    sums: dict[int, dict[str, Any]] = field(default_factory=dict)
    histograms: dict[int, dict[int, int]] = field(default_factory=dict)


class Overview:
    """The features page's data for one app: catalog per generation, old hours per hour."""

    def __init__(self, engine: Engine, generation: Any) -> None:
        self.engine = engine
        self._generation = generation  # () -> the serving cache's change marker
        self._lock = threading.Lock()
        self._catalogs: dict[str, Catalog] = {}
        self._policies: dict[int, Policy | None] = {}  # version id -> policy
        self._closed: tuple[tuple[datetime, datetime, datetime], Usage] | None = None
        # per label: (catalog generation, settled hours) -> figures of features without
        # live usage, which stay what they are until either changes
        self._settled: dict[str, tuple[tuple[Any, ...], dict[int, Figures]]] = {}

    # -- the catalog ------------------------------------------------------------------------
    def catalog(self, label: str) -> Catalog:
        """The features on `label`, read again only when the change marker moved."""
        generation = int(self._generation())
        kept = self._catalogs.get(label)
        if kept is not None and kept.generation == generation and generation >= 0:
            return kept
        with Session(self.engine) as session:
            entries = read_entries(session, label)
            labels = sorted(str(name) for name in session.exec(select(Label.name).distinct()).all())
            wanted = {e.version_id for e in entries if e.version_id is not None}
            self._load_policies(session, wanted - set(self._policies))
            fallback = newest_version_ids(
                session, [e.feature_id for e in entries if e.version_id is None]
            )
            self._load_policies(session, set(fallback.values()) - set(self._policies))
        policies = {
            e.feature_id: self._policies.get(
                e.version_id if e.version_id is not None else fallback.get(e.feature_id, -1)
            )
            for e in entries
        }
        catalog = Catalog(generation, entries, labels or [label], policies)
        with self._lock:
            self._catalogs[label] = catalog
        return catalog

    def _load_policies(self, session: Session, version_ids: set[int]) -> None:
        ids = sorted(version_ids)
        for start in range(0, len(ids), 500):
            stmt = select(Version.id, Version.content).where(
                col(Version.id).in_(ids[start : start + 500])
            )
            for version_id, content in session.exec(stmt).all():
                parsed = VersionContent.from_json(content).policy_model
                with self._lock:
                    if len(self._policies) >= POLICY_CACHE_SIZE:
                        self._policies.pop(next(iter(self._policies)))
                    self._policies[int(version_id or 0)] = parsed

    # -- usage ------------------------------------------------------------------------------
    def _closed_usage(self, since: datetime, until: datetime, today: datetime) -> Usage:
        key = (since, until, today)
        with self._lock:
            if self._closed is not None and self._closed[0] == key:
                return self._closed[1]
            with Session(self.engine) as session:
                usage = _usage(session, since, until, today=today)
            self._closed = (key, usage)
            return usage

    def _settled_figures(self, label: str, key: tuple[Any, ...]) -> dict[int, Figures]:
        with self._lock:
            kept = self._settled.get(label)
            if kept is None or kept[0] != key:
                kept = self._settled[label] = (key, {})
            return kept[1]

    def rows(self, label: str, *, now: datetime | None = None) -> tuple[list[FeatureRow], Catalog]:
        """Every feature on `label` with its last-24h usage, cost today and alarms."""
        now = (now or utcnow()).astimezone(UTC)
        catalog = self.catalog(label)
        since = window_start(now, WINDOW)
        hour = hour_of(now)
        live_start = hour if now - hour >= SETTLE else hour - timedelta(hours=1)
        today = _day_start(now)
        closed = self._closed_usage(since, live_start, today)
        settled = self._settled_figures(label, (catalog.generation, since, live_start, today))
        with Session(self.engine) as session:
            live = _usage(session, live_start, None, today=today)
        rows = []
        for entry in catalog.entries:
            fid = entry.feature_id
            row = FeatureRow(
                entry.name,
                entry.retired,
                entry.version,
                entry.pinned,
                entry.updated_at,
                entry.rollout,
            )
            policy = catalog.policies.get(fid)
            figures: Figures | None
            if fid in live.sums:
                parts = [u for u in (closed, live) if fid in u.sums]
                figures = _figures(parts, fid, policy, since=since, today=today)
            elif fid in closed.sums:
                figures = settled.get(fid)
                if figures is None:
                    figures = settled[fid] = _figures(
                        [closed], fid, policy, since=since, today=today
                    )
            else:
                figures = None
            if figures is not None:
                row.requests, row.error_pct, row.p95_ms, row.cost_today, row.alarms = figures
            rows.append(row)
        return rows, catalog


def _figures(
    parts: list[Usage], fid: int, policy: Policy | None, *, since: datetime, today: datetime
) -> Figures:
    """Requests, error %, p95, cost today and alarms of a feature over some usage parts."""
    totals = Totals()
    for part in parts:
        totals.add(part.sums[fid])
        for bucket, count in part.histograms.get(fid, {}).items():
            totals.histogram[bucket] += count
    cost_today = sum(float(part.sums[fid]["cost_today"]) for part in parts)
    daily = {today.date(): cost_today}
    if since < today:
        daily[(today - timedelta(days=1)).date()] = totals.cost_usd - cost_today
    p95 = percentile(totals.histogram, 95)
    return (
        totals.requests,
        totals.error_rate_pct,
        None if p95 is None else round(p95, 1),
        round(cost_today, 6),
        alarms(policy, totals, daily),
    )


def _day_start(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def _usage(session: Session, since: datetime, until: datetime | None, *, today: datetime) -> Usage:
    """Rollup sums and latency histograms per feature over hours in [since, until)."""
    window = [_R.c.feature_id == _F.c.id, _R.c.hour >= since]
    if until is not None:
        window.append(_R.c.hour < until)
    today_cost = func.sum(case((_R.c.hour >= today, _R.c.cost_usd), else_=0.0))
    stmt = (
        sa_select(_F.c.id, *(func.sum(_R.c[name]).label(name) for name in ROLLUP_SUMS))
        .add_columns(today_cost.label("cost_today"))
        .select_from(_F.join(_R, and_(*window)))
        .group_by(_F.c.id)
    )
    usage = Usage()
    for row in session.execute(stmt).mappings():
        usage.sums[int(row["id"])] = dict(row)
    latency = [_L.c.feature_id == _F.c.id, _L.c.hour >= since]
    if until is not None:
        latency.append(_L.c.hour < until)
    hist = (
        sa_select(_F.c.id, _L.c.bucket, func.sum(_L.c.count))
        .select_from(_F.join(_L, and_(*latency)))
        .group_by(_F.c.id, _L.c.bucket)
    )
    for fid, bucket, count in session.execute(hist):
        usage.histograms.setdefault(int(fid), {})[int(bucket)] = int(count)
    return usage


# -- the page's controls --------------------------------------------------------------------------

SORTS: Mapping[str, Callable[[FeatureRow], Any]] = {
    "name": lambda r: r.name,
    "version": lambda r: r.version or 0,
    "requests": lambda r: r.requests,
    "errors": lambda r: -1.0 if r.error_pct is None else r.error_pct,
    "p95": lambda r: -1.0 if r.p95_ms is None else r.p95_ms,
    "cost": lambda r: r.cost_today,
    "alarms": lambda r: len(r.alarms),
    "updated": lambda r: r.updated_at or datetime.min.replace(tzinfo=UTC),
}
SHOWS = {
    "all": "every feature",
    "alarms": "with alarms",
    "rollouts": "rolling out",
    "pinned": "pinned",
    "retired": "retired",
}


def select_rows(rows: list[FeatureRow], *, query: str, show: str) -> list[FeatureRow]:
    """The rows whose name contains `query` and that `show` keeps."""
    needle = query.strip().lower()
    keep: Callable[[FeatureRow], bool] = {
        "all": lambda r: True,
        "alarms": lambda r: bool(r.alarms),
        "rollouts": lambda r: r.rollout is not None and r.rollout.active,
        "pinned": lambda r: r.pinned,
        "retired": lambda r: r.retired,
    }[show]
    return [r for r in rows if (not needle or needle in r.name.lower()) and keep(r)]


def sort_rows(rows: list[FeatureRow], *, by: str, descending: bool) -> list[FeatureRow]:
    """The rows in order of column `by` (ties by name)."""
    ordered = sorted(rows, key=lambda r: r.name)
    return sorted(ordered, key=SORTS[by], reverse=descending)
