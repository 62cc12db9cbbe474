"""Moments for usage events that must count as "today" whatever the time of day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def earlier_today(minutes: float) -> datetime:
    """`minutes` ago, or midnight (UTC) if that was yesterday: at 00:01 it is still today."""
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return max(now - timedelta(minutes=minutes), midnight)
