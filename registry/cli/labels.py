"""Label commands: `features`, `show`, `history`, `rollback`, `promote`, `audit`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from registry.cli.backend import ReasonOption, Target, backend_options, database_backend, os_user
from registry.cli.output import console, fail, print_json


def _short(value: str | None, width: int = 12) -> str:
    return (value or "")[:width]


def _when(value: str | None) -> str:
    return (value or "").replace("T", " ")[:19]


@backend_options()
def features(*, target: Target) -> None:
    """List every feature with the version its label points at."""
    label = target.label
    rows = target.backend().features(label)
    if target.as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(title=f"features ({label})")
    for column in ("feature", "version", "pinned", "updated", "state"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"],
            "-" if row["version"] is None else str(row["version"]),
            "pinned" if row["pinned"] else "",
            _when(row["updated_at"]),
            "retired" if row["retired"] else "live",
        )
    console.print(table)


@backend_options()
def show(
    feature: Annotated[str, typer.Argument(help="Feature name.")],
    version: Annotated[int | None, typer.Option("--version", help="A version number.")] = None,
    *,
    target: Target,
) -> None:
    """Show a version of a feature: the label's (default) or `--version N`."""
    label = target.label
    data = target.backend().show(feature, label, version)
    if target.as_json:
        print_json(data)
        return
    commit = data["commit"]
    pinned = " (pinned)" if data["pinned"] else ""
    console.print(f"[bold]{data['feature']}[/bold] version {data['version']}{pinned}")
    console.print(f"content hash  {data['content_hash']}")
    console.print(
        f"commit        {_short(commit['sha'])} {commit['author']} {_when(commit['committed_at'])}"
    )
    console.print(f"              {commit['message'].splitlines()[0] if commit['message'] else ''}")
    policy = data["policy"]
    chain = " → ".join(m["model"] if isinstance(m, dict) else str(m) for m in policy["models"])
    console.print(f"models        {chain}")
    budget = policy.get("budget", {})
    console.print(
        f"limits        max_output_tokens={policy.get('max_output_tokens')} "
        f"max_request_tokens={budget.get('max_request_tokens')}"
    )
    console.print(f"\n[dim]{data['prompt']['path']}[/dim]")
    console.print(data["prompt"]["source"], markup=False, highlight=False)


@backend_options(label=False)
def history(
    feature: Annotated[str, typer.Argument(help="Feature name.")], *, target: Target
) -> None:
    """All versions of a feature, newest first, with their commits and labels."""
    rows = target.backend().history(feature)
    if target.as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(title=f"history of {feature}")
    for column in ("version", "labels", "commit", "author", "date", "message", "hash"):
        table.add_column(column)
    for row in rows:
        commit = row["commit"]
        table.add_row(
            str(row["version"]),
            ", ".join(row["labels"]),
            _short(commit["sha"]),
            commit["author"],
            _when(commit["committed_at"]),
            (commit["message"] or "").splitlines()[0] if commit["message"] else "",
            _short(row["content_hash"]),
        )
    console.print(table)


def _print_move(move: dict[str, Any], verb: str) -> None:
    state = "pinned" if move["pinned"] else "unpinned"
    console.print(
        f"{move['feature']} {move['label']}: {verb} version {move['from_version']} → "
        f"{move['to_version']} ({state})"
    )


@backend_options()
def rollback(
    feature: Annotated[
        str | None, typer.Argument(help="Feature name (omit with --all).", show_default=False)
    ] = None,
    to: Annotated[int | None, typer.Option("--to", help="Version to roll back to.")] = None,
    all_features: Annotated[
        bool, typer.Option("--all", help="Every feature changed after --to-commit.")
    ] = False,
    to_commit: Annotated[
        str | None, typer.Option("--to-commit", help="With --all: the commit to go back to.")
    ] = None,
    repo: Annotated[
        str | None, typer.Option("--repo", help="With --all: the repository (default: .).")
    ] = None,
    reason: ReasonOption = None,
    *,
    target: Target,
) -> None:
    """Move a label back (to the previous version or --to N) and pin it."""
    label = target.label
    if all_features:
        if feature or to is not None or not to_commit:
            fail("use either FEATURE [--to N] or --all --to-commit SHA", code=2)
        if target.url:
            fail("rollback --all works in database mode (--database-url), not through --url")
        moves = _rollback_all(target.database_url, repo, to_commit, label, reason)
        if target.as_json:
            print_json(moves)
        elif not moves:
            console.print(f"nothing to roll back: no {label} label moved after {to_commit}")
        for move in [] if target.as_json else moves:
            _print_move(move, "rolled back")
        return
    if feature is None:
        fail("name the feature to roll back (or use --all --to-commit SHA)", code=2)
    move = target.backend().rollback(feature, label, to, reason)
    if target.as_json:
        print_json(move)
    else:
        _print_move(move, "rolled back")


def _rollback_all(
    database_url: str | None, repo: str | None, commit: str | None, label: str, reason: str | None
) -> list[dict[str, Any]]:
    from dataclasses import asdict

    from registry import labels as label_ops
    from registry.config import get_settings
    from registry.errors import RepoError
    from registry.gitrepo import open_repo

    settings = get_settings()
    backend = database_backend(database_url)
    gitrepo, _ = open_repo(repo or settings.repo, cache_dir=settings.cache_dir)
    try:
        sha = gitrepo.commit(commit).hexsha
    except Exception:
        raise RepoError(f"commit {commit!r} does not exist in the repository") from None
    ancestors = set(gitrepo.git.rev_list(sha).split())
    with backend.session(write=True) as session:
        moves = label_ops.rollback_all(
            session, commit=sha, ancestors=ancestors, label=label, actor=os_user(), reason=reason
        )
    return [asdict(m) for m in moves]


@backend_options()
def promote(
    feature: Annotated[str, typer.Argument(help="Feature name.")],
    version: Annotated[
        int | None, typer.Option("--version", help="Version (default: the newest).")
    ] = None,
    reason: ReasonOption = None,
    *,
    target: Target,
) -> None:
    """Move a label forward (to the newest version or --version N) and unpin it."""
    label = target.label
    move = target.backend().promote(feature, label, version, reason)
    if target.as_json:
        print_json(move)
    else:
        _print_move(move, "promoted")


@backend_options(label=False)
def audit(
    feature: Annotated[str | None, typer.Option("--feature", help="Only this feature.")] = None,
    label: Annotated[str | None, typer.Option("--label", help="Only this label.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many entries.")] = 50,
    *,
    target: Target,
) -> None:
    """Label moves (sync, rollback, promote, retire), newest first."""
    rows = target.backend().audit(feature, label, limit)
    if target.as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(title="audit log")
    for column in ("when", "feature", "label", "action", "from", "to", "actor", "reason"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            _when(row["at"]),
            row["feature"],
            row["label"],
            row["action"],
            "-" if row["from_version"] is None else str(row["from_version"]),
            "-" if row["to_version"] is None else str(row["to_version"]),
            row["actor"],
            row["reason"] or "",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    for command in (features, show, history, rollback, promote, audit):
        app.command()(command)
