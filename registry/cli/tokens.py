"""`promptreg token create|list|revoke`: API tokens, shown once and stored hashed."""

from __future__ import annotations

from typing import Annotated

import typer

from registry.cli.backend import DatabaseUrlOption, JsonOption, database_backend
from registry.cli.output import console, fail, print_json

app = typer.Typer(help="API tokens (reader or admin).", no_args_is_help=True)


@app.command()
def create(
    name: Annotated[str, typer.Option("--name", help="Who or what uses it (the audit actor).")],
    role: Annotated[str, typer.Option("--role", help="reader or admin.")] = "reader",
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create a token; it is printed once, alone on the last line."""
    backend = database_backend(database_url)
    from registry.store import crud
    from registry.store.models import TOKEN_ROLES

    if role not in TOKEN_ROLES:
        fail(f"--role must be one of {', '.join(TOKEN_ROLES)}, not {role!r}", code=2)
    if not name.strip():
        fail("--name must not be empty", code=2)
    with backend.session(write=True) as session:
        if crud.get_token_by_name(session=session, name=name) is not None:
            fail(
                f"a token named {name!r} already exists (names stay taken after revoke); "
                "pick another"
            )
        _, plaintext = crud.create_token(session=session, name=name, role=role)
    typer.echo(f"created {role} token {name!r}; it is shown once, store it now:", err=True)
    typer.echo(plaintext)


@app.command("list")
def list_tokens(as_json: JsonOption = False, database_url: DatabaseUrlOption = None) -> None:
    """List tokens (names and roles; never the secrets)."""
    backend = database_backend(database_url)
    from rich.table import Table

    from registry.store import crud

    with backend.session() as session:
        rows: list[dict[str, str | None]] = [
            {
                "name": t.name,
                "role": t.role,
                "created_at": t.created_at.isoformat(),
                "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
            }
            for t in crud.list_tokens(session=session)
        ]
    if as_json:
        print_json(rows)
        return
    table = Table(title="API tokens")
    for column in ("name", "role", "created", "state"):
        table.add_column(column)
    for row in rows:
        revoked, created = row["revoked_at"], row["created_at"] or ""
        state = f"revoked {revoked[:19]}" if revoked else "active"
        table.add_row(row["name"], row["role"], created[:19], state)
    console.print(table)


@app.command()
def revoke(
    name: Annotated[str, typer.Argument(help="The token's name.")],
    database_url: DatabaseUrlOption = None,
) -> None:
    """Revoke a token; servers stop accepting it within a second."""
    backend = database_backend(database_url)
    from registry.store import crud

    with backend.session(write=True) as session:
        token = crud.revoke_token(session=session, name=name)
    if token is None:
        fail(f"no active token named {name!r}")
    console.print(f"revoked token {name!r}")


def register(root: typer.Typer) -> None:
    """Add the `token` group to the app."""
    root.add_typer(app, name="token")
