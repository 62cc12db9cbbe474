"""One usage event as a client posts it: the fields, their limits, and a clear reason when not.

Validation is hand-written rather than a pydantic model so that every rejection reads as
one sentence naming the field and the value (`input_tokens -5 is negative`), and because it
runs once per event on the ingestion path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from registry.definitions.policy import FEATURE_NAME
from registry.outcomes import ERROR_OUTCOMES
from registry.store.models import EVENT_ID_LENGTH, MAX_VERSION, NAME_LENGTH, USAGE_OUTCOMES

MAX_TOKENS = 10_000_000  # over the largest context window of any model: a client bug
MAX_LATENCY_MS = 3_600_000.0  # one hour; policies give a model call seconds
MAX_COST_USD = 1_000.0  # per call
FUTURE_SKEW = timedelta(minutes=5)  # clocks differ; a timestamp further ahead is a bug
MAX_AGE = timedelta(days=30)  # a client queue older than this is not usage to bill today

REQUIRED = (
    "feature",
    "version",
    "model",
    "input_tokens",
    "output_tokens",
    "latency_ms",
    "outcome",
    "estimated_input_tokens",
)
OPTIONAL = ("id", "cost_usd", "at")
_TOKEN_FIELDS = ("input_tokens", "output_tokens", "estimated_input_tokens")


@dataclass(frozen=True)
class UsageEventIn:
    """A usage event that passed validation (its feature and version not yet looked up)."""

    id: str | None
    feature: str
    version: int
    model: str
    input_tokens: int
    output_tokens: int
    estimated_input_tokens: int
    latency_ms: float
    outcome: str
    cost_usd: float | None
    at: datetime


class Invalid(ValueError):
    """An event failed validation; the message is the reason sent back."""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    if not (_is_int(value) or isinstance(value, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _text(raw: dict[str, Any], key: str, limit: int) -> str:
    value = raw[key]
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{key} must be a non-empty string")
    if len(value) > limit:
        raise Invalid(f"{key} is longer than {limit} characters")
    if "\x00" in value:
        raise Invalid(f"{key} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid(f"{key} is not valid Unicode (a lone surrogate)") from None
    return value


def _tokens(raw: dict[str, Any], key: str) -> int:
    value = raw[key]
    if not _is_int(value):
        raise Invalid(f"{key} must be an integer, got {_show(value)}")
    _in_range(key, value, MAX_TOKENS, f"{MAX_TOKENS:,} tokens in one call")
    return int(value)


def _number(raw: dict[str, Any], key: str, limit: float, unit: str) -> float:
    value = raw[key]
    if not _is_number(value):
        raise Invalid(f"{key} must be a finite number, got {_show(value)}")
    _in_range(key, value, limit, f"{limit:,g} {unit} for one call")
    return float(value)


def _in_range(key: str, value: float, limit: float, most: str) -> None:
    """Refuse a negative `value`, or one over `limit` (absurd: more than `most`)."""
    if value < 0:
        raise Invalid(f"{key} {value} is negative")
    if value > limit:
        raise Invalid(f"{key} {value} is absurd (more than {most})")


def _when(raw: dict[str, Any], now: datetime) -> datetime:
    value = raw.get("at")
    if value is None:
        return now
    if not isinstance(value, str):
        raise Invalid(f"at must be an ISO 8601 timestamp string, got {_show(value)}")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(f"at {_show(value)} is not an ISO 8601 timestamp") from None
    try:
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except OverflowError:
        raise Invalid(f"at {_show(value)} is out of range") from None
    if at > now + FUTURE_SKEW:
        raise Invalid(
            f"at {at.isoformat()} is in the future (more than {FUTURE_SKEW.seconds // 60} "
            f"minutes ahead of the server clock, {now.isoformat(timespec='seconds')})"
        )
    if at < now - MAX_AGE:
        raise Invalid(f"at {at.isoformat()} is more than {MAX_AGE.days} days old")
    return at


def parse_event(raw: Any, now: datetime) -> UsageEventIn:
    """Check one posted event; raises Invalid with the reason."""
    if not isinstance(raw, dict):
        raise Invalid("an event must be a JSON object")
    unknown = sorted(set(raw) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise Invalid(f"unknown field(s): {', '.join(map(str, unknown))}")
    missing = [key for key in REQUIRED if raw.get(key) is None]
    if missing:
        raise Invalid(f"missing field(s): {', '.join(missing)}")
    event_id = raw.get("id")
    if event_id is not None:
        event_id = _text(raw, "id", EVENT_ID_LENGTH)
    feature = _text(raw, "feature", NAME_LENGTH)
    if not FEATURE_NAME.match(feature):
        raise Invalid(f"feature {feature!r} is not a valid feature name")
    version = raw["version"]
    if not _is_int(version) or not 1 <= version <= MAX_VERSION:
        raise Invalid(f"version must be a positive integer, got {_show(version)}")
    outcome = raw["outcome"]
    if outcome not in USAGE_OUTCOMES:
        raise Invalid(f"unknown outcome {_show(outcome)} (one of {', '.join(USAGE_OUTCOMES)})")
    tokens = {key: _tokens(raw, key) for key in _TOKEN_FIELDS}
    cost = None
    if raw.get("cost_usd") is not None:
        cost = _number(raw, "cost_usd", MAX_COST_USD, "USD")
    return UsageEventIn(
        id=event_id,
        feature=feature,
        version=int(version),
        model=_text(raw, "model", NAME_LENGTH),
        latency_ms=_number(raw, "latency_ms", MAX_LATENCY_MS, "ms"),
        outcome=outcome,
        cost_usd=cost,
        at=_when(raw, now),
        **tokens,
    )


__all__ = ["ERROR_OUTCOMES", "Invalid", "UsageEventIn", "parse_event"]
