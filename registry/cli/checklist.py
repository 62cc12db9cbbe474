"""`promptreg checklist [FEATURE]`: the pre-ship list per feature, as a pass/fail table.

The checks live in `registry.checklist`; `--strict` exits 1 when a required item fails.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from registry.cli.backend import Backend, Target, backend_options
from registry.cli.output import console, print_json

if TYPE_CHECKING:
    from registry.checklist import Facts, Item


def facts_of(backend: Backend, name: str, label: str) -> Facts:
    """Gather one feature's facts from the database or a server."""
    from registry.checklist import Facts
    from registry.definitions.policy import Policy

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


@backend_options()
def checklist(
    feature: Annotated[
        str | None, typer.Argument(help="One feature (default: every feature).", show_default=False)
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when a required item fails.")
    ] = False,
    *,
    target: Target,
) -> None:
    """The pre-ship checklist per feature: budget, fallback, degraded message, usage..."""
    label = target.label
    from registry.checklist import check, failed_required

    backend = target.backend()
    if feature is None:
        rows = backend.features(label)
        names = [r["name"] for r in rows if not r["retired"] and r["version"] is not None]
    else:
        names = [feature]
    results = {name: check(facts_of(backend, name, label)) for name in names}
    failed = sorted(name for name, items in results.items() if failed_required(items))
    if target.as_json:
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


def _print(results: dict[str, list[Item]], label: str) -> None:
    from rich.markup import escape
    from rich.table import Table

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
