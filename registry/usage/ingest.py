"""Usage ingestion: validate a batch, look up each event's version, store it all at once.

A batch is one transaction: the valid events, their rollup increments and histogram counts
commit together or not at all; invalid events are reported by index and reason and the
rest are kept. An event whose client id is already stored (a retried batch, or the same
id twice in one batch) is counted as a duplicate, never twice.

Versions are immutable, so what ingestion needs of one (its feature id and the model
prices it recorded) is cached in process after the first lookup; only unknown names and
numbers go to the database again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from registry.definitions.content import VersionContent
from registry.store import usage_crud
from registry.store.db import session_scope
from registry.store.models import utcnow
from registry.usage.events import Invalid, UsageEventIn, parse_event
from registry.usage.rollup import aggregate, aggregate_minutes

MAX_BATCH = 1000
VERSION_CACHE_SIZE = 4096


@dataclass(frozen=True)
class VersionInfo:
    """What ingestion needs of one version: its feature's id and its models' prices."""

    feature_id: int
    prices: dict[str, tuple[float | None, float | None]]  # model -> USD per input, output token

    def cost(self, event: UsageEventIn) -> float | None:
        """The reported cost, else the cost at the prices this version recorded."""
        if event.cost_usd is not None:
            return event.cost_usd
        per_in, per_out = self.prices.get(event.model, (None, None))
        if per_in is None or per_out is None:
            return None
        return event.input_tokens * per_in + event.output_tokens * per_out


def version_info(feature_id: int, content: str) -> VersionInfo:
    """The ingestion view of a stored version snapshot."""
    models = VersionContent.from_json(content).models
    return VersionInfo(
        feature_id,
        {
            name: (entry.input_usd_per_token, entry.output_usd_per_token)
            for name, entry in models.items()
        },
    )


@dataclass
class IngestResult:
    """What happened to a batch."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {index, reason}
    stored: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (feature, row)

    def as_dict(self) -> dict[str, Any]:
        """The API's answer."""
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


class Ingestor:
    """Stores usage batches into one database, caching version lookups."""

    def __init__(self, engine: Engine, *, cache_size: int = VERSION_CACHE_SIZE) -> None:
        self.engine = engine
        self.cache_size = cache_size
        self._versions: dict[tuple[str, int], VersionInfo] = {}
        self._lock = threading.Lock()

    def lookup(self, pairs: Iterable[tuple[str, int]]) -> dict[tuple[str, int], VersionInfo | str]:
        """Each (feature, version): its info, or the reason it cannot take usage."""
        out: dict[tuple[str, int], VersionInfo | str] = {}
        missing = []
        for pair in set(pairs):
            hit = self._versions.get(pair)
            if hit is None:
                missing.append(pair)
            else:
                out[pair] = hit
        if not missing:
            return out
        with Session(self.engine) as session:
            ids = usage_crud.find_features(session=session, names=(name for name, _ in missing))
            contents = usage_crud.find_versions(
                session=session,
                pairs=((ids[name], number) for name, number in missing if name in ids),
            )
        for name, number in missing:
            if name not in ids:
                out[(name, number)] = f"unknown feature {name!r}"
                continue
            content = contents.get((ids[name], number))
            if content is None:
                out[(name, number)] = f"feature {name!r} has no version {number}"
                continue
            info = out[(name, number)] = version_info(ids[name], content)
            self._remember((name, number), info)
        return out

    def _remember(self, key: tuple[str, int], info: VersionInfo) -> None:
        with self._lock:
            while len(self._versions) >= self.cache_size:
                self._versions.pop(next(iter(self._versions)))
            self._versions[key] = info

    def ingest(self, events: Sequence[Any], *, now: datetime | None = None) -> IngestResult:
        """Validate and store one batch (caller enforces MAX_BATCH); one transaction."""
        now = now or utcnow()
        result = IngestResult()
        valid: list[tuple[int, UsageEventIn]] = []
        seen: set[str] = set()
        for index, raw in enumerate(events):
            try:
                event = parse_event(raw, now)
            except Invalid as exc:
                result.rejected.append({"index": index, "reason": str(exc)})
                continue
            if event.id is not None:
                if event.id in seen:
                    result.duplicates += 1
                    continue
                seen.add(event.id)
            valid.append((index, event))
        infos = self.lookup((e.feature, e.version) for _, e in valid)
        rows: list[tuple[str, dict[str, Any]]] = []
        for index, event in valid:
            info = infos[(event.feature, event.version)]
            if isinstance(info, str):
                result.rejected.append({"index": index, "reason": info})
                continue
            rows.append((event.feature, _row(event, info, now)))
        result.rejected.sort(key=lambda r: int(r["index"]))
        if rows:
            stored = self._store([row for _, row in rows])
            result.stored = [
                (name, row)
                for name, row in rows
                if row["event_id"] is None or row["event_id"] in stored
            ]
        result.accepted = len(result.stored)
        result.duplicates += len(rows) - result.accepted
        return result

    def _store(self, rows: list[dict[str, Any]]) -> set[str | None]:
        with session_scope(self.engine, write=True) as session:
            stored: set[str | None] = set(usage_crud.insert_events(session=session, rows=rows))
            kept = [r for r in rows if r["event_id"] is None or r["event_id"] in stored]
            rollups, latency = aggregate(kept)
            usage_crud.add_rollups(session=session, rows=rollups)
            usage_crud.add_latency(session=session, rows=latency)
            minutes, minute_latency = aggregate_minutes(kept)
            usage_crud.add_minutes(session=session, rows=minutes)
            usage_crud.add_minute_latency(session=session, rows=minute_latency)
        return stored


def _row(event: UsageEventIn, info: VersionInfo, now: datetime) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "feature_id": info.feature_id,
        "version": event.version,
        "model": event.model,
        "outcome": event.outcome,
        "input_tokens": event.input_tokens,
        "output_tokens": event.output_tokens,
        "estimated_input_tokens": event.estimated_input_tokens,
        "latency_ms": event.latency_ms,
        "cost_usd": info.cost(event),
        "at": event.at,
        "received_at": now,
    }
