"""How the CLI talks to people and scripts: rich tables on a terminal, JSON on request.

rich is imported when something is first printed, not when the CLI starts: `--help` and
commands that print JSON never pay for it.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from rich.console import Console


class _LazyConsole:
    """A rich Console created on first use."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


console: Console = _LazyConsole(highlight=False)  # type: ignore[assignment]
errors: Console = _LazyConsole(stderr=True, highlight=False, soft_wrap=True)  # type: ignore[assignment]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: message` on stderr and exit with `code`."""
    if sys.stderr.isatty():
        errors.print(f"[red]error:[/red] {message}", markup=True)
    else:
        print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def print_json(data: Any) -> None:
    """Machine output: JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def command_path() -> str:
    """The running command as the user typed it (`promptreg db upgrade`), for messages."""
    from itertools import takewhile

    from registry.cli import app

    words = list(takewhile(lambda arg: not arg.startswith("-"), sys.argv[1:]))
    groups = {group.name for group in app.registered_groups}
    return " ".join(["promptreg", *words[: 2 if words and words[0] in groups else 1]])
