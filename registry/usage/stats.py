"""Stats of one feature over a window, read from the hourly rollups, with its alarms.

A window is whole UTC hours: `24h` is the current hour and the 23 before it. Alarms use
the policy of the version the label points at (the live one): a day's spend over
`budget.daily_usd`, real input tokens over the estimate by more than
`budget.drift_alarm_pct`, and an error rate over `circuit_breaker.failure_rate_pct`
(once `circuit_breaker.min_requests` calls were made, as the breaker itself waits).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlmodel import Session

from registry import labels
from registry.config import DEFAULT_LABEL
from registry.definitions.content import VersionContent
from registry.definitions.policy import Policy
from registry.errors import BadWindow
from registry.outcomes import ERROR_OUTCOMES
from registry.store import crud, usage_crud
from registry.store.models import Feature, utcnow
from registry.usage.rollup import OUTCOME_COLUMNS, hour_of, percentile

_WINDOW = re.compile(r"^\s*(\d{1,6})\s*([mhd])\s*$")
_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
MAX_WINDOW = timedelta(days=90)
HOUR = timedelta(hours=1)


def parse_window(text: str) -> timedelta:
    """`24h` → 24 hours; minutes (`m`), hours (`h`) and days (`d`), up to 90 days."""
    match = _WINDOW.match(text)
    if not match:
        raise BadWindow(f"window {text!r} is not a duration like 90m, 24h or 7d")
    span = int(match.group(1)) * _UNIT[match.group(2)]
    if span <= timedelta(0) or span > MAX_WINDOW:
        raise BadWindow(f"window {text!r} must be more than 0 and at most {MAX_WINDOW.days}d")
    return span


def window_start(now: datetime, span: timedelta) -> datetime:
    """The first hour of a window of `span` ending now (whole hours, the current one included)."""
    return hour_of(now) - (math.ceil(span / HOUR) - 1) * HOUR


def _pct(part: float, whole: float) -> float | None:
    return None if whole <= 0 else round(100 * part / whole, 2)


@dataclass
class Totals:
    """Sums over some rollup rows, with their merged latency histogram."""

    requests: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOME_COLUMNS, 0))
    input_tokens: int = 0
    output_tokens: int = 0
    estimated_input_tokens: int = 0
    drift_input_tokens: int = 0
    drift_estimated_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms_sum: float = 0.0
    histogram: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, row: Mapping[str, Any]) -> None:
        """Add the sums of some rollup rows."""
        self.requests += int(row["requests"])
        for outcome in OUTCOME_COLUMNS:
            self.outcomes[outcome] += int(row[outcome])
        self.input_tokens += int(row["input_tokens"])
        self.output_tokens += int(row["output_tokens"])
        self.estimated_input_tokens += int(row["estimated_input_tokens"])
        self.drift_input_tokens += int(row["drift_input_tokens"])
        self.drift_estimated_tokens += int(row["drift_estimated_tokens"])
        self.cost_usd += float(row["cost_usd"])
        self.latency_ms_sum += float(row["latency_ms_sum"])

    @property
    def calls(self) -> int:
        """Requests that called a model (budget rejections did not)."""
        return self.requests - self.outcomes["rejected"]

    @property
    def errors(self) -> int:
        """Calls that gave the user no model answer."""
        return sum(self.outcomes[o] for o in ERROR_OUTCOMES)

    @property
    def error_rate_pct(self) -> float | None:
        """Errors per call, in percent."""
        return _pct(self.errors, self.calls)

    @property
    def drift_pct(self) -> float | None:
        """How far real input tokens exceed the estimate (negative: below it), in percent."""
        diff = self.drift_input_tokens - self.drift_estimated_tokens
        return _pct(diff, self.drift_estimated_tokens)

    def latency(self) -> dict[str, float | None]:
        """p50, p95 and mean latency in milliseconds."""

        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 1)

        mean = self.latency_ms_sum / self.calls if self.calls > 0 else None
        return {
            "p50": rounded(percentile(self.histogram, 50)),
            "p95": rounded(percentile(self.histogram, 95)),
            "mean": rounded(mean),
        }

    def as_dict(self) -> dict[str, Any]:
        """The API's shape of these sums."""
        return {
            "requests": self.requests,
            "outcomes": dict(self.outcomes),
            "error_rate_pct": self.error_rate_pct,
            "latency_ms": self.latency(),
            "tokens": {
                "input": self.input_tokens,
                "output": self.output_tokens,
                "estimated_input": self.estimated_input_tokens,
            },
            "cost_usd": round(self.cost_usd, 6),
            "drift_pct": self.drift_pct,
        }


