"""Keyword-only queries over the usage tables: ``f(*, session, ...)``, never committing.

Writes use the database's own upsert (``INSERT … ON CONFLICT``), spelled the same way on
SQLite and PostgreSQL: events with an already stored ``event_id`` are skipped, rollup and
histogram rows are incremented in place. Increments commute, so concurrent ingestions on
several replicas add up without reading first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, literal_column, tuple_
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from registry.errors import DatabaseError
from registry.store.models import (
    ACTIVE_STATES,
    MINUTE_SUMS,
    ROLLUP_SUMS,
    Feature,
    Label,
    Rollout,
    UsageEvent,
    UsageLatency,
    UsageMinute,
    UsageMinuteLatency,
    UsageRollup,
    Version,
)

ROLLUP_KEY = ("feature_id", "hour", "version", "model")
MINUTE_KEY = ("feature_id", "minute", "version")


def _table(model: type[Any]) -> Table:
    table: Table = model.__table__
    return table


# Built once per dialect: constructing an upsert (its `excluded` alias, its SET clause) costs
# more than running it on a batch of a hundred rows.
_statements: dict[tuple[str, str], Any] = {}


def _insert(session: Session, table: Table) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_nothing/_update`` and ``excluded``."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise DatabaseError(f"usage ingestion does not support database dialect {dialect!r}")


def _statement(session: Session, table: Table, build: Callable[[Any], Any]) -> Any:
    key = (session.get_bind().dialect.name, table.name)
    stmt = _statements.get(key)
    if stmt is None:
        stmt = _statements[key] = build(_insert(session, table))
    return stmt


def find_features(*, session: Session, names: Iterable[str]) -> dict[str, int]:
    """Feature ids by name, for those of `names` that exist."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    rows = session.exec(select(Feature.name, Feature.id).where(col(Feature.name).in_(wanted)))
    return {name: int(fid) for name, fid in rows.all() if fid is not None}


def find_versions(
    *, session: Session, pairs: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], str]:
    """The stored content of each (feature_id, version number) that exists."""
    wanted = sorted(set(pairs))
    if not wanted:
        return {}
    stmt = select(Version.feature_id, Version.version, Version.content).where(
        tuple_(col(Version.feature_id), col(Version.version)).in_(wanted)
    )
    return {(fid, number): content for fid, number, content in session.exec(stmt).all()}


