"""`registry.labels`: rollback, promote, pinning and the audit log (SPEC §2), on both databases.

The `synced` repository is synced after every commit, so `production` moved through
every version (a.x: 1 → 2 → 3) the way it does in real life, where each merge is
synced by a webhook. Failed moves must leave labels and the audit log exactly as they
were; the command-line tests go through `main()`, as the installed script does.
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import SQLModel
from support.cli import cli
from support.features import feature_files, policy
from support.git import GitRepo

from registry import labels
from registry.errors import Conflict, NotFound, Retired
from registry.labels import LabelMove
from registry.store.db import session_scope
from registry.sync import SyncSummary, sync_ref

SYNC_ACTOR = "ci-bot"


# Engines the CLI opens in a test are closed afterwards (should it leave any open).
pytestmark = pytest.mark.usefixtures("cli_engines")


@dataclass
class Synced:
    """The repository, its commits by name, and the database it was synced into."""

    repo: GitRepo
    engine: Engine
    tmp_path: Path
    commits: dict[str, str]

    def commit(self, message: str, files: dict[str, str | None]) -> str:
        self.commits[message] = self.repo.commit(message, files)
        return self.commits[message]

    def sync(self) -> SyncSummary:
        return sync_ref(
            self.engine,
            repo=str(self.repo),
            ref="main",
            label="production",
            cache_dir=self.tmp_path / "cache",
            actor=SYNC_ACTOR,
        )

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=False)


@pytest.fixture
def synced(engine: Engine, tmp_path: Path) -> Synced:
    """a.x at v3 (label moved 1 → 2 → 3), b.y at v1, c.z retired; one sync per commit."""
    state = Synced(GitRepo(tmp_path / "repo"), engine, tmp_path, {})
    state.commit(
        "c1", {**feature_files("a.x", 100), **feature_files("b.y"), **feature_files("c.z")}
    )
    state.sync()
    state.commit("c2", {"policies/a/x.yaml": policy(200)})
    state.sync()
    state.commit("c3", {"policies/a/x.yaml": policy(300), "policies/c/z.yaml": None})
    summary = state.sync()
    assert summary.ok and summary.retired == ["c.z"]
    return state


def live(engine: Engine, name: str) -> tuple[int, bool]:
    """(version, pinned) of `production` for `name`."""
    with session_scope(engine) as session:
        _, version, label = labels.resolve(session, name)
        assert label is not None
        return version.version, label.pinned


def audit(engine: Engine, name: str | None = None) -> list[dict[str, Any]]:
    """Audit entries, OLDEST first."""
    with session_scope(engine) as session:
        entries = labels.audit(session, feature=name, limit=10_000)
        return [e.model_dump(mode="json") for e in reversed(entries)]


def moves(engine: Engine, name: str) -> list[tuple[str, int | None, int | None]]:
    return [(e["action"], e["from_version"], e["to_version"]) for e in audit(engine, name)]


def label_state(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of labels and audit_entries: a failed move must leave both untouched."""
    out = {}
    with engine.connect() as conn:
        for name in ("labels", "audit_entries"):
            table = SQLModel.metadata.tables[name]
            rows = conn.execute(table.select().order_by(*table.primary_key.columns)).all()
            out[name] = [tuple(r) for r in rows]
    return out


# -- rollback and promote ---------------------------------------------------------------


def test_rollback_goes_to_the_previous_version_and_pins(synced):
    with session_scope(synced.engine) as session:
        move = labels.rollback(session, "a.x", actor="oncall", reason="bad answers")

    assert move == LabelMove("a.x", "production", 3, 2, True)
    assert live(synced.engine, "a.x") == (2, True)
    assert live(synced.engine, "b.y") == (1, False)
    last = audit(synced.engine, "a.x")[-1]
    assert (last["action"], last["from_version"], last["to_version"]) == ("rollback", 3, 2)
    assert (last["actor"], last["reason"], last["label"]) == ("oncall", "bad answers", "production")


def test_two_rollbacks_in_a_row_go_two_steps_back(synced):
    for expected in (2, 1):
        with session_scope(synced.engine) as session:
            assert labels.rollback(session, "a.x", actor="oncall").to_version == expected
    assert live(synced.engine, "a.x") == (1, True)
    before = label_state(synced.engine)
    with session_scope(synced.engine) as session, pytest.raises(Conflict, match="no earlier"):
        labels.rollback(session, "a.x", actor="oncall")
    assert label_state(synced.engine) == before


def test_sync_records_new_versions_but_does_not_move_a_pinned_label(synced):
    with session_scope(synced.engine) as session:
        labels.rollback(session, "a.x", actor="oncall")
    audited = len(audit(synced.engine, "a.x"))
    c4 = synced.commit("c4", {"policies/a/x.yaml": policy(400), "policies/b/y.yaml": policy(400)})

    summary = synced.sync()

    assert summary.ok and summary.versions_created == 2
    assert summary.pinned_skipped == ["a.x"] and summary.labels_moved == 1
    assert live(synced.engine, "a.x") == (2, True)
    assert live(synced.engine, "b.y") == (2, False)
    with session_scope(synced.engine) as session:
        newest = labels.history(session, "a.x")[0].model_dump(mode="json")
    assert (newest["version"], newest["commit"]["sha"], newest["labels"]) == (4, c4, [])
    assert len(audit(synced.engine, "a.x")) == audited  # no move, so no entry


