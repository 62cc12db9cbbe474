"""`promptreg checklist [FEATURE] [--strict]`: the pre-ship list (SPEC §5), database and remote."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from support.cli import invoke
from support.server import AppServer
from usage_helpers import app_for, event, make_token, repo_fixture, synced_fixture  # noqa: F401  (fixtures repo, synced)

from registry.errors import NotFound
from registry.usage import Ingestor


@pytest.fixture
def url(synced: Engine) -> str:
    return synced.url.render_as_string(hide_password=False)


def checklist(*args: str) -> dict[str, dict[str, Any]]:
    """The --json checklist, as feature -> {ok, items by key}."""
    result = invoke("checklist", *args, "--json")
    assert result.exit_code == 0, result.output
    return {
        row["feature"]: {"ok": row["ok"], **{i["key"]: i for i in row["items"]}}
        for row in json.loads(result.stdout)
    }


def passed(row: dict[str, Any]) -> dict[str, bool]:
    return {key: item["passed"] for key, item in row.items() if key != "ok"}


def test_every_item_for_every_feature(url):
    rows = checklist("--database-url", url)
    assert sorted(rows) == ["kb.answer", "support.reply", "tight.reply"]
    assert passed(rows["support.reply"]) == {
        "stream": True,
        "budget": True,
        "fallback": True,
        "degraded": True,
        "usage": False,
        "rollback": True,
    }
    assert rows["support.reply"]["ok"] is True  # usage is advice, not required
    assert rows["support.reply"]["rollback"]["detail"] == "v2 live, v1 to roll back to"
    assert passed(rows["kb.answer"]) == {
        "stream": False,
        "budget": False,
        "fallback": False,
        "degraded": True,
        "usage": False,
        "rollback": False,
    }
    assert rows["kb.answer"]["ok"] is False
    assert "budget.drift_alarm_pct not set" in rows["kb.answer"]["budget"]["detail"]
    assert rows["kb.answer"]["fallback"]["detail"] == "only gpt-4o in models: add a fallback"
    required = {key for key, item in rows["kb.answer"].items() if key != "ok" and item["required"]}
    assert required == {"budget", "fallback", "degraded"}


def test_usage_in_the_last_day_passes(url, engine):
    Ingestor(engine).ingest([event(at=datetime.now(UTC).isoformat())])
    row = checklist("support.reply", "--database-url", url)["support.reply"]
    assert row["usage"]["passed"] is True
    assert row["usage"]["detail"] == "1 request(s) in the last 24 h"


def test_strict_exits_1_when_a_required_item_fails(url):
    assert invoke("checklist", "--database-url", url).exit_code == 0
    strict = invoke("checklist", "--strict", "--database-url", url)
    assert strict.exit_code == 1
    assert "required items fail for: kb.answer, tight.reply" in strict.stdout
    assert invoke("checklist", "support.reply", "--strict", "--database-url", url).exit_code == 0


def test_the_table(url, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    out = invoke("checklist", "kb.answer", "--database-url", url).stdout
    assert "kb.answer (production)" in out
    for title in (
        "streamed with a max length",
        "per-request budget with a drift alarm",
        "a fallback model",
        "a degraded message",
        "usage seen in the last 24 h",
        "versioned, with a rollback target",
    ):
        assert title in out
    assert "FAIL" in out and "pass" in out and "advice" in out


def test_unknown_feature(url):
    with pytest.raises(NotFound, match="unknown feature 'nope'"):
        invoke("checklist", "nope", "--database-url", url)


def test_remote_mode_gives_the_same_answers(url, engine, repo):
    with AppServer(app_for(engine, repo.path)) as server:
        remote = checklist("--url", server.url, "--token", make_token(engine))
    assert remote == checklist("--database-url", url)
