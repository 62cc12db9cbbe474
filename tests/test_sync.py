"""`registry.sync`: git history into versions and labels (SPEC §2, §3), on SQLite and PostgreSQL.

Every test builds a real repository with `support.git.GitRepo` and syncs it into the
parametrised `engine` (a new SQLite file, or a new PostgreSQL database). The
process-level promises (exit codes, two syncs at once, a sync killed half-way) run the
real command line, in-process through `main()` or as child processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlmodel import SQLModel, col, select
from support.cli import cli
from support.features import feature_files, policy, prompt
from support.git import AUTHOR, GitRepo

from registry import labels
from registry.errors import Retired
from registry.store.db import make_engine, migrate, session_scope
from registry.store.models import SyncError, SyncRun, SyncState
from registry.sync import SyncSummary, sync_ref

TONE = "prompts/partials/tone.jinja"


# Engines the CLI opens in a test are closed afterwards (should it leave any open).
pytestmark = pytest.mark.usefixtures("cli_engines")


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    """An empty repository on branch main."""
    return GitRepo(tmp_path / "repo")


def sync(engine: Engine, repo: GitRepo | str, tmp_path: Path, **kw: Any) -> SyncSummary:
    """Sync `main` of the repository into `production`."""
    kw.setdefault("ref", "main")
    return sync_ref(engine, repo=str(repo), label="production", cache_dir=tmp_path / "cache", **kw)


def db_url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def history(engine: Engine, name: str) -> list[dict[str, Any]]:
    """Versions of `name`, OLDEST first (labels.history gives newest first)."""
    with session_scope(engine) as session:
        return [v.model_dump(mode="json") for v in reversed(labels.history(session, name))]


def shas(engine: Engine, name: str) -> list[str]:
    """The commit of each version of `name`, oldest first."""
    return [v["commit"]["sha"] for v in history(engine, name)]


def live(engine: Engine, name: str) -> int:
    """The version `production` points `name` at."""
    with session_scope(engine) as session:
        return labels.resolve(session, name)[1].version


def audit(engine: Engine, name: str | None = None) -> list[dict[str, Any]]:
    with session_scope(engine) as session:
        entries = labels.audit(session, feature=name, limit=10_000)
        return [e.model_dump(mode="json") for e in entries]


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, ordered: for 'the database is exactly as before'."""
    out = {}
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            rows = conn.execute(table.select().order_by(*table.primary_key.columns)).all()
            out[table.name] = [tuple(r) for r in rows]
    return out


def counts(engine: Engine) -> dict[str, int]:
    return {name: len(rows) for name, rows in dump(engine).items()}


def recorded_errors(engine: Engine) -> list[tuple[str, str | None, str, int | None, str]]:
    """(commit, feature, file, line, message) of every stored sync error, in order."""
    with session_scope(engine) as session:
        rows = session.exec(select(SyncError).order_by(col(SyncError.id))).all()
        return [(e.commit_sha, e.feature, e.file, e.line, e.message) for e in rows]


def child_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PROMPTREG_CACHE_DIR"] = str(tmp_path / "cache")
    env.pop("PROMPTREG_DATABASE_URL", None)
    return env


# -- history walk -----------------------------------------------------------------------


