"""Fixtures for the HTTP API: a real synced registry, tokens, and the app under TestClient.

A registry here is the git repository `harness.build_registry` commits, synced into
`production` after each commit (so the label moved 1 → 2 → 3 as merges came in), with an
admin token named `oncall` and a reader token named `dashboard`, on SQLite and PostgreSQL
(see the root conftest).

- `registry` / `app` / `client`: a fresh registry per test, for tests that change it.
- `shared_registry` / `shared_client`: one registry per module and database, for tests
  that only read (it keeps the suite fast; a test that moves a label must not use it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from support.postgres import fresh_database
from support.server import app_of

from registry.store.db import make_engine, migrate

from .harness import POLL_S, Registry, new_registry


@pytest.fixture
def registry(db_url: str, engine: Engine, tmp_path: Path) -> Registry:
    """A fresh registry for this test."""
    return new_registry(db_url, engine, tmp_path)


@pytest.fixture
def app(registry: Registry) -> Iterator[FastAPI]:
    """The API over the registry (its own engine, disposed afterwards)."""
    with app_of(registry.settings(), poll_s=POLL_S) as app:
        yield app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """A TestClient with the lifespan running (so the change watcher runs)."""
    with TestClient(app) as client:
        yield client


# -- one read-only registry per module ---------------------------------------------------


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def shared_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Like the root `db_url`, once per module."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('shared') / 'registry.db'}"
        return
    with fresh_database(request.getfixturevalue("postgres_server")) as url:
        yield url


@pytest.fixture(scope="module")
def shared_registry(
    shared_db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registry]:
    """A registry shared by the module's read-only tests."""
    migrate(shared_db_url)
    engine = make_engine(shared_db_url)
    try:
        yield new_registry(shared_db_url, engine, tmp_path_factory.mktemp("registry"))
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def shared_client(shared_registry: Registry) -> Iterator[TestClient]:
    """A TestClient over the shared registry, lifespan running."""
    with app_of(shared_registry.settings(), poll_s=POLL_S) as app, TestClient(app) as client:
        yield client
