"""Shared fixtures: hermetic state paths, a database per test (SQLite, PostgreSQL), the CLI."""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import Session
from support.cli import track_cli_engines

from registry.store.db import make_engine, migrate

# Read before the autouse fixture below clears PROMPTREG_* from the environment.
POSTGRES_SERVER_URL = os.environ.get("PROMPTREG_TEST_POSTGRES_URL")
POSTGRES_SKIP = "PostgreSQL tests skipped: set PROMPTREG_TEST_POSTGRES_URL (CI sets it)"


@pytest.fixture(autouse=True)
def _hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every state path at tmp_path; no PROMPTREG_* setting leaks in from the caller."""
    for name in list(os.environ):
        if name.startswith("PROMPTREG_") and not name.startswith("PROMPTREG_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PROMPTREG_HOME", str(tmp_path / "promptreg-home"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a new PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    if not POSTGRES_SERVER_URL:
        pytest.skip(POSTGRES_SKIP)
    name = f"test_{uuid.uuid4().hex[:16]}"
    server = create_engine(POSTGRES_SERVER_URL, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(POSTGRES_SERVER_URL).set(database=name).render_as_string(hide_password=False)
        with server.connect() as conn:
            # FORCE: a test may leave a connection behind (e.g. a killed child process).
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        server.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a database migrated to the newest revision."""
    migrate(db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session on the migrated database; the test decides when to commit."""
    with Session(engine) as session:
        yield session


@pytest.fixture
def cli_engines(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Engine]]:
    """The engines in-process database-mode CLI commands open, disposed afterwards."""
    # The CLI never disposes its engine (its process ends instead); in-process, a pooled
    # PostgreSQL connection would otherwise be garbage-collected open, a ResourceWarning.
    opened = track_cli_engines(monkeypatch)
    yield opened
    for engine in opened:
        engine.dispose()