def test_first_sync_walks_first_parent_history_oldest_first(engine, repo, tmp_path):
    c1 = repo.commit("add a.x and b.y", {**feature_files("a.x", 100), **feature_files("b.y")})
    repo.branch("side")
    repo.commit("side: 300", {"policies/a/x.yaml": policy(300)}, author="Grace Hopper")
    repo.commit("side: 400", {"policies/a/x.yaml": policy(400)}, author="Grace Hopper")
    repo.checkout("main")
    c2 = repo.commit("b.y: 250", {"policies/b/y.yaml": policy(250)})
    merge = repo.merge("side", "Merge branch 'side'", author="Linus Torvalds")
    c3 = repo.commit("a.x: 500", {"policies/a/x.yaml": policy(500)})

    summary = sync(engine, repo, tmp_path)

    assert summary.ok and summary.from_commit is None and summary.to_commit == c3
    assert summary.commits == 4  # c1, c2, the merge, c3: the side branch is one step
    a = history(engine, "a.x")
    assert [v["version"] for v in a] == [1, 2, 3]
    assert [v["commit"]["sha"] for v in a] == [c1, merge, c3]
    assert [v["commit"]["author"] for v in a] == [AUTHOR, "Linus Torvalds", AUTHOR]
    assert [v["commit"]["message"] for v in a] == [
        "add a.x and b.y",
        "Merge branch 'side'",
        "a.x: 500",
    ]
    dates = [v["commit"]["committed_at"] for v in a]
    assert dates == sorted(dates)
    assert shas(engine, "b.y") == [c1, c2]
    assert (live(engine, "a.x"), live(engine, "b.y")) == (3, 2)
    assert summary.versions_created == 5 and summary.labels_moved == 2
    with session_scope(engine) as session:
        _, version, _ = labels.resolve(session, "a.x", version=2)
        assert json.loads(version.content)["policy"]["max_output_tokens"] == 400


def _content_history(repo: GitRepo) -> list[tuple[str, dict[str, str | None]]]:
    """Commits and, per commit, how many versions each feature must gain from it."""
    c1 = {
        **feature_files("a.x", include="partials/tone.jinja"),
        **feature_files("b.y"),
        **feature_files("sub.c", include="partials/tone.jinja"),
        **feature_files("sub.d"),
        TONE: "Be kind.",
        "policies/sub/_defaults.yaml": "owner: team-sub\n",
        "README.md": "hello\n",
    }
    return [
        ("c1: four features", c1),
        ("c2: unrelated files", {"README.md": "hello again\n", "prompts/unused.jinja": "Unused."}),
        ("c3: the shared partial", {TONE: "Be very kind."}),
        ("c4: sub/_defaults.yaml", {"policies/sub/_defaults.yaml": "owner: team-sub-2\n"}),
        ("c5: top _defaults.yaml", {"policies/_defaults.yaml": "deadline_s: 30\n"}),
        ("c6: a comment only", {"policies/a/x.yaml": "# reviewed\n" + policy()}),
    ]


# versions each commit of _content_history adds, per feature (a.x, b.y, sub.c, sub.d)
CONTENT_DELTAS = [
    (1, 1, 1, 1),
    (0, 0, 0, 0),
    (1, 0, 1, 0),
    (0, 0, 1, 1),
    (1, 1, 1, 1),
    (0, 0, 0, 0),
]
FEATURES = ("a.x", "b.y", "sub.c", "sub.d")


@pytest.mark.parametrize("mode", ["one-sync", "sync-per-commit"])
def test_a_version_per_content_change_only(engine, repo, tmp_path, mode):
    made: list[str] = []
    for (message, files), deltas in zip(_content_history(repo), CONTENT_DELTAS, strict=True):
        made.append(repo.commit(message, files))
        if mode == "sync-per-commit":
            summary = sync(engine, repo, tmp_path)
            assert summary.ok, summary.errors
            assert summary.versions_created == sum(deltas), message
    if mode == "one-sync":
        summary = sync(engine, repo, tmp_path)
        assert summary.ok, summary.errors
        assert summary.commits == len(made)
    c1, _, c3, c4, c5, _ = made
    assert shas(engine, "a.x") == [c1, c3, c5]
    assert shas(engine, "b.y") == [c1, c5]
    assert shas(engine, "sub.c") == [c1, c3, c4, c5]
    assert shas(engine, "sub.d") == [c1, c4, c5]
    assert [live(engine, name) for name in FEATURES] == [3, 2, 4, 3]
    with session_scope(engine) as session:
        _, newest, _ = labels.resolve(session, "sub.d")
        content = json.loads(newest.content)
    assert content["policy"]["owner"] == "team-sub-2"
    assert content["policy"]["deadline_s"] == 30


