"""`promptreg stats [FEATURE]`: usage, latency, errors, cost and drift per feature, with alarms."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from registry.cli.backend import Backend, Target, backend_options
from registry.cli.output import console, print_json

if TYPE_CHECKING:
    from rich.table import Table

WindowOption = Annotated[
    str,
    typer.Option("--window", help="Whole UTC hours back from now: 90m, 24h, 7d (at most 90d)."),
]


def _num(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{suffix}"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _alarm_kinds(alarms: list[dict[str, Any]]) -> str:
    kinds = sorted({a["kind"].replace("_", " ") for a in alarms})
    return f"[bold red]{', '.join(kinds)}[/bold red]" if kinds else "[green]none[/green]"


def all_stats(backend: Backend, label: str, window: str) -> list[dict[str, Any]]:
    """Stats of every feature that is not retired, by name."""
    names = [row["name"] for row in backend.features(label) if not row["retired"]]
    return [backend.stats(name, label, window) for name in names]


def _summary_table(rows: list[dict[str, Any]], window: str) -> Table:
    from rich.table import Table

    table = Table(title=f"usage over the last {window} (UTC hours)")
    columns = (
        "feature",
        "requests",
        "p50 ms",
        "p95 ms",
        "error %",
        "tokens in",
        "tokens out",
        "cost today",
        "drift %",
        "alarms",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("feature", "alarms") else "right")
    for row in rows:
        latency, tokens = row["latency_ms"], row["tokens"]
        table.add_row(
            row["feature"],
            f"{row['requests']:,}",
            _num(latency["p50"]),
            _num(latency["p95"]),
            _num(row["error_rate_pct"], 1),
            f"{tokens['input']:,}",
            f"{tokens['output']:,}",
            _usd(row["cost_today_usd"]),
            _num(row["drift_pct"], 1, ""),
            _alarm_kinds(row["alarms"]),
        )
    return table


def _breakdown_table(data: dict[str, Any]) -> Table:
    from rich.table import Table

    table = Table(title=f"{data['feature']} per day, version and model")
    for column in ("day", "version", "model", "requests", "p50", "p95", "error %", "cost"):
        table.add_column(column, justify="left" if column in ("day", "model") else "right")
    table.add_column("drift %", justify="right")
    for row in data["rows"]:
        table.add_row(
            row["day"],
            str(row["version"]),
            row["model"],
            f"{row['requests']:,}",
            _num(row["latency_ms"]["p50"]),
            _num(row["latency_ms"]["p95"]),
            _num(row["error_rate_pct"], 1),
            _usd(row["cost_usd"]),
            _num(row["drift_pct"], 1),
        )
    return table


@backend_options()
def stats(
    feature: Annotated[
        str | None, typer.Argument(help="One feature (default: every feature).", show_default=False)
    ] = None,
    window: WindowOption = "24h",
    *,
    target: Target,
) -> None:
    """Requests, p50/p95 latency, error %, tokens, cost today, drift % and alarms."""
    label = target.label
    backend = target.backend()
    if feature is not None:
        data = backend.stats(feature, label, window)
        if target.as_json:
            print_json(data)
            return
        rows = [data]
    else:
        rows = all_stats(backend, label, window)
        if target.as_json:
            print_json(rows)
            return
    console.print(_summary_table(rows, window))
    if feature is not None and rows[0]["rows"]:
        console.print(_breakdown_table(rows[0]))
    from rich.markup import escape

    for row in rows:
        for alarm in row["alarms"]:
            console.print(
                f"[bold red]alarm[/bold red] {escape(row['feature'])}: {escape(alarm['message'])}",
                highlight=False,
            )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command()(stats)
