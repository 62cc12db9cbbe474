"""Rollups: events summed per (feature, hour, version, model) and per (feature, minute,
version), with latency histograms (buckets and percentiles: `registry.usage.latency`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from registry.outcomes import ANSWERED, NO_CALL
from registry.store.models import MINUTE_SUMS, ROLLUP_SUMS, USAGE_OUTCOMES
from registry.usage.latency import bucket_bounds, latency_bucket, percentile

OUTCOME_COLUMNS = USAGE_OUTCOMES  # one count column per outcome in usage_rollups


def hour_of(at: datetime) -> datetime:
    """The start of the UTC hour `at` falls in."""
    return at.replace(minute=0, second=0, microsecond=0)


def minute_of(at: datetime) -> datetime:
    """The start of the UTC minute `at` falls in."""
    return at.replace(second=0, microsecond=0)


Key = tuple[Any, ...]
Adder = Callable[[dict[str, Any], Mapping[str, Any]], None]


def _roll(
    rows: Iterable[Mapping[str, Any]],
    names: tuple[str, ...],
    key_of: Callable[[Mapping[str, Any]], Key],
    columns: tuple[str, ...],
    floats: tuple[str, ...],
    add: Adder,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of sums per key (`names`) and their latency-bucket rows, each sorted by key.

    Every row counts its request, its outcome, its token drift and (for calls) its latency;
    `add` sums the table's own columns. Sorted keys make concurrent ingestions lock the same
    rows in the same order (no deadlock on PostgreSQL); one row per key lets a single
    multi-row upsert apply them.
    """
    sums: dict[Key, dict[str, Any]] = {}
    buckets: dict[Key, int] = {}
    for row in rows:
        key = key_of(row)
        total = sums.get(key)
        if total is None:
            total = sums[key] = dict.fromkeys(columns, 0)
            total.update(dict.fromkeys(floats, 0.0))
        total["requests"] += 1
        total[row["outcome"]] += 1
        if row["outcome"] in ANSWERED and row["estimated_input_tokens"] > 0:
            total["drift_input_tokens"] += row["input_tokens"]
            total["drift_estimated_tokens"] += row["estimated_input_tokens"]
        add(total, row)
        if row["outcome"] != NO_CALL:
            total["latency_ms_sum"] += row["latency_ms"]
            bucket_key = (*key, latency_bucket(row["latency_ms"]))
            buckets[bucket_key] = buckets.get(bucket_key, 0) + 1
    width = len(names)
    rolled = [{**dict(zip(names, key, strict=True)), **sums[key]} for key in sorted(sums)]
    latency = [
        {**dict(zip(names, key[:width], strict=True)), "bucket": key[width], "count": count}
        for key, count in sorted(buckets.items())
    ]
    return rolled, latency


def _add_tokens_and_cost(total: dict[str, Any], row: Mapping[str, Any]) -> None:
    total["input_tokens"] += row["input_tokens"]
    total["output_tokens"] += row["output_tokens"]
    total["estimated_input_tokens"] += row["estimated_input_tokens"]
    total["cost_usd"] += row["cost_usd"] or 0.0


def _add_cost_moments(total: dict[str, Any], row: Mapping[str, Any]) -> None:
    cost = row["cost_usd"]
    if cost is not None:
        total["cost_usd"] += cost
        total["cost_usd_sq"] += cost * cost
        total["cost_n"] += 1


def aggregate(
    rows: Iterable[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rollup rows (per feature, hour, version, model) and their latency-bucket rows."""
    return _roll(
        rows,
        ("feature_id", "hour", "version", "model"),
        lambda row: (row["feature_id"], hour_of(row["at"]), row["version"], row["model"]),
        ROLLUP_SUMS,
        ("cost_usd", "latency_ms_sum"),
        _add_tokens_and_cost,
    )


def aggregate_minutes(
    rows: Iterable[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Minute rows (per feature, minute, version) and their latency-bucket rows.

    What the rollout guards compare: outcome counts, cost with its sum of squares (so the
    variance of the mean cost is known), latency and token drift.
    """
    return _roll(
        rows,
        ("feature_id", "minute", "version"),
        lambda row: (row["feature_id"], minute_of(row["at"]), row["version"]),
        MINUTE_SUMS,
        ("cost_usd", "cost_usd_sq", "latency_ms_sum"),
        _add_cost_moments,
    )


__all__ = ["aggregate", "aggregate_minutes", "bucket_bounds", "hour_of", "latency_bucket"]
__all__ += ["minute_of", "percentile", "ANSWERED", "NO_CALL", "OUTCOME_COLUMNS"]