def test_rerunning_without_new_commits_changes_nothing(engine, repo, tmp_path):
    for message, files in _content_history(repo)[:3]:
        repo.commit(message, files)
    assert sync(engine, repo, tmp_path).ok
    before = dump(engine)

    again = sync(engine, repo, tmp_path)

    assert again.ok and again.commits == 0 and again.versions_created == 0
    assert again.labels_moved == 0 and again.from_commit == again.to_commit == repo.head
    after = dump(engine)
    for table in ("features", "versions", "labels", "audit_entries", "sync_errors"):
        assert after[table] == before[table], table
    assert [row[1:5] for row in after["sync_states"]] == [row[1:5] for row in before["sync_states"]]
    # the run itself is logged (a sync_runs row saying it found nothing), nothing else
    assert len(after["sync_runs"]) == len(before["sync_runs"]) + 1
    with session_scope(engine) as session:
        last = session.exec(select(SyncRun).order_by(col(SyncRun.id).desc())).first()
        assert (last.status, last.versions_created, last.error_count) == ("ok", 0, 0)


def test_no_history_imports_only_the_tip(engine, repo, tmp_path):
    repo.commit("one", {**feature_files("a.x", 100), **feature_files("b.y")})
    repo.commit("two", {"policies/a/x.yaml": policy(200)})
    tip = repo.commit("three", {"policies/a/x.yaml": policy(300)})

    code, out, _ = cli(
        "sync",
        "--repo",
        repo.path,
        "--ref",
        "main",
        "--no-history",
        "--json",
        "--database-url",
        db_url_of(engine),
    )

    summary = json.loads(out)
    assert code == 0 and summary["commits"] == 1 and summary["versions_created"] == 2
    assert shas(engine, "a.x") == [tip] and shas(engine, "b.y") == [tip]
    assert history(engine, "a.x")[0]["commit"]["message"] == "three"
    assert (live(engine, "a.x"), live(engine, "b.y")) == (1, 1)
    # later syncs are incremental from the tip
    nxt = repo.commit("four", {"policies/b/y.yaml": policy(400)})
    summary = sync(engine, repo, tmp_path)
    assert summary.commits == 1 and shas(engine, "b.y") == [tip, nxt]


def test_another_label_reuses_the_versions_its_commits_already_made(engine, repo, tmp_path):
    c1 = repo.commit("one", feature_files("a.x", 100))
    c2 = repo.commit("two", {"policies/a/x.yaml": policy(200)})
    repo.git("branch", "release", c1)
    assert sync(engine, repo, tmp_path).ok  # main -> production

    staging = sync_ref(
        engine, repo=str(repo), ref="release", label="staging", cache_dir=tmp_path / "cache"
    )

    assert staging.ok and staging.versions_created == 0
    assert shas(engine, "a.x") == [c1, c2]
    with session_scope(engine) as session:
        assert labels.resolve(session, "a.x", label="staging")[1].version == 1


# -- invalid files ----------------------------------------------------------------------

BAD_LINE = 7  # policy()'s extra text starts on line 7


@pytest.mark.parametrize("mode", ["one-sync", "sync-per-commit"])
def test_broken_commit_between_two_good_ones(engine, repo, tmp_path, mode):
    url = db_url_of(engine)
    runs: list[tuple[int, dict[str, Any]]] = []

    def run_sync() -> None:
        code, out, _ = cli(
            "sync", "--repo", str(repo), "--ref", "main", "--json", "--database-url", url
        )
        runs.append((code, json.loads(out)))

    good = repo.commit("good", {**feature_files("a.x", 100), **feature_files("b.y", 100)})
    if mode == "sync-per-commit":
        run_sync()
    bad = repo.commit(
        "break a.x, change b.y",
        {"policies/a/x.yaml": policy(150, extra="colour: red\n"), "policies/b/y.yaml": policy(150)},
    )
    if mode == "sync-per-commit":
        run_sync()
        assert (live(engine, "a.x"), live(engine, "b.y")) == (1, 2)  # a.x stays on valid v1
    fix = repo.commit("fix a.x", {"policies/a/x.yaml": policy(175)})
    run_sync()

    error = {
        "commit": bad,
        "feature": "a.x",
        "file": "policies/a/x.yaml",
        "line": BAD_LINE,
        "message": "unknown key 'colour'",
    }
    if mode == "sync-per-commit":
        assert [code for code, _ in runs] == [0, 1, 0]
        assert runs[1][1]["errors"] == [error] and runs[1][1]["ok"] is False
        assert runs[1][1]["versions_created"] == 1  # b.y applied despite a.x
        assert runs[2][1]["errors"] == []
    else:
        # the error happened in this run's history, so this run exits 1, having applied all
        [(code, summary)] = runs
        assert code == 1 and summary["errors"] == [error]
        assert summary["versions_created"] == 4
    assert shas(engine, "a.x") == [good, fix]  # nothing at the broken commit
    assert shas(engine, "b.y") == [good, bad]
    assert (live(engine, "a.x"), live(engine, "b.y")) == (2, 2)
    assert recorded_errors(engine) == [
        (bad, "a.x", "policies/a/x.yaml", BAD_LINE, "unknown key 'colour'")
    ]


