"""Database-mode commands: sync, features, show, history, audit, db upgrade (SPEC §5, §7, §8).

Each runs through `main()` as the installed script does, against the parametrised
database (SQLite, and PostgreSQL in CI), in human form and with `--json`.
"""

from __future__ import annotations

import getpass
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect
from support.cli import cli
from support.features import feature_files, policy, prompt
from support.git import AUTHOR, GitRepo
from support.shapes import RESOLVED_VERSION_KEYS

from registry.store import db
from registry.store.db import current_revision, head_revision, make_engine, migrate

SYNC_KEYS = {
    "repo",
    "ref",
    "label",
    "from_commit",
    "to_commit",
    "commits",
    "versions_created",
    "labels_moved",
    "retired",
    "unretired",
    "pinned_skipped",
    "rollouts_started",
    "rewritten_history",
    "errors",
    "ok",
}


# Engines the CLI opens in a test are closed afterwards (should it leave any open).
pytestmark = pytest.mark.usefixtures("cli_engines")


@pytest.fixture(autouse=True)
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables wide enough that no cell is wrapped."""
    monkeypatch.setenv("COLUMNS", "200")


@dataclass
class Registry:
    repo: GitRepo
    url: str
    c1: str
    c2: str
    c3: str

    def run(self, *args: str | Path) -> tuple[int, str, str]:
        return cli(*args, "--database-url", self.url)


@pytest.fixture
def registry(engine: Engine, tmp_path: Path) -> Registry:
    """a.x at v2 (prompt edited in c2), b.y at v1, c.z retired in c3; synced once.

    One sync over the whole history sets each label once, at the end: a.x None → 2, and
    c.z, retired before that, never gets one.
    """
    repo = GitRepo(tmp_path / "repo")
    c1 = repo.commit(
        "Add a.x, b.y and c.z",
        {**feature_files("a.x", 100), **feature_files("b.y"), **feature_files("c.z")},
    )
    c2 = repo.commit(
        "Make a.x friendlier\n\nLonger body.", {"prompts/a/x.jinja": prompt("Be friendly.")}
    )
    c3 = repo.delete("Retire c.z", "policies/c/z.yaml")
    url = engine.url.render_as_string(hide_password=False)
    state = Registry(repo, url, c1, c2, c3)
    code, out, err = state.run("sync", "--repo", repo.path, "--ref", "main", "--json")
    assert code == 0, (out, err)
    return state


# -- sync -------------------------------------------------------------------------------


def test_sync_json_summary(registry):
    repo = registry.repo
    new = repo.commit("Change b.y", {"policies/b/y.yaml": policy(300)})

    code, out, err = registry.run("sync", "--repo", repo.path, "--ref", "main", "--json")

    assert code == 0 and err == ""
    summary = json.loads(out)
    assert set(summary) == SYNC_KEYS
    assert summary == {
        "repo": str(repo.path.resolve()),
        "ref": "main",
        "label": "production",
        "from_commit": registry.c3,
        "to_commit": new,
        "commits": 1,
        "versions_created": 1,
        "labels_moved": 1,
        "retired": [],
        "unretired": [],
        "pinned_skipped": [],
        "rollouts_started": [],
        "rewritten_history": False,
        "errors": [],
        "ok": True,
    }


def test_sync_human_output(registry):
    repo = registry.repo
    repo.commit("Retire a.x", {"policies/a/x.yaml": None})
    tip = repo.commit("Break b.y", {"policies/b/y.yaml": policy(300, extra="colour: red\n")})

    code, out, _ = registry.run("sync", "--repo", repo.path, "--ref", "main")

    assert code == 1
    assert out.splitlines() == [
        f"synced {repo.path.resolve()} main → production: 2 commit(s) from {registry.c3[:12]} "
        f"to {tip[:12]}, 0 new version(s), 0 label move(s)",
        "retired a.x (policy deleted)",
        f"error {tip[:12]} policies/b/y.yaml:7: unknown key 'colour'",
    ]


def test_sync_no_new_commits_human(registry):
    code, out, _ = registry.run("sync", "--repo", registry.repo.path, "--ref", "main")
    assert code == 0
    assert f"0 commit(s) from {registry.c3[:12]} to {registry.c3[:12]}" in out
    assert "0 new version(s), 0 label move(s)" in out


# -- reading --------------------------------------------------------------------------------


def test_features_json_and_human(registry):
    assert registry.run("rollback", "a.x", "--to", "1")[0] == 0

    code, out, _ = registry.run("features", "--json")

    assert code == 0
    rows = json.loads(out)
    assert [(r["name"], r["version"], r["pinned"], r["retired"]) for r in rows] == [
        ("a.x", 1, True, False),
        ("b.y", 1, False, False),
        ("c.z", None, False, True),
    ]
    assert all(
        set(r) == {"name", "label", "version", "pinned", "updated_at", "retired"} for r in rows
    )
    assert all(r["label"] == "production" for r in rows)
    assert [bool(r["updated_at"]) for r in rows] == [True, True, False]

    code, out, _ = registry.run("features")
    assert code == 0 and "features (production)" in out
    table = {line.split()[1]: line for line in out.splitlines() if line.startswith("│")}
    assert "pinned" in table["a.x"] and "live" in table["a.x"]
    assert "retired" in table["c.z"] and " - " in table["c.z"]
    code, out, _ = registry.run("features", "--label", "staging", "--json")
    assert [r["version"] for r in json.loads(out)] == [None, None, None]


def test_show_json(registry):
    code, out, _ = registry.run("show", "a.x", "--json")

    assert code == 0
    data = json.loads(out)
    assert set(data) >= RESOLVED_VERSION_KEYS
    assert (data["feature"], data["version"], data["label"], data["pinned"]) == (
        "a.x",
        2,
        "production",
        False,
    )
    assert re.fullmatch(r"[0-9a-f]{64}", data["content_hash"])
    commit = data["commit"]
    assert {"sha", "author", "message", "committed_at"} <= set(commit)
    assert (commit["sha"], commit["author"]) == (registry.c2, AUTHOR)
    assert commit["message"] == "Make a.x friendlier\n\nLonger body."
    assert data["prompt"]["path"] == "prompts/a/x.jinja"
    assert "Be friendly." in data["prompt"]["source"]
    assert data["prompt"]["inputs"] == {"question": {"type": "string"}}
    assert data["policy"]["max_output_tokens"] == 100

    code, out, _ = registry.run("show", "a.x", "--version", "1", "--json")
    assert code == 0
    old = json.loads(out)
    assert (old["version"], old["commit"]["sha"]) == (1, registry.c1)
    assert "Be helpful." in old["prompt"]["source"]


def test_show_human(registry):
    code, out, _ = registry.run("show", "a.x")

    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "a.x version 2"
    assert f"commit        {registry.c2[:12]} {AUTHOR} 2023-11-14 22:15:20" in lines
    assert "              Make a.x friendlier" in lines
    assert "models        gpt-4o" in lines
    assert "limits        max_output_tokens=100 max_request_tokens=4000" in lines
    assert "prompts/a/x.jinja" in lines and "Be friendly." in lines

    assert registry.run("rollback", "a.x", "--to", "1")[0] == 0
    code, out, _ = registry.run("show", "a.x")
    assert out.splitlines()[0] == "a.x version 1 (pinned)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "nope"], "unknown feature 'nope'"),
        (["show", "a.x", "--version", "9"], "feature 'a.x' has no version 9"),
        (["show", "c.z"], "feature 'c.z' was retired"),
        (["history", "nope"], "unknown feature 'nope'"),
        (["audit", "--feature", "nope"], "unknown feature 'nope'"),
    ],
)
def test_reading_errors_are_one_line(registry, args, message):
    code, out, err = registry.run(*args)
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: {message}")


def test_show_a_retired_feature_by_version(registry):
    code, out, _ = registry.run("show", "c.z", "--version", "1", "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["version"], data["retired"], data["commit"]["sha"]) == (1, True, registry.c1)


def test_history_json_and_human(registry):
    code, out, _ = registry.run("history", "a.x", "--json")

    assert code == 0
    rows = json.loads(out)
    assert [r["version"] for r in rows] == [2, 1]
    assert all(
        {"version", "content_hash", "commit", "created_at", "labels"} <= set(r) for r in rows
    )
    assert [r["labels"] for r in rows] == [["production"], []]
    assert [r["commit"]["sha"] for r in rows] == [registry.c2, registry.c1]
    assert rows[0]["content_hash"] != rows[1]["content_hash"]

    code, out, _ = registry.run("history", "a.x")
    assert code == 0 and "history of a.x" in out
    body = [line for line in out.splitlines() if line.startswith("│")]
    assert (
        registry.c2[:12] in body[0] and "production" in body[0] and "Make a.x friendlier" in body[0]
    )
    assert registry.c1[:12] in body[1] and AUTHOR in body[1]
    assert "Longer body." not in out  # the first line of the message only


def test_audit_json_and_human(registry):
    assert registry.run("rollback", "a.x", "--to", "1", "--reason", "too friendly")[0] == 0

    code, out, _ = registry.run("audit", "--json")

    assert code == 0
    rows = json.loads(out)
    keys = {"feature", "label", "action", "from_version", "to_version", "actor", "reason", "at"}
    assert all(set(r) == keys for r in rows)
    assert [(r["feature"], r["action"], r["from_version"], r["to_version"]) for r in rows] == [
        ("a.x", "rollback", 2, 1),
        ("b.y", "sync", None, 1),
        ("a.x", "sync", None, 2),
        ("c.z", "retire", None, None),
    ]
    assert rows[0]["reason"] == "too friendly"
    assert rows[0]["actor"] == getpass.getuser()
    code, out, _ = registry.run("audit", "--feature", "a.x", "--limit", "1", "--json")
    assert [(r["feature"], r["action"]) for r in json.loads(out)] == [("a.x", "rollback")]
    code, out, _ = registry.run("audit", "--label", "staging", "--json")
    assert json.loads(out) == []

    code, out, _ = registry.run("audit", "--feature", "a.x")
    assert code == 0 and "audit log" in out
    body = [line for line in out.splitlines() if line.startswith("│")]
    assert "rollback" in body[0] and "too friendly" in body[0]
    assert "sync" in body[1] and f"sync main@{registry.c3[:12]}" in body[1]


# -- db upgrade and the migration gate ------------------------------------------------------


def test_db_upgrade_an_empty_database_then_again(db_url):
    code, out, _ = cli("db", "upgrade", "--database-url", db_url)

    assert code == 0
    assert out.strip() == f"database upgraded: empty → {head_revision()} (head {head_revision()})"
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
        assert {"features", "versions", "labels", "audit_entries"} <= set(
            inspect(engine).get_table_names()
        )
    finally:
        engine.dispose()

    code, out, _ = cli("db", "upgrade", "--database-url", db_url)
    assert code == 0
    assert out.strip() == f"database already at the newest migration ({head_revision()})"


def test_a_never_migrated_database(db_url, tmp_path):
    """SQLite: a new file is created and migrated; PostgreSQL: refused until `db upgrade`."""
    code, out, err = cli("features", "--json", "--database-url", db_url)
    if db_url.startswith("sqlite"):
        assert code == 0 and json.loads(out) == []
        return
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Run `promptreg db upgrade`" in err
    engine = make_engine(db_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


NEXT_MIGRATION = '''"""A later schema change: the database left at the previous one is behind.

