"""Fixtures: the usage test registry synced into each database, a token and an API client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from support.git import GitRepo
from usage_helpers import app_for, build_registry, make_token, sync


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    """The usage test registry (see usage_helpers)."""
    return build_registry(tmp_path / "repo")


@pytest.fixture
def synced(engine: Engine, repo: GitRepo, tmp_path: Path) -> Engine:
    """A migrated database with the test registry synced into `production`."""
    sync(engine, repo, tmp_path / "cache")
    return engine


@pytest.fixture
def token(synced: Engine) -> str:
    """A reader token."""
    return make_token(synced)


@pytest.fixture
def client(synced: Engine, repo: GitRepo, token: str) -> Iterator[TestClient]:
    """A client of the API over the synced database, authenticated as a reader."""
    with TestClient(app_for(synced, repo.path)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {token}"
        yield test_client