def test_feature_broken_at_the_tip_keeps_its_label_and_the_cli_prints_file_line(
    engine, repo, tmp_path
):
    repo.commit("good", feature_files("a.x", 100))
    sync(engine, repo, tmp_path)
    bad = repo.commit("bad", {"policies/a/x.yaml": policy(150, extra="colour: red\n")})

    code, out, _ = cli(
        "sync", "--repo", str(repo), "--ref", "main", "--database-url", db_url_of(engine)
    )

    assert code == 1
    assert f"error {bad[:12]} policies/a/x.yaml:{BAD_LINE}: unknown key 'colour'" in out
    assert live(engine, "a.x") == 1 and len(history(engine, "a.x")) == 1
    with session_scope(engine) as session:
        run = session.exec(select(SyncRun).order_by(col(SyncRun.id).desc())).first()
        assert (run.status, run.error_count, run.to_commit) == ("errors", 1, bad)


def test_partial_deleted_while_included_then_restored(engine, repo, tmp_path):
    first = repo.commit(
        "a.x includes tone",
        {**feature_files("a.x", include="partials/tone.jinja"), **feature_files("b.y"), TONE: "1"},
    )
    assert sync(engine, repo, tmp_path).ok

    gone = repo.delete("delete the partial", TONE)
    broken = sync(engine, repo, tmp_path)

    assert not broken.ok and broken.versions_created == 0
    assert [(e["commit"], e["feature"], e["file"], e["line"]) for e in broken.errors] == [
        (gone, "a.x", "prompts/a/x.jinja", 7)
    ]
    assert "partials/tone.jinja" in broken.errors[0]["message"]
    assert live(engine, "a.x") == 1

    back = repo.commit("restore the partial", {TONE: "2"})
    restored = sync(engine, repo, tmp_path)

    assert restored.ok and restored.versions_created == 1
    assert shas(engine, "a.x") == [first, back] and live(engine, "a.x") == 2
    assert shas(engine, "b.y") == [first]


@pytest.mark.parametrize(
    "between",
    [
        "nothing",
        "a sync with nothing new",  # e.g. a scheduled sync
        "a commit outside the registry",
    ],
)
def test_a_broken_feature_is_rechecked_when_the_file_it_lacked_arrives(
    engine, repo, tmp_path, between
):
    first = repo.commit("one", {**feature_files("a.x"), **feature_files("b.y")})
    assert sync(engine, repo, tmp_path).ok
    repo.commit(
        "b.y uses a prompt not written yet",
        {"policies/b/y.yaml": "prompt: shared/new\n" + policy(300)},
    )
    broken = sync(engine, repo, tmp_path)
    assert [(e["feature"], e["file"]) for e in broken.errors] == [("b.y", "policies/b/y.yaml")]
    assert "prompt file not found" in broken.errors[0]["message"]
    if between == "a sync with nothing new":
        assert sync(engine, repo, tmp_path).commits == 0
    elif between == "a commit outside the registry":
        repo.commit("docs", {"README.md": "b.y needs a prompt\n"})
        assert sync(engine, repo, tmp_path).commits == 1

    fix = repo.commit("add the prompt", {"prompts/shared/new.jinja": prompt("New.")})
    fixed = sync(engine, repo, tmp_path)

    assert fixed.ok
    assert shas(engine, "b.y") == [first, fix] and live(engine, "b.y") == 2


