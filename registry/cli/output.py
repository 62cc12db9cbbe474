"""How the CLI talks to people and scripts: rich tables on a terminal, JSON on request."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

from rich.console import Console

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `error: message` on stderr and exit with `code`."""
    errors.print(f"[red]error:[/red] {message}", markup=True) if errors.is_terminal else print(
        f"error: {message}", file=sys.stderr
    )
    raise SystemExit(code)


def print_json(data: Any) -> None:
    """Machine output: JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