def _live_policy(
    session: Session, feature: Feature, label: str
) -> tuple[int | None, Policy | None]:
    resolved = crud.resolve_label(session=session, feature=feature, name=label)
    version = resolved[1] if resolved else crud.latest_version(session=session, feature=feature)
    if version is None:
        return None, None
    return version.version, VersionContent.from_json(version.content).policy_model


def _alarm(kind: str, value: float, threshold: float, message: str) -> dict[str, Any]:
    return {"kind": kind, "value": round(value, 6), "threshold": threshold, "message": message}


def alarms(
    policy: Policy | None, totals: Totals, daily_cost: dict[date, float]
) -> list[dict[str, Any]]:
    """The alarms `totals` (a window) and `daily_cost` (spend per UTC day) raise."""
    if policy is None:
        return []
    out = []
    daily_usd = policy.budget.daily_usd
    for day, cost in sorted(daily_cost.items()):
        if daily_usd is not None and cost > daily_usd:
            out.append(
                _alarm(
                    "daily_budget",
                    cost,
                    daily_usd,
                    f"spend on {day.isoformat()} is ${cost:.2f}, over budget.daily_usd "
                    f"${daily_usd:g}",
                )
            )
    drift, limit = totals.drift_pct, policy.budget.drift_alarm_pct
    if drift is not None and limit is not None and drift > limit:
        out.append(
            _alarm(
                "drift",
                drift,
                limit,
                f"real input tokens are {drift:+.1f}% over the estimate, over "
                f"budget.drift_alarm_pct {limit:g}%",
            )
        )
    breaker = policy.circuit_breaker
    rate = totals.error_rate_pct
    if (
        rate is not None
        and totals.calls >= breaker.min_requests
        and rate > breaker.failure_rate_pct
    ):
        out.append(
            _alarm(
                "error_rate",
                rate,
                breaker.failure_rate_pct,
                f"{rate:.1f}% of {totals.calls} calls failed, over "
                f"circuit_breaker.failure_rate_pct {breaker.failure_rate_pct:g}%",
            )
        )
    return out


def feature_stats(
    session: Session,
    name: str,
    *,
    label: str = DEFAULT_LABEL,
    window: str = "24h",
    now: datetime | None = None,
) -> dict[str, Any]:
    """Usage of a feature over a window: totals, per (day, version, model) rows, alarms."""
    now = (now or utcnow()).astimezone(UTC)
    span = parse_window(window)
    feature = labels.feature_or_404(session, name)
    assert feature.id is not None
    live, policy = _live_policy(session, feature, label)
    since = window_start(now, span)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)

    total = Totals()
    rows: dict[tuple[date, int, str], Totals] = defaultdict(Totals)
    daily: dict[date, float] = defaultdict(float)
    for row in usage_crud.daily_rollups(session=session, feature_id=feature.id, since=since):
        day = date.fromisoformat(row["day"])
        total.add(row)
        rows[(day, row["version"], row["model"])].add(row)
        daily[day] += float(row["cost_usd"])
    for day_text, version, model, bucket, count in usage_crud.daily_latency(
        session=session, feature_id=feature.id, since=since
    ):
        total.histogram[bucket] += count
        rows[(date.fromisoformat(day_text), version, model)].histogram[bucket] += count
    cost_today = (
        daily.get(today.date(), 0.0)
        if since <= today
        else usage_crud.cost_since(session=session, feature_id=feature.id, since=today)
    )
    daily[today.date()] = cost_today
    return {
        "feature": name,
        "label": label,
        "live_version": live,
        "window": window.strip(),
        "since": since.isoformat(),
        "until": now.isoformat(),
        **total.as_dict(),
        "cost_today_usd": round(cost_today, 6),
        "alarms": alarms(policy, total, daily),
        "rows": [
            {
                "day": day.isoformat(),
                "version": version,
                "model": model,
                **sums.as_dict(),
                "alarms": alarms(policy, sums, {}),
            }
            for (day, version, model), sums in sorted(rows.items())
        ],
    }