Revision ID: 9001
Revises: {head}
"""

import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("later_change", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("later_change")
'''


@pytest.fixture
def newer_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """This promptreg, one migration ahead: a copy of migrations/ plus a revision 9001."""
    head = head_revision()
    folder = tmp_path / "migrations"
    shutil.copytree(db.MIGRATIONS_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "versions" / "9001_later_change.py").write_text(NEXT_MIGRATION.format(head=head))
    monkeypatch.setattr(db, "MIGRATIONS_DIR", folder)
    assert head_revision() == "9001"
    return head


@pytest.mark.parametrize(
    "command",
    [
        ["features"],
        ["show", "a.x"],
        ["audit"],
        ["rollback", "a.x", "--to", "1"],
        ["sync", "--repo", "repo", "--ref", "main"],
    ],
)
def test_database_behind_the_newest_migration_is_refused(db_url, newer_code, tmp_path, command):
    migrate(db_url, newer_code)  # the database as the previous release left it
    repo = GitRepo(tmp_path / "repo")
    repo.commit("one", feature_files("a.x"))

    code, out, err = cli(*command, "--database-url", db_url)

    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert f"at migration {newer_code}, behind the newest (9001)" in err
    assert "Run `promptreg db upgrade` to migrate it." in err
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == newer_code  # never migrated implicitly
        assert "later_change" not in inspect(engine).get_table_names()
    finally:
        engine.dispose()

    code, out, _ = cli("db", "upgrade", "--database-url", db_url)
    assert code == 0 and out.strip() == f"database upgraded: {newer_code} → 9001 (head 9001)"
    assert cli("features", "--database-url", db_url)[0] == 0


def test_reading_commands_close_their_database_connections(registry, cli_engines):
    cli_engines.clear()
    for command in (["features"], ["show", "a.x"], ["history", "a.x"], ["audit"]):
        assert registry.run(*command)[0] == 0
    assert [engine.pool.checkedin() for engine in cli_engines] == [0, 0, 0, 0]
