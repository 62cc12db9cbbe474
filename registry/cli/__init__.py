"""The `promptreg` command line: thin Typer commands over the modules below it."""

from __future__ import annotations

import sys

import typer

from registry.cli import db, files, labels, serve, sync, tokens
from registry.cli.output import fail
from registry.errors import PromptregError

app = typer.Typer(
    name="promptreg",
    help="Versioned prompts and guardrail policies, served and rolled back in one command.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
files.register(app)
sync.register(app)
labels.register(app)
serve.register(app)
tokens.register(app)
db.register(app)


def main() -> None:
    """Console entry point: user errors become one line on stderr, never a traceback."""
    try:
        app()
    except PromptregError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        sys.exit(130)
