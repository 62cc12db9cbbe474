"""`promptreg stats [FEATURE]` against the database and against a server (SPEC §5)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine
from support.cli import invoke
from support.clock import earlier_today
from support.git import GitRepo
from support.server import AppServer
from usage_helpers import app_for, event, make_token, repo_fixture, synced_fixture  # noqa: F401  (fixtures repo, synced)

from registry.errors import BadRequest, NotFound, RemoteError
from registry.usage import BadWindow, Ingestor


@pytest.fixture
def url(synced: Engine) -> str:
    """The database URL of a synced registry with some usage of support.reply today."""
    recent = earlier_today(minutes=2).isoformat()
    result = Ingestor(synced).ingest(
        [
            event(at=recent, latency_ms=500, cost_usd=0.7, input_tokens=140),
            event(at=recent, latency_ms=700, cost_usd=0.7, outcome="error"),
            event(at=recent, feature="kb.answer", version=1, latency_ms=200),
        ]
    )
    assert result.accepted == 3
    return synced.url.render_as_string(hide_password=False)


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """A console wide enough that table cells are not wrapped."""
    monkeypatch.setenv("COLUMNS", "200")  # rich reads it at each print


@pytest.fixture
def server(engine: Engine, url: str, repo: GitRepo) -> Iterator[tuple[str, str]]:
    """A live API server over the same database, and a reader token for it."""
    with AppServer(app_for(engine, repo.path)) as live:
        yield live.url, make_token(engine)


def test_every_feature_in_a_table(url, wide):
    result = invoke("stats", "--database-url", url)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for column in ("requests", "p50 ms", "p95 ms", "error %", "cost today", "drift %", "alarms"):
        assert column in out
    lines = {line.split()[1]: line for line in out.splitlines() if "." in line and "│" in line}
    assert "support.reply" in lines and "kb.answer" in lines and "tight.reply" in lines
    assert "daily budget, drift" in lines["support.reply"]
    assert "$1.40" in lines["support.reply"]
    assert "50.0" in lines["support.reply"]  # error %
    assert "none" in lines["kb.answer"]
    assert "alarm support.reply: spend on" in out and "over budget.daily_usd $1" in out


def test_json_for_all_and_for_one(url):
    rows = json.loads(invoke("stats", "--database-url", url, "--json").stdout)
    assert [r["feature"] for r in rows] == ["kb.answer", "support.reply", "tight.reply"]
    one = json.loads(invoke("stats", "support.reply", "--database-url", url, "--json").stdout)
    assert one["requests"] == 2 and one["outcomes"]["error"] == 1
    assert one["cost_today_usd"] == pytest.approx(1.4)
    assert one["drift_pct"] == 40.0
    assert {a["kind"] for a in one["alarms"]} == {"daily_budget", "drift"}


def test_one_feature_shows_its_breakdown(url, wide):
    out = invoke("stats", "support.reply", "--database-url", url).stdout
    assert "support.reply per day, version and model" in out
    assert "gpt-4o" in out


def test_window_option(url):
    data = json.loads(
        invoke("stats", "support.reply", "--window", "7d", "--database-url", url, "--json").stdout
    )
    assert data["window"] == "7d" and data["requests"] == 2


def test_errors_in_database_mode(url):
    with pytest.raises(NotFound, match="unknown feature 'nope'"):
        invoke("stats", "nope", "--database-url", url)
    with pytest.raises(BadWindow, match="'forever'"):
        invoke("stats", "support.reply", "--window", "forever", "--database-url", url)


def test_remote_mode_answers_like_the_database(url, server):
    base, token = server
    remote = json.loads(invoke("stats", "--url", base, "--token", token, "--json").stdout)
    local = json.loads(invoke("stats", "--database-url", url, "--json").stdout)

    def comparable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in row.items() if k != "until"} for row in rows]

    assert comparable(remote) == comparable(local)
    one = json.loads(
        invoke("stats", "support.reply", "--url", base, "--token", token, "--json").stdout
    )
    assert one["requests"] == 2


def test_remote_mode_errors(server):
    base, token = server
    with pytest.raises(NotFound, match="unknown feature 'nope'"):
        invoke("stats", "nope", "--url", base, "--token", token)
    with pytest.raises(BadRequest, match="'forever'"):
        invoke("stats", "support.reply", "--window", "forever", "--url", base, "--token", token)
    with pytest.raises(RemoteError, match="unauthorized"):
        invoke("stats", "--url", base, "--token", "prt_wrong")
