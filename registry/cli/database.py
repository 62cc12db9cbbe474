"""The database backend of the label commands: the same functions the API calls."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import Engine
from sqlmodel import Session

from registry import labels
from registry.api.schemas import ResolvedVersion
from registry.cli.backend import os_user
from registry.rollouts import machine
from registry.store import crud
from registry.store.db import ensure_database, session_scope

T = TypeVar("T")


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

    def _move(self, move: Callable[..., labels.LabelMove], name: str, **how: Any) -> dict[str, Any]:
        """A label move by the OS user, as the API answers it."""
        with self.session(write=True) as session:
            moved = move(session, name, actor=os_user(), **how)
        return asdict(moved)

    def features(self, label: str) -> list[dict[str, Any]]:
        return self._read(lambda s: _json(crud.list_features_with_label(session=s, label=label)))

    def show(self, name: str, label: str, version: int | None) -> dict[str, Any]:
        def run(session: Session) -> dict[str, Any]:
            feature, row, label_row = labels.resolve(session, name, label=label, version=version)
            return ResolvedVersion.of(feature, row, label, label_row).model_dump(mode="json")

        return self._read(run)

    def history(self, name: str) -> list[dict[str, Any]]:
        return self._read(lambda s: _json(labels.history(s, name)))

    def audit(self, feature: str | None, label: str | None, limit: int) -> list[dict[str, Any]]:
        return self._read(
            lambda s: _json(labels.audit(s, feature=feature, label=label, limit=limit))
        )

    def rollback(
        self, name: str, label: str, to_version: int | None, reason: str | None
    ) -> dict[str, Any]:
        return self._move(labels.rollback, name, label=label, to_version=to_version, reason=reason)

    def promote(
        self, name: str, label: str, version: int | None, reason: str | None
    ) -> dict[str, Any]:
        return self._move(labels.promote, name, label=label, version=version, reason=reason)

    def stats(self, name: str, label: str, window: str) -> dict[str, Any]:
        from registry.usage.stats import feature_stats

        return self._read(lambda s: feature_stats(s, name, label=label, window=window))

    def rollouts(self, label: str) -> list[dict[str, Any]]:
        def run(session: Session) -> list[dict[str, Any]]:
            rows = crud.latest_rollouts(session=session, label=label)
            return _json([crud.rollout_public(session=session, rollout=row) for row in rows])

        return self._read(run)

    def rollout(self, name: str, label: str) -> dict[str, Any]:
        def run(session: Session) -> dict[str, Any]:
            found = machine.find(session, name, label, active=False)
            return crud.rollout_public(session=session, rollout=found).model_dump(mode="json")

        return self._read(run)

    def rollout_start(
        self,
        name: str,
        label: str,
        to_version: int,
        steps: list[int] | None,
        interval: str | None,
        reason: str | None,
    ) -> dict[str, Any]:
        with self.session(write=True) as session:
            started = machine.start_by_name(
                session,
                name,
                label=label,
                to_version=to_version,
                steps=steps,
                interval=interval,
                actor=os_user(),
                reason=reason,
            )
            return crud.rollout_public(session=session, rollout=started).model_dump(mode="json")

    def rollout_act(self, name: str, action: str, label: str, reason: str | None) -> dict[str, Any]:
        with self.session(write=True) as session:
            changed = machine.act(
                session, name, action, label=label, actor=os_user(), reason=reason
            )
            return crud.rollout_public(session=session, rollout=changed).model_dump(mode="json")


def _json(rows: Sequence[BaseModel]) -> list[dict[str, Any]]:
    """Rows as the API sends them."""
    return [row.model_dump(mode="json") for row in rows]
