"""`promptreg checklist [FEATURE]`: the pre-ship list per feature, as a pass/fail table.

Required items guard users from a bad day (a budget that also watches drift, a fallback
model, a degraded message); `--strict` exits 1 when one fails. The others are advice:
streaming suits chat but not every feature, usage can only be seen once shipped, and a
feature's first version has nothing to roll back to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from registry.cli.backend import (
    Backend,
    DatabaseUrlOption,
    JsonOption,
    LabelOption,
    ServerUrlOption,
    TokenOption,
    backend_for,
)
from registry.cli.output import console, print_json
from registry.spec.policy import Policy


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


def facts_of(backend: Backend, name: str, label: str) -> Facts:
    """Gather one feature's facts from the database or a server."""
    live = backend.show(name, label, None)
    versions = [int(row["version"]) for row in backend.history(name)]
    usage = backend.stats(name, label, "24h")
    return Facts(
        version=int(live["version"]),
        policy=Policy.model_validate(live["policy"]),
        versions=versions,
        requests_24h=int(usage["requests"]),
    )


def _mark(item: Item) -> str:
    if item.passed:
        return "[green]pass[/green]"
    return "[bold red]FAIL[/bold red]" if item.required else "[yellow]advice[/yellow]"


def checklist(
    feature: Annotated[
        str | None, typer.Argument(help="One feature (default: every feature).", show_default=False)
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when a required item fails.")
    ] = False,
    label: LabelOption = "production",
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
    url: ServerUrlOption = None,
    token: TokenOption = None,
) -> None:
    """The pre-ship checklist per feature: budget, fallback, degraded message, usage..."""
    backend = backend_for(database_url, url, token)
    if feature is None:
        rows = backend.features(label)
        names = [r["name"] for r in rows if not r["retired"] and r["version"] is not None]
    else:
        names = [feature]
    results = {name: check(facts_of(backend, name, label)) for name in names}
    failed = sorted(name for name, items in results.items() if _failed_required(items))
    if as_json:
        print_json(
            [
                {"feature": name, "ok": name not in failed, "items": [asdict(i) for i in items]}
                for name, items in results.items()
            ]
        )
    else:
        _print(results, label)
        if failed:
            console.print(f"[red]required items fail for: {', '.join(failed)}[/red]")
    if strict and failed:
        raise typer.Exit(1)


def _failed_required(items: list[Item]) -> bool:
    return any(item.required and not item.passed for item in items)


def _print(results: dict[str, list[Item]], label: str) -> None:
    for name, items in results.items():
        table = Table(title=f"{name} ({label})", title_justify="left")
        for column in ("check", "", "required", "detail"):
            table.add_column(column)
        for item in items:
            table.add_row(
                item.title, _mark(item), "required" if item.required else "", escape(item.detail)
            )
        console.print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command()(checklist)
