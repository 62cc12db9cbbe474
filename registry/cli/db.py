"""`promptreg db upgrade`: bring a database to the newest migration."""

from __future__ import annotations

import typer

from registry.cli.backend import DatabaseUrlOption
from registry.cli.output import command_path, console

app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


@app.command()
def upgrade(database_url: DatabaseUrlOption = None) -> None:
    """Apply every migration the database lacks (safe to run again)."""
    from registry.extras import require

    require("server", f"`{command_path()}`")
    from registry.config import get_settings
    from registry.store.db import current_revision, head_revision, make_engine, migrate

    url = database_url or get_settings().database_url
    engine = make_engine(url)
    try:
        before = current_revision(engine)
        migrate(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    if before == after:
        console.print(f"database already at the newest migration ({after})")
    else:
        console.print(f"database upgraded: {before or 'empty'} → {after} (head {head_revision()})")


def register(root: typer.Typer) -> None:
    """Add the `db` group to the app."""
    root.add_typer(app, name="db")