# -- retirement -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["one-sync", "sync-per-commit"])
def test_renamed_policy_retires_the_old_name_and_a_deleted_one_comes_back(
    engine, repo, tmp_path, mode
):
    def step() -> SyncSummary | None:
        return sync(engine, repo, tmp_path) if mode == "sync-per-commit" else None

    first = repo.commit("two features", {**feature_files("a.x"), **feature_files("b.y", 100)})
    step()
    repo.rename("policies/a/x.yaml", "policies/a/renamed.yaml")
    repo.rename("prompts/a/x.jinja", "prompts/a/renamed.jinja")
    renamed = repo.commit("rename a.x to a.renamed")
    s1 = step()
    repo.delete("delete b.y", "policies/b/y.yaml")
    s2 = step()
    back = repo.commit("b.y is back", {"policies/b/y.yaml": policy(120)})
    s3 = step()
    if mode == "one-sync":
        s1 = s2 = s3 = sync(engine, repo, tmp_path)
    assert s1 and s2 and s3
    assert "a.x" in s1.retired and "b.y" in s2.retired and s3.unretired == ["b.y"]

    with session_scope(engine) as session:
        with pytest.raises(Retired, match="a.x"):
            labels.resolve(session, "a.x")
        _, old, _ = labels.resolve(session, "a.x", version=1)  # history stays readable
        assert old.commit_sha == first
        _, new, _ = labels.resolve(session, "a.renamed")
        assert (new.version, new.commit_sha) == (1, renamed)
        feature, b, _ = labels.resolve(session, "b.y")
        assert not feature.retired and (b.version, b.commit_sha) == (2, back)
    # one sync over the whole history sets the label once, at the end
    first_sync = ["sync"] if mode == "sync-per-commit" else []
    assert [e["action"] for e in reversed(audit(engine, "a.x"))] == [*first_sync, "retire"]
    assert [e["action"] for e in reversed(audit(engine, "b.y"))] == [
        *first_sync,
        "retire",
        "unretire",
        "sync",
    ]
    retire = next(e for e in audit(engine, "a.x") if e["action"] == "retire")
    assert retire["actor"] and renamed[:12] in retire["reason"]


# -- processes --------------------------------------------------------------------------


def _long_history(repo: GitRepo, features: int, commits: int) -> str:
    files: dict[str, str | bytes | None] = {}
    for i in range(features):
        files.update(feature_files(f"f{i}", 100))
    changes = [
        (f"change {n}", {f"policies/f{n % features}.yaml": policy(101 + n)}) for n in range(commits)
    ]
    return repo.fast_import([("many features", files), *changes])


def _promptreg(*args: str) -> list[str]:
    return [sys.executable, "-m", "registry", *args]


@pytest.mark.slow
def test_two_syncs_at_once_are_serialised(engine, repo, tmp_path):
    _long_history(repo, features=10, commits=150)
    url = db_url_of(engine)
    command = _promptreg(
        "sync", "--repo", str(repo), "--ref", "main", "--json", "--database-url", url
    )
    env = child_env(tmp_path)
    children = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    results = [child.communicate(timeout=120) for child in children]

    assert [child.returncode for child in children] == [0, 0], [r[1].decode() for r in results]
    summaries = [json.loads(out) for out, _ in results]
    assert sorted(s["commits"] for s in summaries) == [0, 151]
    assert sum(s["versions_created"] for s in summaries) == 160
    with session_scope(engine) as session:
        runs = session.exec(select(SyncRun).order_by(col(SyncRun.started_at))).all()
        assert len(runs) == 2 and all(r.status == "ok" for r in runs)
        assert runs[1].started_at >= runs[0].finished_at  # one after the other
    with engine.connect() as conn:
        twice = conn.execute(
            text(
                "SELECT feature_id, content_hash FROM versions "
                "GROUP BY feature_id, content_hash HAVING COUNT(*) > 1"
            )
        ).all()
    assert twice == []
    assert counts(engine)["versions"] == 160


def _reference_versions(repo: GitRepo, tmp_path: Path) -> list[tuple[Any, ...]]:
    """(feature, version, hash, commit) of one uninterrupted sync into a fresh SQLite file."""
    url = f"sqlite:///{tmp_path / 'reference.db'}"
    migrate(url)
    engine = make_engine(url)
    try:
        sync(engine, repo, tmp_path)
        return _versions(engine)
    finally:
        engine.dispose()