def test_promote_goes_to_the_newest_and_unpins_so_syncs_move_it_again(synced):
    with session_scope(synced.engine) as session:
        labels.rollback(session, "a.x", actor="oncall")
    synced.commit("c4", {"policies/a/x.yaml": policy(400)})
    synced.sync()

    with session_scope(synced.engine) as session:
        move = labels.promote(session, "a.x", actor="oncall", reason="fixed in c4")

    assert move == LabelMove("a.x", "production", 2, 4, False)
    assert live(synced.engine, "a.x") == (4, False)
    last = audit(synced.engine, "a.x")[-1]
    assert (last["action"], last["actor"], last["reason"]) == ("promote", "oncall", "fixed in c4")
    synced.commit("c5", {"policies/a/x.yaml": policy(500)})
    summary = synced.sync()
    assert summary.pinned_skipped == [] and live(synced.engine, "a.x") == (5, False)


def test_rollback_to_n_then_promote_version_n(synced):
    with session_scope(synced.engine) as session:
        back = labels.rollback(session, "a.x", to_version=1, actor="oncall")
        assert back == LabelMove("a.x", "production", 3, 1, True)
    with session_scope(synced.engine) as session:
        forward = labels.promote(session, "a.x", version=2, actor="oncall")
        assert forward == LabelMove("a.x", "production", 1, 2, False)
    assert live(synced.engine, "a.x") == (2, False)
    assert moves(synced.engine, "a.x")[-2:] == [("rollback", 3, 1), ("promote", 1, 2)]


def test_after_any_sync_an_unpinned_label_points_at_the_newest_version(synced):
    with session_scope(synced.engine) as session:
        labels.promote(session, "a.x", version=2, actor="oncall")  # un-pinned, not newest
    synced.commit("c4", {"policies/b/y.yaml": policy(400)})  # a.x untouched

    synced.sync()

    assert live(synced.engine, "a.x") == (3, False)


def test_every_label_move_is_audited_with_actor_and_reason(synced):
    with session_scope(synced.engine) as session:
        labels.rollback(session, "a.x", actor="oncall", reason="incident 7")
    with session_scope(synced.engine) as session:
        labels.promote(session, "a.x", actor="alice", reason=None)

    entries = audit(synced.engine, "a.x")
    assert [(e["action"], e["from_version"], e["to_version"], e["actor"]) for e in entries] == [
        ("sync", None, 1, SYNC_ACTOR),
        ("sync", 1, 2, SYNC_ACTOR),
        ("sync", 2, 3, SYNC_ACTOR),
        ("rollback", 3, 2, "oncall"),
        ("promote", 2, 3, "alice"),
    ]
    commits = [synced.commits[c][:12] for c in ("c1", "c2", "c3")]
    assert [e["reason"] for e in entries] == [
        *(f"sync main@{sha}" for sha in commits),
        "incident 7",
        None,
    ]
    assert all(e["label"] == "production" and e["feature"] == "a.x" for e in entries)
    stamps = [e["at"] for e in entries]
    assert stamps == sorted(stamps)
    retire = audit(synced.engine, "c.z")[-1]
    assert (retire["action"], retire["actor"]) == ("retire", SYNC_ACTOR)
    assert synced.commits["c3"][:12] in retire["reason"]


# -- refusals change nothing --------------------------------------------------------------

REFUSALS = [
    pytest.param("rollback", "nope", {}, NotFound, "unknown feature 'nope'", id="rollback-unknown"),
    pytest.param(
        "rollback", "a.x", {"to_version": 9}, NotFound, "no version 9", id="rollback-to-9"
    ),
    pytest.param("rollback", "b.y", {}, Conflict, "no earlier target", id="rollback-no-target"),
    pytest.param("rollback", "c.z", {}, Retired, "retired", id="rollback-retired"),
    pytest.param("promote", "nope", {}, NotFound, "unknown feature 'nope'", id="promote-unknown"),
    pytest.param("promote", "a.x", {"version": 9}, NotFound, "no version 9", id="promote-9"),
    pytest.param("promote", "c.z", {}, Retired, "retired", id="promote-retired"),
]


@pytest.mark.parametrize(("action", "name", "kw", "error", "message"), REFUSALS)
def test_refused_moves_change_nothing(synced, action, name, kw, error, message):
    before = label_state(synced.engine)
    move = getattr(labels, action)

    with pytest.raises(error, match=message), session_scope(synced.engine) as session:
        move(session, name, actor="oncall", **kw)

    assert label_state(synced.engine) == before


