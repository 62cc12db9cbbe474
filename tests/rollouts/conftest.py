"""Fixtures for rollout scenarios: a registry per test (see scenario.py), on SQLite and
PostgreSQL, and a controller the test ticks itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from registry.rollouts.controller import Controller

from .scenario import Rollouts, bearer, new_rollouts


@pytest.fixture
def reg(db_url: str, engine: Engine, tmp_path: Path) -> Rollouts:
    """An empty registry repository on a migrated database, with tokens."""
    return new_rollouts(db_url, engine, tmp_path)


@pytest.fixture
def controller(engine: Engine) -> Iterator[Controller]:
    """A rollout controller that decides only when the test ticks it."""
    made = Controller(engine)
    yield made
    made.stop()


@pytest.fixture
def admin(reg: Rollouts) -> Iterator[httpx.Client]:
    """An HTTP client with the admin token."""
    with httpx.Client(headers=bearer(reg.admin_token), timeout=30) as http:
        yield http