def _versions(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT f.name, v.version, v.content_hash, v.commit_sha FROM versions v "
                    "JOIN features f ON f.id = v.feature_id ORDER BY f.name, v.version"
                )
            ).all()
        ]


# `promptreg sync` as installed, but its progress callback reports on stdout and, at the
# half-way commit, waits for a line on stdin: the test kills it there, inside its
# transaction, whatever the speed of the machine.
SYNC_PAUSED_HALF_WAY = """
import sys
import registry.sync as command
from registry.cli import main

real_sync_ref = command.sync_ref  # the CLI imports it from registry.sync when it runs


def sync_ref(*args, progress, **kwargs):
    def report(done, total, sha):
        progress(done, total, sha)
        if done == total // 2:
            print(f"applied {done}/{total}", flush=True)
            sys.stdin.readline()

    return real_sync_ref(*args, progress=report, **kwargs)


command.sync_ref = sync_ref
sys.argv = ["promptreg", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
def test_sync_killed_half_way_leaves_the_database_as_before(engine, repo, tmp_path):
    repo.commit("start", {**feature_files("f0", 100), **feature_files("f1", 100)})
    assert sync(engine, repo, tmp_path).ok
    before = dump(engine)
    _long_history(repo, features=20, commits=300)

    child = subprocess.Popen(
        [sys.executable, "-c", SYNC_PAUSED_HALF_WAY, "sync", "--repo", str(repo), "--ref", "main"]
        + ["--database-url", db_url_of(engine)],
        env=child_env(tmp_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        reported = child.stdout.readline()  # its transaction holds 150 commits' work
        if not reported.startswith(b"applied 150/301"):
            child.kill()
            _, err = child.communicate()
            raise AssertionError(f"no progress reported: {reported!r}; stderr:\n{err.decode()}")
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()

    assert dump(engine) == before  # not one row of the half-done sync

    summary = sync(engine, repo, tmp_path)
    # f0 and f1 are unchanged by the first new commit: 18 new features, then 300 changes
    assert summary.ok and summary.commits == 301 and summary.versions_created == 318
    assert _versions(engine) == _reference_versions(repo, tmp_path)


def test_force_pushed_ref_is_reported_and_the_new_tip_synced(engine, repo, tmp_path):
    c1 = repo.commit("one", {**feature_files("a.x", 100), **feature_files("b.y")})
    c2 = repo.commit("two", {"policies/a/x.yaml": policy(200)})
    assert sync(engine, repo, tmp_path).ok
    kept = _versions(engine)
    new_root = repo.replace_history(
        "rewritten", {**feature_files("a.x", 300), **feature_files("b.y")}
    )

    code, out, _ = cli(
        "sync", "--repo", str(repo), "--ref", "main", "--json", "--database-url", db_url_of(engine)
    )

    assert code == 0
    summary = json.loads(out)
    assert summary["rewritten_history"] is True
    assert (summary["from_commit"], summary["to_commit"]) == (c2, new_root)
    assert summary["commits"] == 1 and summary["versions_created"] == 1
    assert set(kept) <= set(_versions(engine))  # no version deleted
    assert shas(engine, "a.x") == [c1, c2, new_root]
    assert shas(engine, "b.y") == [c1]  # same content at the new tip: no new version
    assert (live(engine, "a.x"), live(engine, "b.y")) == (3, 1)
    assert any("history was rewritten" in e[4] for e in recorded_errors(engine))
    # and syncing continues incrementally from the new tip
    nxt = repo.commit("after", {"policies/b/y.yaml": policy(120)})
    after = sync(engine, repo, tmp_path)
    assert not after.rewritten and after.from_commit == new_root and after.commits == 1
    assert shas(engine, "b.y") == [c1, nxt]


def test_force_push_that_drops_a_policy_retires_it(engine, repo, tmp_path):
    repo.commit("one", {**feature_files("a.x", 100), **feature_files("b.y")})
    assert sync(engine, repo, tmp_path).ok
    repo.replace_history("rewritten without b.y", feature_files("a.x", 300))

    summary = sync(engine, repo, tmp_path)

    assert summary.rewritten and summary.retired == ["b.y"]
    with session_scope(engine) as session, pytest.raises(Retired):
        labels.resolve(session, "b.y")


# -- repositories and refs --------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "ref", "message"),
    [
        ("plain", "main", "is not a git repository"),
        ("missing", "main", "no such directory"),
        ("repo", "no-such-branch", "ref 'no-such-branch' does not exist"),
    ],
)
def test_unreadable_repository_or_ref_is_one_line_and_writes_nothing(
    engine, repo, tmp_path, where, ref, message
):
    repo.commit("one", feature_files("a.x"))
    (tmp_path / "plain").mkdir()
    before = dump(engine)

    code, out, err = cli(
        "sync", "--repo", str(tmp_path / where), "--ref", ref, "--database-url", db_url_of(engine)
    )

    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert message in err
    assert dump(engine) == before


@pytest.mark.parametrize("outcome", ["synced", "unreadable"])
def test_sync_command_closes_its_database_connections(engine, repo, tmp_path, cli_engines, outcome):
    repo.commit("one", feature_files("a.x"))
    where = repo.path if outcome == "synced" else tmp_path / "missing"

    code, _, _ = cli("sync", "--repo", where, "--ref", "main", "--database-url", db_url_of(engine))

    assert [e.pool.checkedin() for e in cli_engines] == [0]
    assert code == (0 if outcome == "synced" else 1)


def test_repository_url_is_cloned_into_the_cache_and_fetched_next_time(engine, repo, tmp_path):
    c1 = repo.commit("one", feature_files("a.x", 100))
    url = f"file://{repo.path}"

    first = sync(engine, url, tmp_path)

    assert first.ok and first.repo == url and first.versions_created == 1
    clones = [p for p in (tmp_path / "cache").iterdir() if (p / "HEAD").exists()]
    assert len(clones) == 1
    c2 = repo.commit("two", {"policies/a/x.yaml": policy(200)})

    second = sync(engine, url, tmp_path)

    assert second.ok and second.from_commit == c1 and second.to_commit == c2
    assert second.commits == 1 and shas(engine, "a.x") == [c1, c2]
    assert [p for p in (tmp_path / "cache").iterdir() if (p / "HEAD").exists()] == clones
    with session_scope(engine) as session:
        states = session.exec(select(SyncState)).all()
        assert [(s.repo, s.commit_sha) for s in states] == [(url, c2)]


def test_symlink_leaving_the_repository_is_an_error(engine, repo, tmp_path):
    (tmp_path / "outside.jinja").write_text("Secret.\n")
    c1 = repo.commit("one", {**feature_files("a.x"), **feature_files("b.y")})
    assert sync(engine, repo, tmp_path).ok
    repo.symlink("prompts/a/x.jinja", "../../../outside.jinja")
    repo.write({"prompts/shared/y.jinja": prompt("Shared.")})
    repo.symlink("prompts/b/y.jinja", "../shared/y.jinja")  # inside: followed
    repo.symlink("policies/c.yaml", "/etc/passwd")
    c2 = repo.commit("links")
    assert repo.git("ls-files", "-s", "prompts/a/x.jinja").startswith("120000")

    summary = sync(engine, repo, tmp_path)

    assert not summary.ok
    refused = {(e["file"], e["feature"]) for e in summary.errors}
    assert ("prompts/a/x.jinja", "a.x") in refused
    assert ("policies/c.yaml", "c") in refused
    assert all("outside the repository" in e["message"] for e in summary.errors)
    assert all(e["commit"] == c2 for e in summary.errors)
    assert shas(engine, "a.x") == [c1] and live(engine, "a.x") == 1
    assert shas(engine, "b.y") == [c1, c2] and live(engine, "b.y") == 2
    with session_scope(engine) as session:
        _, b, _ = labels.resolve(session, "b.y")
        assert "Shared." in json.loads(b.content)["prompt"]["source"]
    assert {e[2] for e in recorded_errors(engine)} >= {"prompts/a/x.jinja", "policies/c.yaml"}
