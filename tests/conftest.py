"""Shared fixtures: hermetic state paths, a database per test (SQLite and PostgreSQL), the CLI.

The PostgreSQL half runs wherever a PostgreSQL server is installed (a throwaway cluster,
see support/postgres.py) or PROMPTREG_TEST_POSTGRES_URL names one; elsewhere it is
skipped, and the skip says why.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from support import postgres
from support.cli import track_cli_engines

from registry.store.db import make_engine, migrate

# Read before the autouse fixture below clears PROMPTREG_* from the environment.
POSTGRES_SERVER_URL = os.environ.get(postgres.URL_ENV)


@pytest.fixture(autouse=True)
def _hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every state path at tmp_path; no PROMPTREG_* setting leaks in from the caller."""
    for name in list(os.environ):
        if name.startswith("PROMPTREG_") and not name.startswith("PROMPTREG_TEST_"):
            monkeypatch.delenv(name)
    # Per test, so no test sees another's clones or files (child processes inherit them).
    home = tmp_path / "home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("PROMPTREG_CACHE_DIR", str(home / "cache" / "promptreg"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a PostgreSQL server for the whole run (skips the test where there is none)."""
    if POSTGRES_SERVER_URL:
        yield POSTGRES_SERVER_URL
        return
    try:
        # pytest-postgresql's option: --postgresql-exec=/path/to/pg_ctl picks the server
        cluster = postgres.Cluster.find(request.config.getoption("postgresql_exec", None))
    except postgres.Unavailable as why:
        pytest.skip(f"PostgreSQL tests skipped: {why}")
    with cluster:
        yield cluster.url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a new PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    with postgres.fresh_database(request.getfixturevalue("postgres_server")) as url:
        yield url


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
