"""`promptreg sync`: import a ref's git history into versions and move its label."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from registry.cli.backend import DatabaseUrlOption, JsonOption, database_backend, os_user
from registry.cli.files import PoliciesDirOption, PromptsDirOption, layout_of
from registry.cli.output import console, print_json

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from registry.config import Settings
    from registry.sync import SyncSummary


def sync(
    repo: Annotated[
        str | None, typer.Option("--repo", help="Repository path or URL (default: .).")
    ] = None,
    ref: Annotated[
        str | None, typer.Option("--ref", help="Branch to read (default: the checked-out one).")
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="Label to move (default: production).")
    ] = None,
    no_history: Annotated[
        bool, typer.Option("--no-history", help="Import only the tip, not the history.")
    ] = False,
    lock_timeout: Annotated[
        float, typer.Option("--lock-timeout", help="Seconds to wait for another sync.")
    ] = 300.0,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
    prompts_dir: PromptsDirOption = None,
    policies_dir: PoliciesDirOption = None,
) -> None:
    """Sync git history into versions; exit 1 when this run recorded errors."""
    from registry.config import get_settings

    engine = database_backend(database_url).engine
    summary = _run(
        engine,
        get_settings(),
        repo,
        ref,
        label,
        no_history,
        lock_timeout,
        as_json,
        prompts_dir,
        policies_dir,
    )
    if as_json:
        print_json(summary.as_dict())
    else:
        _print(summary)
    if not summary.ok:
        raise typer.Exit(1)


def _run(
    engine: Engine,
    settings: Settings,
    repo: str | None,
    ref: str | None,
    label: str | None,
    no_history: bool,
    lock_timeout: float,
    as_json: bool,
    prompts_dir: str | None,
    policies_dir: str | None,
) -> SyncSummary:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from registry.sync import sync_ref

    show_bar = not as_json and sys.stderr.isatty()
    with Progress(
        TextColumn("syncing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        disable=not show_bar,
        transient=True,
    ) as bar:
        task = bar.add_task("", total=None)

        def progress(done: int, total: int, sha: str) -> None:
            bar.update(task, completed=done, total=total, description=sha[:12])

        summary = sync_ref(
            engine,
            repo=repo or settings.repo,
            ref=ref or settings.ref,
            label=label or settings.label,
            layout=layout_of(prompts_dir, policies_dir),
            no_history=no_history,
            cache_dir=settings.cache_dir,
            lock_timeout_s=lock_timeout,
            actor=os_user(),
            progress=progress,
        )
    return summary


def _print(s: SyncSummary) -> None:
    start = s.from_commit[:12] if s.from_commit else "the beginning"
    console.print(
        f"synced {s.repo} {s.ref} → {s.label}: {s.commits} commit(s) from {start} to "
        f"{s.to_commit[:12]}, {s.versions_created} new version(s), {s.labels_moved} label move(s)"
    )
    if s.rewritten:
        console.print("[yellow]history was rewritten: synced the new tip[/yellow]")
    for name in s.retired:
        console.print(f"retired {name} (policy deleted)")
    for name in s.unretired:
        console.print(f"restored {name} (policy back)")
    for name in s.rollouts_started:
        console.print(
            f"{name}: {s.label} is rolling out the new version (promptreg rollout status)"
        )
    for name in s.pinned_skipped:
        console.print(f"{name}: {s.label} is pinned (rolled back); new version recorded, not live")
    for err in s.errors:
        line = f":{err['line']}" if err["line"] else ""
        console.print(
            f"[red]error[/red] {err['commit'][:12]} {err['file']}{line}: {err['message']}",
            markup=True,
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command()(sync)
