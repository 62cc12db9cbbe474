"""Fixtures: the usage test registry synced into each database, a token and an API client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from support.git import GitRepo
from usage_helpers import app_for, make_token, repo_fixture, synced_fixture  # noqa: F401  (fixtures repo, synced)


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
