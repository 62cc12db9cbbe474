"""Where label commands read and write: the database directly, or a promptreg server.

Both backends return the API's JSON shapes, so every command prints the same thing in
database mode and in remote mode (`--url`), and the on-call engineer's laptop needs no
database access to roll back production.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Protocol, TypeVar

import typer
from sqlalchemy import Engine
from sqlmodel import Session

from registry import labels
from registry.config import get_settings
from registry.store.db import ensure_database, session_scope

T = TypeVar("T")

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="PROMPTREG_DATABASE_URL",
        help="Database URL (default: sqlite:///promptreg.db in the current folder).",
        show_default=False,
    ),
]
ServerUrlOption = Annotated[
    str | None,
    typer.Option("--url", envvar="PROMPTREG_URL", help="A promptreg server: work through its API."),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="PROMPTREG_TOKEN", help="API token for --url."),
]
LabelOption = Annotated[str, typer.Option("--label", help="Label to read or move.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


class Backend(Protocol):
    """The label commands' operations, in the API's shapes."""

    def features(self, label: str) -> list[dict[str, Any]]: ...
    def show(self, name: str, label: str, version: int | None) -> dict[str, Any]: ...
    def history(self, name: str) -> list[dict[str, Any]]: ...
    def audit(self, feature: str | None, label: str | None, limit: int) -> list[dict[str, Any]]: ...
    def rollback(
        self, name: str, label: str, to_version: int | None, reason: str | None
    ) -> dict[str, Any]: ...
    def promote(
        self, name: str, label: str, version: int | None, reason: str | None
    ) -> dict[str, Any]: ...
    def stats(self, name: str, label: str, window: str) -> dict[str, Any]: ...
    def close(self) -> None: ...


def os_user() -> str:
    """The actor of database-mode label moves."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class DatabaseBackend:
    """Reads and writes the database with the same functions the API uses."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None

    def close(self) -> None:
        """Release the database connections."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @property
    def engine(self) -> Engine:
        """The engine, on a database at the newest migration."""
        if self._engine is None:
            self._engine = ensure_database(self.url)
        return self._engine

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """A transaction on the database."""
        with session_scope(self.engine, write=write) as session:
            yield session

    def _read(self, fn: Callable[[Session], T]) -> T:
        with self.session() as session:
            return fn(session)

    def features(self, label: str) -> list[dict[str, Any]]:
        return self._read(lambda s: labels.list_features(s, label=label))

    def show(self, name: str, label: str, version: int | None) -> dict[str, Any]:
        def run(session: Session) -> dict[str, Any]:
            feature, row, label_row = labels.resolve(session, name, label=label, version=version)
            return labels.version_dict(feature, row, label, label_row)

        return self._read(run)

    def history(self, name: str) -> list[dict[str, Any]]:
        return self._read(lambda s: labels.history(s, name))

    def audit(self, feature: str | None, label: str | None, limit: int) -> list[dict[str, Any]]:
        return self._read(lambda s: labels.audit(s, feature=feature, label=label, limit=limit))

    def rollback(
        self, name: str, label: str, to_version: int | None, reason: str | None
    ) -> dict[str, Any]:
        with self.session(write=True) as session:
            move = labels.rollback(
                session, name, label=label, to_version=to_version, actor=os_user(), reason=reason
            )
        return move.as_dict()

    def promote(
        self, name: str, label: str, version: int | None, reason: str | None
    ) -> dict[str, Any]:
        with self.session(write=True) as session:
            move = labels.promote(
                session, name, label=label, version=version, actor=os_user(), reason=reason
            )
        return move.as_dict()

    def stats(self, name: str, label: str, window: str) -> dict[str, Any]:
        from registry.usage.stats import feature_stats

        return self._read(lambda s: feature_stats(s, name, label=label, window=window))


B = TypeVar("B", bound=Backend)


_open: list[Backend] = []


def closed_with_command(backend: B) -> B:
    """Close `backend` when the running command ends (see `close_backends`)."""
    _open.append(backend)
    return backend


def close_backends() -> None:
    """Close every backend the command opened; the app calls it when a command ends."""
    while _open:
        _open.pop().close()


def database_backend(database_url: str | None) -> DatabaseBackend:
    """The database backend, closed when the command ends."""
    return closed_with_command(DatabaseBackend(database_url or get_settings().database_url))


def backend_for(database_url: str | None, url: str | None, token: str | None) -> Backend:
    """The remote backend when a server URL is given, else the database; closed with the
    command."""
    if url:
        from registry.cli.remote import RemoteBackend

        return closed_with_command(RemoteBackend(url, token))
    return database_backend(database_url)
