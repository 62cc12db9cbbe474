"""The `promptreg` command line: thin Typer commands over the modules below it."""

from __future__ import annotations

import sys

import typer

from registry.cli import (
    checklist,
    db,
    diff,
    export,
    files,
    labels,
    rollout,
    serve,
    stats,
    sync,
    tokens,
)
from registry.cli import eval as evals
from registry.cli.backend import close_backends
from registry.cli.output import fail
from registry.errors import MissingExtra, PromptregError

app = typer.Typer(
    name="promptreg",
    help="Versioned prompts and guardrail policies, served and rolled back in one command.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(ctx: typer.Context) -> None:
    """Versioned prompts and guardrail policies, served and rolled back in one command."""
    ctx.call_on_close(close_backends)  # database engines and HTTP pools, even on errors


files.register(app)
sync.register(app)
labels.register(app)
serve.register(app)
tokens.register(app)
db.register(app)
diff.register(app)
evals.register(app)
stats.register(app)
checklist.register(app)
export.register(app)
rollout.register(app)


def main() -> None:
    """Console entry point: user errors become one line on stderr, never a traceback."""
    try:
        app()
    except MissingExtra as exc:  # an install problem, not a failed run: exit 2 like misuse
        fail(str(exc), code=2)
    except PromptregError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: still one line, and nothing was half-applied
        # Every database write runs in one transaction that an exception rolls back.
        fail(
            f"unexpected {type(exc).__name__}: {exc}".splitlines()[0]
            + " (a promptreg bug: nothing was changed; please report it with the command)"
        )
