"""`promptreg sync`: import a ref's git history into versions and move its label."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from registry.cli.backend import (
    Target,
    backend_options,
    database_backend,
    os_user,
    remote_backend,
)
from registry.cli.files import PoliciesDirOption, PromptsDirOption, layout_of
from registry.cli.output import console, fail, print_json

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from registry.config import Settings
    from registry.sync import SyncSummary


@backend_options()
def sync(
    repo: Annotated[
        str | None, typer.Option("--repo", help="Repository path or URL (default: .).")
    ] = None,
    ref: Annotated[
        str | None, typer.Option("--ref", help="Branch to read (default: the checked-out one).")
    ] = None,
    no_history: Annotated[
        bool, typer.Option("--no-history", help="Import only the tip, not the history.")
    ] = False,
    lock_timeout: Annotated[
        float, typer.Option("--lock-timeout", help="Seconds to wait for another sync.")
    ] = 300.0,
    prompts_dir: PromptsDirOption = None,
    policies_dir: PoliciesDirOption = None,
    *,
    target: Target,
) -> None:
    """Sync git history into versions; exit 1 when this run recorded errors.

    Through a server (--url or PROMPTREG_URL), the server syncs the repository, ref and
    label it is configured with, as `POST /v1/sync` does."""
    from registry.config import get_settings

    server = remote_backend(target.url, target.token)
    if server is not None:
        local = {
            "--repo": repo,
            "--ref": ref,
            "--label": target.label_option,
            "--no-history": no_history,
            "--prompts-dir": prompts_dir,
            "--policies-dir": policies_dir,
        }
        if given := [name for name, value in local.items() if value]:
            fail(
                f"{', '.join(given)}: through --url the server syncs the repository, ref and "
                "label it is configured with (its PROMPTREG_REPO, PROMPTREG_REF, PROMPTREG_LABEL)",
                code=2,
            )
        summary = server.sync(wait_s=lock_timeout + 300)  # the same shape as as_dict()
    else:
        engine = database_backend(target.database_url).engine
        summary = _run(
            engine,
            get_settings(),
            repo,
            ref,
            target.label,
            no_history,
            lock_timeout,
            target.as_json,
            prompts_dir,
            policies_dir,
        ).as_dict()
    if target.as_json:
        print_json(summary)
    else:
        _print(summary)
    if not summary["ok"]:
        raise typer.Exit(1)


def _run(
    engine: Engine,
    settings: Settings,
    repo: str | None,
    ref: str | None,
    label: str,
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
            label=label,
            layout=layout_of(prompts_dir, policies_dir),
            no_history=no_history,
            cache_dir=settings.cache_dir,
            lock_timeout_s=lock_timeout,
            actor=os_user(),
            progress=progress,
        )
    return summary


def _print(s: dict[str, Any]) -> None:
    """A sync's summary (`SyncSummary.as_dict()`, or a server's `POST /v1/sync` answer)."""
    start = s["from_commit"][:12] if s["from_commit"] else "the beginning"
    label = s["label"]
    console.print(
        f"synced {s['repo']} {s['ref']} → {label}: {s['commits']} commit(s) from {start} to "
        f"{s['to_commit'][:12]}, {s['versions_created']} new version(s), "
        f"{s['labels_moved']} label move(s)"
    )
    if s["rewritten_history"]:
        console.print("[yellow]history was rewritten: synced the new tip[/yellow]")
    for name in s["retired"]:
        console.print(f"retired {name} (policy deleted)")
    for name in s["unretired"]:
        console.print(f"restored {name} (policy back)")
    for name in s["rollouts_started"]:
        console.print(f"{name}: {label} is rolling out the new version (promptreg rollout status)")
    for name in s["pinned_skipped"]:
        console.print(f"{name}: {label} is pinned (rolled back); new version recorded, not live")
    for err in s["errors"]:
        line = f":{err['line']}" if err["line"] else ""
        console.print(
            f"[red]error[/red] {err['commit'][:12]} {err['file']}{line}: {err['message']}",
            markup=True,
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command()(sync)