def insert_events(*, session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Store events; one whose `event_id` is already stored is skipped. The ids stored."""
    table = _table(UsageEvent)
    with_id = sorted((r for r in rows if r["event_id"] is not None), key=lambda r: r["event_id"])
    without_id = [r for r in rows if r["event_id"] is None]
    stored: set[str] = set()
    if with_id:
        stmt = _statement(
            session,
            table,
            lambda insert: insert.on_conflict_do_nothing(index_elements=["event_id"]).returning(
                table.c.event_id
            ),
        )
        stored = set(session.execute(stmt, with_id).scalars().all())
    if without_id:
        session.execute(table.insert(), without_id)
    return stored


def _add(
    session: Session, table: Table, keys: Sequence[str], rows: Sequence[dict[str, Any]]
) -> None:
    if not rows:
        return

    def build(insert: Any) -> Any:
        sums = [c.name for c in table.columns if c.name not in (*keys, "id")]
        return insert.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: table.c[name] + insert.excluded[name] for name in sums},
        )

    session.execute(_statement(session, table, build), list(rows))


def add_rollups(*, session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Add rollup rows (one per key) to the stored sums, creating missing rows."""
    _add(session, _table(UsageRollup), ROLLUP_KEY, rows)


def add_latency(*, session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Add latency-bucket counts (one row per key and bucket), creating missing rows."""
    _add(session, _table(UsageLatency), (*ROLLUP_KEY, "bucket"), rows)


def add_minutes(*, session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Add minute rows (one per key) to the stored sums, creating missing rows."""
    _add(session, _table(UsageMinute), MINUTE_KEY, rows)


def add_minute_latency(*, session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Add minute latency-bucket counts, creating missing rows."""
    _add(session, _table(UsageMinuteLatency), (*MINUTE_KEY, "bucket"), rows)


def minute_sums(
    *, session: Session, feature_id: int, version: int, since: datetime, until: datetime
) -> tuple[dict[str, Any], dict[int, int]]:
    """One version's minute sums and latency histogram over minutes in [since, until)."""
    table = _table(UsageMinute)
    columns = [func.coalesce(func.sum(table.c[name]), 0).label(name) for name in MINUTE_SUMS]
    window = (
        (table.c.feature_id == feature_id)
        & (table.c.version == version)
        & (table.c.minute >= since)
        & (table.c.minute < until)
    )
    sums = dict(session.execute(sa_select(*columns).where(window)).mappings().one())
    latency = _table(UsageMinuteLatency)
    hist = session.execute(
        sa_select(latency.c.bucket, func.sum(latency.c.count))
        .where(
            (latency.c.feature_id == feature_id)
            & (latency.c.version == version)
            & (latency.c.minute >= since)
            & (latency.c.minute < until)
        )
        .group_by(latency.c.bucket)
    ).all()
    return sums, {int(bucket): int(count) for bucket, count in hist}


def drop_old_events(*, session: Session, before: datetime, limit: int) -> int:
    """Delete the raw events received before `before` among the `limit` oldest; how many."""
    # The oldest by primary key (ids grow as events arrive), not a search on received_at:
    # that column has no index, and a scan of the whole table to find nothing old (the
    # usual case) took 0.2 s per million events while holding the write lock.
    table = _table(UsageEvent)
    oldest = sa_select(table.c.id).order_by(table.c.id).limit(limit).scalar_subquery()
    result = session.execute(
        table.delete().where(table.c.id.in_(oldest), table.c.received_at < before)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def drop_old_minutes(*, session: Session, before: datetime, limit: int) -> int:
    """Delete up to `limit` minute rows (and histogram rows) older than `before`."""
    deleted = 0
    for model in (UsageMinute, UsageMinuteLatency):
        table = _table(model)
        ids = sa_select(table.c.id).where(table.c.minute < before).limit(limit)
        result = session.execute(table.delete().where(table.c.id.in_(ids.scalar_subquery())))
        deleted += int(getattr(result, "rowcount", 0) or 0)
    return deleted


def _day(session: Session, hour: Any) -> Any:
    """The UTC day (`YYYY-MM-DD`) of an hour column, summed over in the database."""
    # Constants as literals, not bound parameters: PostgreSQL must see the GROUP BY
    # expression as the very one selected.
    if session.get_bind().dialect.name == "postgresql":
        utc = func.timezone(literal_column("'UTC'"), hour)
        return func.to_char(utc, literal_column("'YYYY-MM-DD'"))
    return func.substr(hour, literal_column("1"), literal_column("10"))  # naive UTC text


def daily_rollups(*, session: Session, feature_id: int, since: datetime) -> list[dict[str, Any]]:
    """The feature's usage from the hour `since` on, summed per (day, version, model)."""
    t = _table(UsageRollup)
    day = _day(session, t.c.hour).label("day")
    stmt = (
        sa_select(day, t.c.version, t.c.model, *(func.sum(t.c[n]).label(n) for n in ROLLUP_SUMS))
        .where(t.c.feature_id == feature_id, t.c.hour >= since)
        .group_by(day, t.c.version, t.c.model)
    )
    return [dict(row._mapping) for row in session.execute(stmt)]


def daily_latency(
    *, session: Session, feature_id: int, since: datetime
) -> list[tuple[str, int, str, int, int]]:
    """(day, version, model, bucket, count) of the feature's latency from the hour `since` on."""
    t = _table(UsageLatency)
    day = _day(session, t.c.hour).label("day")
    stmt = (
        sa_select(day, t.c.version, t.c.model, t.c.bucket, func.sum(t.c.count))
        .where(t.c.feature_id == feature_id, t.c.hour >= since)
        .group_by(day, t.c.version, t.c.model, t.c.bucket)
    )
    return [(r[0], r[1], r[2], r[3], int(r[4])) for r in session.execute(stmt)]


def cost_since(*, session: Session, feature_id: int, since: datetime) -> float:
    """The feature's summed cost from the hour `since` on."""
    stmt = select(func.coalesce(func.sum(UsageRollup.cost_usd), 0.0)).where(
        UsageRollup.feature_id == feature_id, col(UsageRollup.hour) >= since
    )
    return float(session.exec(stmt).one())


def active_versions(*, session: Session) -> list[tuple[str, str, int]]:
    """(feature, label, version) for every label of every feature that is not retired."""
    stmt = (
        select(Feature.name, Label.name, Version.version)
        .join(Label, col(Label.feature_id) == Feature.id)
        .join(Version, col(Version.id) == Label.version_id)
        .where(col(Feature.retired).is_(False))
        .order_by(col(Feature.name), col(Label.name))
    )
    return [(feature, label, int(version)) for feature, label, version in session.exec(stmt).all()]


def rollout_percents(*, session: Session, label: str) -> list[tuple[str, int]]:
    """(feature, percent) of every running or paused rollout on `label`."""
    stmt = (
        select(Feature.name, Rollout.percent)
        .join(Rollout, col(Rollout.feature_id) == Feature.id)
        .where(Rollout.label == label, col(Rollout.state).in_(ACTIVE_STATES))
    )
    return [(name, int(percent)) for name, percent in session.exec(stmt).all()]


def rollout_aborts(*, session: Session, label: str) -> dict[tuple[str, str], int]:
    """How many rollouts on `label` were aborted, per (feature, guard)."""
    stmt = (
        select(Feature.name, Rollout.decisions)
        .join(Rollout, col(Rollout.feature_id) == Feature.id)
        .where(Rollout.label == label, Rollout.state == "aborted")
    )
    counts: dict[tuple[str, str], int] = {}
    for name, decisions in session.exec(stmt).all():
        last = json.loads(decisions)[-1] if decisions else {}
        guard = str(last.get("guard") or "manual")
        counts[(name, guard)] = counts.get((name, guard), 0) + 1
    return counts
