"""The `live` section of bench/rollout.py, part two: stats and guards at 100 M events.

Two fresh SQLite databases with the same registry get the same 30 days of
hourly rollups (and 24 h of minute rollups) for `bench.reply`, 2 versions × 2 models per
hour, written directly into the rollup tables with counts that sum to 1 M events in one and
100 M in the other (no raw events: rollups are what stats and guards read). Timed, medians
of 50: `feature_stats` over 24h and 30d, GET /v1/features/bench.reply/stats?window=30d on a
`promptreg serve` of each database, and the guards' read of a 10-minute window of both
arms (`usage_crud.minute_sums`). Printed as the 100 M figure over the 1 M one, measured in
the same run: the goal is the same speed (a ratio near 1; "goal met" up to 1.5).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rollout_live import FEATURE, Registry, serve, verdict
from sqlmodel import Session

from registry.store import usage_crud
from registry.store.db import session_scope
from registry.usage import feature_stats
from registry.usage.rollup import latency_bucket

GOAL_SCALE_RATIO = 1.5
TIMED = 50

HOURS = 30 * 24
MINUTES = 24 * 60
SHAPE = [math.exp(-((i - 12) ** 2) / 18) for i in range(25)]  # latency buckets around ~800 ms


def fill(registry: Registry, events: int, now: datetime) -> None:
    """The same rollup rows for 30 days (hours) and 24 h (minutes), counts summing to `events`."""
    with Session(registry.engine) as session:
        feature_id = usage_crud.find_features(session=session, names=[FEATURE])[FEATURE]
    hour0 = now.replace(minute=0, second=0, microsecond=0)
    keys = [(v, m) for v in (1, 2) for m in ("gpt-4o", "gpt-4o-mini")]
    per_row = events // (HOURS * len(keys))
    first_bucket = latency_bucket(800) - 12
    weights = [w / sum(SHAPE) for w in SHAPE]

    def sums(count: int) -> dict[str, Any]:
        errors = count // 50
        return {
            "requests": count,
            "ok": count - errors,
            "error": errors,
            "timeout": 0,
            "fallback": 0,
            "degraded": 0,
            "rejected": 0,
            "cost_usd": count * 0.002,
            "latency_ms_sum": count * 900.0,
            "drift_input_tokens": count * 1500,
            "drift_estimated_tokens": count * 1450,
        }

    rollups, latency = [], []
    for h in range(HOURS):
        hour = hour0 - timedelta(hours=h)
        for version, model in keys:
            # the first row takes the remainder: the counts sum to `events` exactly
            count = per_row + (events - per_row * HOURS * len(keys) if not rollups else 0)
            tokens = {
                "input_tokens": count * 1500,
                "output_tokens": count * 200,
                "estimated_input_tokens": count * 1450,
            }
            key = {"feature_id": feature_id, "hour": hour, "version": version, "model": model}
            rollups.append({**key, **sums(count), **tokens})
            latency += [
                {**key, "bucket": first_bucket + i, "count": round(per_row * w)}
                for i, w in enumerate(weights)
            ]
    minute0 = now.replace(second=0, microsecond=0)
    per_minute = events // (HOURS * 2) // 60
    minutes, minute_latency = [], []
    for m in range(MINUTES):
        for version in (1, 2):
            key = {
                "feature_id": feature_id,
                "minute": minute0 - timedelta(minutes=m),
                "version": version,
            }
            squares = {"cost_usd_sq": per_minute * 0.002**2 * 2, "cost_n": per_minute}
            minutes.append({**key, **sums(per_minute), **squares})
            minute_latency += [
                {**key, "bucket": first_bucket + i, "count": round(per_minute * w)}
                for i, w in enumerate(weights)
            ]
    with session_scope(registry.engine, write=True) as session:
        for add, rows in (
            (usage_crud.add_rollups, rollups),
            (usage_crud.add_latency, latency),
            (usage_crud.add_minutes, minutes),
            (usage_crud.add_minute_latency, minute_latency),
        ):
            for start in range(0, len(rows), 5000):
                add(session=session, rows=rows[start : start + 5000])


def median_ms(fn: Callable[[], Any], repeat: int = TIMED) -> tuple[float, Any]:
    fn()  # warm: the first call pays for imports and caches
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def measure(registry: Registry, events: int, now: datetime, log: Path) -> dict[str, float]:
    """Median milliseconds of each query over one filled database."""
    with Session(registry.engine) as session:
        feature_id = usage_crud.find_features(session=session, names=[FEATURE])[FEATURE]

    def stats(window: str) -> dict[str, Any]:
        with Session(registry.engine) as session:
            return feature_stats(session, FEATURE, window=window, now=now)

    def guards_window() -> None:
        with Session(registry.engine) as session:
            for version in (1, 2):
                usage_crud.minute_sums(
                    session=session,
                    feature_id=feature_id,
                    version=version,
                    since=now - timedelta(minutes=10),
                    until=now + timedelta(minutes=1),
                )

    row: dict[str, float] = {}
    row["feature_stats 24h"], day = median_ms(lambda: stats("24h"))
    row["feature_stats 30d"], month = median_ms(lambda: stats("30d"))
    row["guards' 10-minute window"], _ = median_ms(guards_window)
    headers = {"Authorization": f"Bearer {registry.token}"}
    with serve(registry.url, log) as base, httpx.Client(base_url=base, headers=headers) as http:
        row["GET …/stats?window=30d"], answer = median_ms(
            lambda: http.get(f"/v1/features/{FEATURE}/stats", params={"window": "30d"}).json()
        )
    print(
        f"  {events:>11,} events: stats over 30d count {month['requests']:,} requests "
        f"(24h: {day['requests']:,}; through the API: {answer['requests']:,})"
    )
    return row


def stats_at_scale(work: Path) -> None:
    print(
        f"\nstats at scale: {HOURS} hourly and {MINUTES} minute rollups of bench.reply "
        f"(2 versions × 2 models) summing to 1 M and to 100 M events, SQLite, medians of {TIMED}"
    )
    now = datetime.now(UTC)
    figures: dict[int, dict[str, float]] = {}
    for events in (1_000_000, 100_000_000):
        registry = Registry(work / f"scale-{events}")
        try:
            fill(registry, events, now)
            figures[events] = measure(registry, events, now, work / f"scale-{events}.log")
        finally:
            registry.engine.dispose()
    print(f"  {'query':<28} {'1 M':>9} {'100 M':>9} {'ratio':>7}")
    for name in figures[1_000_000]:
        small, large = figures[1_000_000][name], figures[100_000_000][name]
        ratio = large / small
        print(
            f"  {name:<28} {small:>6.2f} ms {large:>6.2f} ms {ratio:>6.2f}x  "
            f"({verdict(ratio <= GOAL_SCALE_RATIO)})"
        )
