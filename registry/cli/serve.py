"""`promptreg serve` (the API under uvicorn) and `promptreg demo` (what `make run` does)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from registry.cli.backend import DatabaseUrlOption
from registry.cli.output import command_path, console

if TYPE_CHECKING:
    from registry.config import Settings

HostOption = Annotated[str, typer.Option("--host", help="Interface to listen on.")]
PortOption = Annotated[int, typer.Option("--port", help="Port to listen on.")]


def _settings(
    repo: str | None, ref: str | None, label: str | None, database_url: str | None
) -> Settings:
    from registry.config import get_settings

    overrides = {
        key: value
        for key, value in (
            ("repo", repo),
            ("ref", ref),
            ("label", label),
            ("database_url", database_url),
        )
        if value is not None
    }
    return get_settings().model_copy(update=overrides)


def _export(settings: Settings) -> None:
    # uvicorn's workers build the app from the environment, so settings travel through it.
    for key in ("repo", "ref", "label", "database_url"):
        value = getattr(settings, key)
        if value is not None:
            os.environ[f"PROMPTREG_{key.upper()}"] = str(value)


def serve(
    repo: Annotated[str | None, typer.Option("--repo", help="Repository that sync reads.")] = None,
    ref: Annotated[str | None, typer.Option("--ref", help="Branch that sync reads.")] = None,
    label: Annotated[str | None, typer.Option("--label", help="Label served and synced.")] = None,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Server processes.")] = 1,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Serve the HTTP API (refuses a database behind the newest migration)."""
    from registry.extras import require

    require("server", f"`{command_path()}`")
    import uvicorn

    from registry.store.db import ensure_database

    settings = _settings(repo, ref, label, database_url)
    ensure_database(settings.database_url).dispose()  # fail here, clearly, not in a worker
    _export(settings)
    from registry.usage.metrics import cleanup_processes, prepare_processes

    folder = prepare_processes(workers)  # several workers share counters through files
    try:
        uvicorn.run(
            "registry.api.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            access_log=False,
        )
    finally:
        cleanup_processes(folder)


def demo(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Sync this repository into a local database, make an admin token, print the dashboard URL
    and curls, serve."""
    from registry.extras import require

    require("server", f"`{command_path()}`")
    from registry.store import crud
    from registry.store.db import migrate, session_scope
    from registry.sync import sync_ref

    state = Path(".promptreg")
    state.mkdir(exist_ok=True)
    url = database_url or f"sqlite:///{state / 'demo.db'}"
    settings = _settings(".", None, None, url)
    migrate(url)
    from registry.store.db import make_engine

    engine = make_engine(url)
    summary = sync_ref(engine, repo=".", label=settings.label, cache_dir=settings.cache_dir)
    console.print(
        f"synced {summary.commits} commit(s) of this repository: {summary.versions_created} new "
        f"version(s){'' if summary.ok else f', {len(summary.errors)} error(s) recorded'}"
    )
    token_file = state / "demo-token"
    token = token_file.read_text().strip() if token_file.exists() else ""
    with session_scope(engine) as session:
        if not token or crud.get_token(session=session, plaintext=token) is None:
            name = "demo-admin"
            existing = crud.get_token_by_name(session=session, name=name)
            if existing is not None:
                name = f"demo-admin-{existing.id}"
            _, token = crud.create_token(session=session, name=name, role="admin")
            token_file.write_text(token + "\n")
            token_file.chmod(0o600)
    engine.dispose()
    base = f"http://{host}:{port}"
    auth = shlex.quote(f"Authorization: Bearer {token}")
    body = shlex.quote('{"variables": {"message": "I was charged twice this month"}}')
    console.print(
        f"\nadmin token (also in {token_file}):\n  {token}\n\n"
        f"Dashboard: {base}/ui  (sign in with the admin token above)\n\n"
        f"Try it:\n"
        f"  curl -s -H {auth} {base}/v1/features\n"
        f"  curl -s -H {auth} -H 'Content-Type: application/json' -d {body} "
        f"{base}/v1/features/support.classify/render\n"
        f"  curl -s -X POST -H {auth} -H 'Content-Type: application/json' "
        f'-d \'{{"reason": "demo"}}\' {base}/v1/features/support.reply/rollback\n'
        f"  open {base}/docs\n",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    serve(repo=".", ref=None, label=None, host=host, port=port, workers=1, database_url=url)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command()(serve)
    app.command(
        help="Run the bundled demo: sync, token, dashboard URL, curl examples, serve (`make run`)."
    )(demo)