CLI_REFUSALS = [
    pytest.param(["rollback", "nope"], "unknown feature 'nope'", id="rollback-unknown"),
    pytest.param(["rollback", "a.x", "--to", "9"], "no version 9", id="rollback-to-9"),
    pytest.param(["rollback", "b.y"], "no earlier target", id="rollback-no-target"),
    pytest.param(["rollback", "c.z"], "retired", id="rollback-retired"),
    pytest.param(["promote", "a.x", "--version", "9"], "no version 9", id="promote-9"),
]


@pytest.mark.parametrize(("args", "message"), CLI_REFUSALS)
def test_cli_refusals_are_one_line_and_change_nothing(synced, args, message):
    before = label_state(synced.engine)

    code, out, err = cli(*args, "--reason", "try", "--database-url", synced.url)

    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and message in err
    assert label_state(synced.engine) == before


# -- the command line -------------------------------------------------------------------


def test_cli_rollback_and_promote_record_the_os_user_and_reason(synced):
    code, out, _ = cli("rollback", "a.x", "--reason", "bad tone", "--database-url", synced.url)
    assert code == 0
    assert out.strip() == "a.x production: rolled back version 3 → 2 (pinned)"

    code, out, _ = cli("promote", "a.x", "--version", "3", "--json", "--database-url", synced.url)
    assert code == 0
    assert json.loads(out) == {
        "feature": "a.x",
        "label": "production",
        "from_version": 2,
        "to_version": 3,
        "pinned": False,
    }

    code, out, _ = cli("audit", "--feature", "a.x", "--json", "--database-url", synced.url)
    assert code == 0
    rollback, promote = json.loads(out)[1::-1]  # newest first: promote, rollback
    user = getpass.getuser()
    assert (rollback["action"], rollback["actor"], rollback["reason"]) == (
        "rollback",
        user,
        "bad tone",
    )
    assert (promote["action"], promote["actor"], promote["reason"]) == ("promote", user, None)


@pytest.fixture
def four(engine: Engine, tmp_path: Path) -> Synced:
    """p, q, r from c1; p and q change in c2; q changes and s appears in c3."""
    state = Synced(GitRepo(tmp_path / "repo"), engine, tmp_path, {})
    state.commit("c1", {**feature_files("p", 100), **feature_files("q", 100), **feature_files("r")})
    state.sync()
    state.commit("c2", {"policies/p.yaml": policy(200), "policies/q.yaml": policy(200)})
    state.sync()
    state.commit("c3", {"policies/q.yaml": policy(300), **feature_files("s")})
    state.sync()
    return state


def test_cli_rollback_all_to_commit(four):
    c1 = four.commits["c1"]
    code, out, _ = cli(
        "rollback",
        "--all",
        "--to-commit",
        c1[:10],
        "--repo",
        four.repo.path,
        "--reason",
        "incident 42",
        "--json",
        "--database-url",
        four.url,
    )

    assert code == 0, out
    assert json.loads(out) == [
        {"feature": "p", "label": "production", "from_version": 2, "to_version": 1, "pinned": True},
        {"feature": "q", "label": "production", "from_version": 3, "to_version": 1, "pinned": True},
    ]
    assert [live(four.engine, n) for n in "pqrs"] == [(1, True), (1, True), (1, False), (1, False)]
    for name in "pq":
        last = audit(four.engine, name)[-1]
        assert (last["action"], last["reason"], last["actor"]) == (
            "rollback",
            "incident 42",
            getpass.getuser(),
        )
    # already there: nothing to do, nothing written
    before = label_state(four.engine)
    code, out, _ = cli(
        "rollback", "--all", "--to-commit", c1, "--repo", four.repo.path, "--database-url", four.url
    )
    assert code == 0 and "nothing to roll back" in out
    assert label_state(four.engine) == before


def test_cli_rollback_all_is_one_transaction(four, monkeypatch):
    before = label_state(four.engine)
    real = labels.move
    calls = []

    def second_move_fails(*args: Any, **kw: Any) -> Any:
        calls.append(args[1].name)
        if len(calls) == 2:
            raise RuntimeError("database went away")
        return real(*args, **kw)

    monkeypatch.setattr(labels, "move", second_move_fails)

    code, _, err = cli(
        "rollback",
        "--all",
        "--to-commit",
        four.commits["c1"],
        "--repo",
        four.repo.path,
        "--database-url",
        four.url,
    )

    # An unexpected error is one line, not a traceback, and says nothing was changed.
    assert code == 1 and err.count("\n") == 1
    assert "RuntimeError: database went away" in err and "nothing was changed" in err
    assert calls == ["p", "q"]  # p was moved inside the transaction, then undone
    assert label_state(four.engine) == before


def test_cli_rollback_all_unknown_commit_is_one_line_and_changes_nothing(four):
    before = label_state(four.engine)

    code, out, err = cli(
        "rollback",
        "--all",
        "--to-commit",
        "0badc0de",
        "--repo",
        four.repo.path,
        "--database-url",
        four.url,
    )

    assert code == 1 and out == ""
    assert err.strip() == "error: commit '0badc0de' does not exist in the repository"
    assert label_state(four.engine) == before
