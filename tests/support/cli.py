"""The command line in-process: `promptreg` run through Typer's app or through `main()`, and
the engines it opens."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine
from typer.testing import CliRunner as TyperRunner
from typer.testing import Result

from registry.cli import app, main
from registry.cli import database as cli_database
from registry.store import db


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    """Run `promptreg ARGS` through the Typer app; an error other than an exit is raised."""
    result = TyperRunner().invoke(app, [str(a) for a in args], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def _forward(args: tuple[str, ...]) -> None:
    saved, sys.argv = sys.argv, ["promptreg", *args]
    try:
        main()
    finally:
        sys.argv = saved


# CliRunner runs click commands; this one hands its arguments to `main()` untouched, so
# user errors go through the same one-line handler as the installed `promptreg` script.
_MAIN = click.Command(
    "promptreg",
    callback=_forward,
    params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
    context_settings={"ignore_unknown_options": True},
    add_help_option=False,
)


def cli(*args: str | Path) -> tuple[int, str, str]:
    """Run `promptreg ARGS` in-process through `main()`: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(_MAIN, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def track_cli_engines(monkeypatch: pytest.MonkeyPatch) -> list[Engine]:
    """Record every engine the database-mode CLI opens, so a test can check and close them."""
    # A pooled connection left open makes psycopg warn when it is garbage-collected; under
    # filterwarnings=error that would fail whichever test the collector happens to run in,
    # so the tests close whatever the CLI left (and assert, separately, that it leaves none).
    opened: list[Engine] = []

    def tracked(url: str) -> Engine:
        opened.append(db.ensure_database(url))
        return opened[-1]

    monkeypatch.setattr(cli_database, "ensure_database", tracked)
    return opened
