"""The pre-ship checklist: what a feature should have before it meets users.

Required items guard users from a bad day (a budget that also watches drift, a fallback
model, a degraded message). The others are advice: streaming suits chat but not every
feature, usage can only be seen once shipped, and a feature's first version has nothing
to roll back to. The CLI (`promptreg checklist`), the API and the dashboard all ask here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from registry.definitions.policy import Policy


@dataclass(frozen=True)
class Item:
    """One line of the checklist for one feature."""

    key: str
    title: str
    required: bool
    passed: bool
    detail: str


@dataclass(frozen=True)
class Facts:
    """What the checks look at: the live version's policy, the versions, recent usage."""

    version: int
    policy: Policy
    versions: list[int]
    requests_24h: int


def _stream(f: Facts) -> tuple[bool, str]:
    cap = f"max_output_tokens {f.policy.max_output_tokens}"
    return f.policy.stream, f"stream: true, {cap}" if f.policy.stream else f"not streamed ({cap})"


def _budget(f: Facts) -> tuple[bool, str]:
    budget = f.policy.budget
    limit = f"max_request_tokens {budget.max_request_tokens}"
    if budget.max_request_usd is not None:
        limit += f", max_request_usd {budget.max_request_usd:g}"
    if budget.drift_alarm_pct is None:
        return False, f"{limit}; budget.drift_alarm_pct not set"
    return True, f"{limit}; drift alarm at {budget.drift_alarm_pct:g}%"


def _fallback(f: Facts) -> tuple[bool, str]:
    chain = [ref.model for ref in f.policy.models]
    if len(set(chain)) > 1:
        return True, " → ".join(chain)
    return False, f"only {chain[0]} in models: add a fallback"


def _degraded(f: Facts) -> tuple[bool, str]:
    message = f.policy.degraded_message.strip()
    short = message if len(message) <= 50 else message[:47] + "..."
    return bool(message), repr(short) if message else "degraded_message is empty"


def _usage(f: Facts) -> tuple[bool, str]:
    if f.requests_24h:
        return True, f"{f.requests_24h:,} request(s) in the last 24 h"
    return False, "no usage reported in the last 24 h"


def _rollback(f: Facts) -> tuple[bool, str]:
    older = [v for v in f.versions if v < f.version]
    if older:
        return True, f"v{f.version} live, v{max(older)} to roll back to"
    return False, f"v{f.version} live, no earlier version"


CHECKS: list[tuple[str, str, bool, Callable[[Facts], tuple[bool, str]]]] = [
    ("stream", "streamed with a max length", False, _stream),
    ("budget", "per-request budget with a drift alarm", True, _budget),
    ("fallback", "a fallback model", True, _fallback),
    ("degraded", "a degraded message", True, _degraded),
    ("usage", "usage seen in the last 24 h", False, _usage),
    ("rollback", "versioned, with a rollback target", False, _rollback),
]


def check(facts: Facts) -> list[Item]:
    """Every checklist item for one feature."""
    items = []
    for key, title, required, test in CHECKS:
        passed, detail = test(facts)
        items.append(Item(key, title, required, passed, detail))
    return items


def failed_required(items: list[Item]) -> bool:
    """True when a required item fails."""
    return any(item.required and not item.passed for item in items)
