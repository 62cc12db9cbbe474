"""The optional parts of promptreg (pip extras), and the one-line error when one is missing.

`pip install promptreg` is the client library, the file loader and renderer, and every
label command in remote mode; `promptreg[server]` adds the API, the database, sync and
usage (SPEC §9). Code that needs an extra calls `require` first, so a core install answers
"install promptreg[server]" instead of an ImportError traceback. `find_spec` only looks
the module up on the path: checking costs no import.
"""

from __future__ import annotations

import importlib.util

from registry.errors import MissingExtra

# The top-level modules each extra installs (the distributions' import names).
MODULES: dict[str, tuple[str, ...]] = {
    "server": ("sqlmodel", "sqlalchemy", "alembic", "fastapi", "uvicorn", "prometheus_client"),
    "postgres": ("psycopg",),
    "openai": ("openai",),
    "litellm": ("litellm",),
}


def installed(extra: str) -> bool:
    """True when every module of `extra` can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in MODULES[extra])


def require(extra: str, what: str) -> None:
    """Raise MissingExtra naming `what` and the install line when `extra` is absent."""
    if not installed(extra):
        raise MissingExtra(extra, what)
