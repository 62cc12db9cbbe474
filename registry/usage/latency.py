"""Latency histograms: log-spaced buckets, and percentiles read from merged counts.

Eight buckets per doubling (each spans a factor 2^(1/8) ≈ 1.09), so a percentile read
from merged buckets is within ~4.5% of the exact value, and merging hours, minutes,
versions and models is adding counts. Bucket 0 holds calls under 1 ms. Pure arithmetic:
the rollout guards and simulator use it without the database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

BUCKETS_PER_DOUBLING = 8


def latency_bucket(ms: float) -> int:
    """The histogram bucket of a latency in milliseconds."""
    if ms < 1:
        return 0
    return 1 + math.floor(math.log2(ms) * BUCKETS_PER_DOUBLING)


def bucket_bounds(bucket: int) -> tuple[float, float]:
    """The [low, high) latency range in milliseconds of a bucket."""
    if bucket <= 0:
        return 0.0, 1.0
    return 2 ** ((bucket - 1) / BUCKETS_PER_DOUBLING), 2 ** (bucket / BUCKETS_PER_DOUBLING)


def percentile(histogram: Mapping[int, int], pct: float) -> float | None:
    """The `pct` percentile of a bucket histogram, interpolated inside its bucket."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = pct / 100 * total
    seen = 0
    for bucket in sorted(histogram):
        count = histogram[bucket]
        if count <= 0:
            continue
        if seen + count >= rank:
            low, high = bucket_bounds(bucket)
            return low + (high - low) * max(0.0, rank - seen) / count
        seen += count
    return bucket_bounds(max(histogram))[1]  # unreachable unless counts are negative
