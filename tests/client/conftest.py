"""Fixtures for the client library: fake provider and collector, a snapshot, a live server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from client_fakes import FILES, FakeCollector, FakeProvider
from sqlalchemy import Engine
from support.git import GitRepo
from support.server import AppServer
from typer.testing import CliRunner

from registry.api.app import create_app
from registry.cli import app as cli
from registry.client import Backoff, Registry, openai_call
from registry.client.result import ModelCall
from registry.config import Settings
from registry.store import crud
from registry.store.db import session_scope
from registry.sync import sync_ref

FAST = Backoff(initial_s=0.02, max_s=0.1, jitter_s=0.01)


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider()
    yield fake
    fake.close()


@pytest.fixture
def collector() -> Iterator[FakeCollector]:
    fake = FakeCollector()
    yield fake
    fake.close()


@pytest.fixture
def call(provider: FakeProvider) -> Iterator[ModelCall]:
    """The OpenAI SDK adapter over a real `openai.OpenAI` client aimed at the fake."""
    with openai.OpenAI(base_url=provider.base_url, api_key="test-key") as client:
        yield openai_call(client)


@pytest.fixture(scope="session")
def snapshot_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot of the test registry, made the real way: git, sync, `promptreg export`."""
    root = tmp_path_factory.mktemp("snapshot")
    GitRepo(root / "repo").commit("demo features", FILES)
    url = f"sqlite:///{root / 'registry.db'}"
    out = root / "snapshot.json"
    runner = CliRunner()
    done = runner.invoke(cli, ["sync", "--repo", str(root / "repo"), "--database-url", url])
    assert done.exit_code == 0, done.output
    done = runner.invoke(cli, ["export", "--out", str(out), "--database-url", url])
    assert done.exit_code == 0, done.output
    return out


@pytest.fixture
def make_registry(snapshot_file: Path) -> Iterator[Callable[..., Registry]]:
    """Registries over the snapshot (no registry server), closed after the test."""
    made: list[Registry] = []

    def make(url: str | None = None, **kwargs: Any) -> Registry:
        kwargs.setdefault("backoff", FAST)
        kwargs.setdefault("snapshot", snapshot_file)
        reg = Registry(url, "test-token", **kwargs)
        made.append(reg)
        return reg

    yield make
    for reg in made:
        reg.close()


@dataclass
class LiveRegistry:
    """A promptreg server over a synced repository, with a reader token."""

    url: str
    token: str
    repo: GitRepo
    engine: Engine
    server: AppServer
    cache_dir: Path

    def sync(self) -> None:
        sync_ref(self.engine, repo=str(self.repo), label="production", cache_dir=self.cache_dir)


@pytest.fixture
def live_registry(engine: Engine, db_url: str, tmp_path: Path) -> Iterator[LiveRegistry]:
    repo = GitRepo(tmp_path / "repo")
    repo.commit("demo features", FILES)
    cache_dir = tmp_path / "git-cache"
    sync_ref(engine, repo=str(repo), label="production", cache_dir=cache_dir)
    with session_scope(engine) as session:
        _, token = crud.create_token(session=session, name="app", role="reader")
    settings = Settings(database_url=db_url, repo=str(repo))
    with AppServer(create_app(settings, engine=engine)) as server:
        yield LiveRegistry(server.url, token, repo, engine, server, cache_dir)
