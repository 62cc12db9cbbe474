"""Rollups: events summed per (feature, hour, version, model) and per (feature, minute,
version), with latency histograms (buckets and percentiles: `registry.usage.latency`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from registry.outcomes import ANSWERED, NO_CALL
from registry.store.models import MINUTE_SUMS, ROLLUP_SUMS, USAGE_OUTCOMES
from registry.usage.latency import bucket_bounds, latency_bucket, percentile

OUTCOME_COLUMNS = USAGE_OUTCOMES  # one count column per outcome in usage_rollups
RollupKey = tuple[int, datetime, int, str]  # feature_id, hour, version, model


def hour_of(at: datetime) -> datetime:
    """The start of the UTC hour `at` falls in."""
    return at.replace(minute=0, second=0, microsecond=0)


def minute_of(at: datetime) -> datetime:
    """The start of the UTC minute `at` falls in."""
    return at.replace(second=0, microsecond=0)


def aggregate(
    rows: Iterable[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rollup rows and latency-bucket rows for stored events, each sorted by key.

    Sorted keys make concurrent ingestions lock the same rows in the same order (no
    deadlock on PostgreSQL); one row per key lets a single multi-row upsert apply them.
    """
    sums: dict[RollupKey, dict[str, Any]] = {}
    buckets: dict[tuple[int, datetime, int, str, int], int] = {}
    for row in rows:
        key = (row["feature_id"], hour_of(row["at"]), row["version"], row["model"])
        total = sums.get(key)
        if total is None:
            total = sums[key] = dict.fromkeys(ROLLUP_SUMS, 0)
            total["cost_usd"] = total["latency_ms_sum"] = 0.0
        total["requests"] += 1
        total[row["outcome"]] += 1
        total["input_tokens"] += row["input_tokens"]
        total["output_tokens"] += row["output_tokens"]
        total["estimated_input_tokens"] += row["estimated_input_tokens"]
        if row["outcome"] in ANSWERED and row["estimated_input_tokens"] > 0:
            total["drift_input_tokens"] += row["input_tokens"]
            total["drift_estimated_tokens"] += row["estimated_input_tokens"]
        total["cost_usd"] += row["cost_usd"] or 0.0
        if row["outcome"] != NO_CALL:
            total["latency_ms_sum"] += row["latency_ms"]
            bucket_key = (*key, latency_bucket(row["latency_ms"]))
            buckets[bucket_key] = buckets.get(bucket_key, 0) + 1
    names = ("feature_id", "hour", "version", "model")
    rollups = [{**dict(zip(names, key, strict=True)), **sums[key]} for key in sorted(sums)]
    latency = [
        {**dict(zip(names, key[:4], strict=True)), "bucket": key[4], "count": buckets[key]}
        for key in sorted(buckets)
    ]
    return rollups, latency


def aggregate_minutes(
    rows: Iterable[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Minute rows and their latency-bucket rows (per feature, minute, version), sorted.

    What the rollout guards compare: outcome counts, cost with its sum of squares (so the
    variance of the mean cost is known), latency and token drift.
    """
    sums: dict[tuple[int, datetime, int], dict[str, Any]] = {}
    buckets: dict[tuple[int, datetime, int, int], int] = {}
    for row in rows:
        key = (row["feature_id"], minute_of(row["at"]), row["version"])
        total = sums.get(key)
        if total is None:
            total = sums[key] = dict.fromkeys(MINUTE_SUMS, 0)
            total["cost_usd"] = total["cost_usd_sq"] = total["latency_ms_sum"] = 0.0
        total["requests"] += 1
        total[row["outcome"]] += 1
        cost = row["cost_usd"]
        if cost is not None:
            total["cost_usd"] += cost
            total["cost_usd_sq"] += cost * cost
            total["cost_n"] += 1
        if row["outcome"] in ANSWERED and row["estimated_input_tokens"] > 0:
            total["drift_input_tokens"] += row["input_tokens"]
            total["drift_estimated_tokens"] += row["estimated_input_tokens"]
        if row["outcome"] != NO_CALL:
            total["latency_ms_sum"] += row["latency_ms"]
            bucket_key = (*key, latency_bucket(row["latency_ms"]))
            buckets[bucket_key] = buckets.get(bucket_key, 0) + 1
    names = ("feature_id", "minute", "version")
    minutes = [{**dict(zip(names, key, strict=True)), **sums[key]} for key in sorted(sums)]
    latency = [
        {**dict(zip(names, key[:3], strict=True)), "bucket": key[3], "count": buckets[key]}
        for key in sorted(buckets)
    ]
    return minutes, latency


__all__ = ["aggregate", "aggregate_minutes", "bucket_bounds", "hour_of", "latency_bucket"]
__all__ += ["minute_of", "percentile", "ANSWERED", "NO_CALL", "OUTCOME_COLUMNS"]
