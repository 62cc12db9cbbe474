"""A small registry for usage, stats and checklist tests, and the API over it.

`build_registry` makes a real git repository with three features:

- `support.reply`: streamed, a fallback model, a drift alarm, a daily budget of $1 and a
  circuit breaker that trips at 50% errors after 4 calls; two versions (the second commit
  lengthens the prompt), so it has a rollback target.
- `kb.answer`: one model, not streamed, no drift alarm; one version.
- `tight.reply`: a budget of 150 tokens that a long question exceeds (render refuses it).

Its fixtures `repo` (that repository) and `synced` (the test's database with it synced)
serve tests/usage, the stats and checklist commands and the dashboard: import both
(`repo_fixture`, `synced_fixture`) where they are used.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from support.features import policy
from support.git import GitRepo

from registry.api.app import create_app
from registry.config import Settings
from registry.store import crud
from registry.store.db import session_scope
from registry.sync import sync_ref

SUPPORT_POLICY = """\
models:
  - model: gpt-4o
    timeout_s: 10
  - model: gpt-4o-mini
max_output_tokens: 300
stream: true
budget:
  max_request_tokens: 4000
  daily_usd: 1
  drift_alarm_pct: 20
circuit_breaker: {failure_rate_pct: 50, min_requests: 4, cooldown_s: 30}
degraded_message: Drafting is unavailable right now.
"""

KB_POLICY = policy(degraded="No answer right now.")

TIGHT_POLICY = """\
models:
  - model: gpt-4o
max_output_tokens: 100
budget:
  max_request_tokens: 150
degraded_message: Too long, sorry.
"""


def prompt(system: str) -> str:
    """A prompt with one `question` input and a sample."""
    return (
        "---\n"
        "inputs:\n"
        "  question: {type: string}\n"
        "sample:\n"
        "  question: How do I reset my password?\n"
        "---\n"
        f"system:\n{system}\n"
        "user:\n{{ question }}\n"
    )


def registry_files(support_system: str = "You draft support replies.") -> dict[str, str]:
    """The files of the test registry."""
    return {
        "policies/support/reply.yaml": SUPPORT_POLICY,
        "prompts/support/reply.jinja": prompt(support_system),
        "policies/kb/answer.yaml": KB_POLICY,
        "prompts/kb/answer.jinja": prompt("Answer from the knowledge base."),
        "policies/tight/reply.yaml": TIGHT_POLICY,
        "prompts/tight/reply.jinja": prompt("Be brief."),
    }


def build_registry(path: Path) -> GitRepo:
    """The test registry as a git repository: two commits (support.reply changes)."""
    repo = GitRepo(path)
    repo.commit("Add three features", registry_files())
    longer = "You draft support replies. Always greet the customer by name and be concise."
    repo.commit("Lengthen support.reply", registry_files(longer))
    return repo


def sync(engine: Engine, repo: GitRepo, cache: Path) -> None:
    """Sync the repository's main branch into `production`; fails on any error."""
    summary = sync_ref(engine, repo=str(repo.path), ref="main", label="production", cache_dir=cache)
    assert summary.ok, summary.errors


@pytest.fixture(name="repo")
def repo_fixture(tmp_path: Path) -> GitRepo:
    """The test registry (see `build_registry`)."""
    return build_registry(tmp_path / "repo")


@pytest.fixture(name="synced")
def synced_fixture(engine: Engine, repo: GitRepo, tmp_path: Path) -> Engine:
    """A migrated database with the test registry synced into `production`."""
    sync(engine, repo, tmp_path / "cache")
    return engine


def make_token(engine: Engine, role: str = "reader", name: str | None = None) -> str:
    """A new API token's plaintext."""
    with session_scope(engine) as session:
        _, plaintext = crud.create_token(
            session=session, name=name or f"{role}-{uuid.uuid4().hex[:8]}", role=role
        )
    return plaintext


def app_for(engine: Engine, repo: Path | str = ".") -> FastAPI:
    """The API over `engine`."""
    url = engine.url.render_as_string(hide_password=False)
    return create_app(Settings(database_url=url, repo=str(repo)), engine=engine)


def event(**fields: Any) -> dict[str, Any]:
    """A valid usage event of support.reply version 2 (override any field)."""
    base: dict[str, Any] = {
        "feature": "support.reply",
        "version": 2,
        "model": "gpt-4o",
        "input_tokens": 100,
        "output_tokens": 50,
        "latency_ms": 800,
        "outcome": "ok",
        "estimated_input_tokens": 100,
    }
    base.update(fields)
    return base
