"""The sync lock: a second sync waits for the first, and a killed sync leaves no trace."""

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, select
from support.wait import wait_for

from registry.errors import SyncLockTimeout
from registry.store import crud
from registry.store.db import session_scope, sync_lock
from registry.store.models import CommitInfo, Feature, Label, Version, utcnow

# A stand-in for `promptreg sync`: lock, write, then commit, or hold the transaction open
# until the test writes a line to its stdin (or kills it).
SYNC = """
import sys
from sqlmodel import select
from registry import labels
from registry.store import crud, make_engine, session_scope, sync_lock
from registry.store.models import CommitInfo, Feature, utcnow

url, name, mode = sys.argv[1:4]
engine = make_engine(url)
with session_scope(engine) as session:
    print("locking", flush=True)
    sync_lock(session, timeout_s=60)
    seen = ",".join(sorted(f.name for f in session.exec(select(Feature)).all()))
    print(f"locked seen={seen}", flush=True)
    feature = crud.get_or_create_feature(session=session, name=name)
    version = crud.add_version(
        session=session, feature=feature, content_hash="0" * 64, content="{}",
        prompt_path="p", policy_path="q",
        commit=CommitInfo(sha="1" * 40, author="a", email="e", message="m", committed_at=utcnow()),
    )
    labels.move(session, feature, "production", version, pinned=False, action="sync", actor="ci")
    session.flush()
    print("written", flush=True)
    if mode == "hold":
        sys.stdin.readline()
print("committed", flush=True)
"""


Child = subprocess.Popen[bytes]
StartSync = Callable[..., Child]


@pytest.fixture
def start_sync(db_url: str) -> Iterator[StartSync]:
    """Start SYNC in a child process; every child is reaped (pipes closed) after the test."""
    children: list[Child] = []

    def start(name: str, *, hold: bool = False) -> Child:
        # Unbuffered pipes: a line is read byte by byte, nothing read ahead and kept aside.
        child = subprocess.Popen(
            [sys.executable, "-c", SYNC, db_url, name, "hold" if hold else "commit"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        children.append(child)
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.communicate()


def expect_line(proc: Child, prefix: str) -> str:
    """The child's next line, which must start with `prefix`."""
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith(prefix):
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"expected {prefix!r}, got {line!r}; stderr:\n{err.decode()}")
    return line.strip()


def release(proc: Child) -> None:
    """Let a child started with `hold=True` commit."""
    assert proc.stdin is not None
    proc.stdin.write(b"commit\n")


def has_output(proc: Child) -> bool:
    """Whether the child has written anything the test has not read yet (without waiting)."""
    assert proc.stdout is not None  # unbuffered: what the child wrote is still in the pipe
    with selectors.DefaultSelector() as ready:
        ready.register(proc.stdout, selectors.EVENT_READ)
        return bool(ready.select(timeout=0))


def advisory_lock_waiters(engine: Engine) -> int:
    """PostgreSQL: sessions of this database waiting for an advisory lock."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        ).scalar_one()


def feature_names(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return sorted(f.name for f in session.exec(select(Feature)).all())


def test_second_sync_waits_for_the_first_then_runs(engine: Engine, start_sync: StartSync) -> None:
    first = start_sync("first", hold=True)
    expect_line(first, "locking")
    expect_line(first, "locked")
    expect_line(first, "written")  # it holds the lock, its work not committed
    second = start_sync("second")
    expect_line(second, "locking")
    if engine.dialect.name == "postgresql":  # the server shows who waits for the lock
        wait_for(lambda: advisory_lock_waiters(engine) == 1, 60, "the second sync to queue")
    assert not has_output(second), "the second sync went ahead while the first held the lock"

    release(first)
    locked = expect_line(second, "locked")
    # It ran only after the first committed: it saw the first one's feature.
    assert locked.endswith("seen=first"), locked
    for child in (first, second):
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    assert feature_names(engine) == ["first", "second"]


def test_killed_sync_leaves_the_database_as_before(engine: Engine, start_sync: StartSync) -> None:
    with session_scope(engine) as session:
        crud.get_or_create_feature(session=session, name="existing")
    sync = start_sync("killed", hold=True)
    expect_line(sync, "locking")
    expect_line(sync, "locked")
    expect_line(sync, "written")
    os.kill(sync.pid, signal.SIGKILL)
    sync.communicate(timeout=30)
    assert feature_names(engine) == ["existing"]
    with Session(engine) as session:
        assert session.exec(select(Version)).all() == []
        assert session.exec(select(Label)).all() == []
        assert crud.list_audit(session=session) == []
        session.rollback()
        sync_lock(session, timeout_s=10)  # the dead process's lock is gone: no SyncLockTimeout
        if engine.dialect.name == "sqlite":
            assert session.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
    after = start_sync("after")
    _, err = after.communicate(timeout=120)
    assert after.returncode == 0, err
    assert feature_names(engine) == ["after", "existing"]


def test_lock_timeout_raises_and_the_session_stays_usable(engine: Engine) -> None:
    with Session(engine) as holder, Session(engine) as waiter:
        sync_lock(holder, timeout_s=5)
        started = time.monotonic()
        with pytest.raises(SyncLockTimeout, match="more than 0.5 s"):
            sync_lock(waiter, timeout_s=0.5)
        assert 0.4 < time.monotonic() - started < 10
        assert not waiter.in_transaction()
        holder.commit()
        sync_lock(waiter, timeout_s=5)
        crud.get_or_create_feature(session=waiter, name="late")
        waiter.commit()
    assert feature_names(engine) == ["late"]


def test_readers_are_not_blocked_by_a_sync(engine: Engine) -> None:
    with session_scope(engine) as session:
        crud.get_or_create_feature(session=session, name="old")
    with Session(engine) as syncing:
        sync_lock(syncing, timeout_s=5)
        crud.get_or_create_feature(session=syncing, name="new")
        started = time.monotonic()
        assert feature_names(engine) == ["old"]  # uncommitted work is invisible
        assert time.monotonic() - started < 2
        syncing.commit()
    assert feature_names(engine) == ["new", "old"]


def test_postgres_lock_timeout_setting_is_restored(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: lock_timeout is a PostgreSQL setting")
    with Session(engine) as session:
        before = session.execute(text("SHOW lock_timeout")).scalar_one()
        session.rollback()
        sync_lock(session, timeout_s=7)
        assert session.execute(text("SHOW lock_timeout")).scalar_one() == before


def test_sqlite_sync_lock_must_start_the_transaction(tmp_path: Path, engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only: PostgreSQL's advisory lock can be taken at any point")
    with Session(engine) as session:
        session.exec(select(Feature)).all()
        with pytest.raises(RuntimeError, match="before any query"):
            sync_lock(session)
    with session_scope(engine, write=True) as session:
        session.exec(select(Feature)).all()
        sync_lock(session)  # a write transaction already holds the write lock
        feature = crud.get_or_create_feature(session=session, name="a")
        commit = CommitInfo(sha="1" * 40, author="a", email="e", message="m", committed_at=utcnow())
        crud.add_version(
            session=session,
            feature=feature,
            content_hash="0" * 64,
            content="{}",
            prompt_path="p",
            policy_path="q",
            commit=commit,
        )
    assert feature_names(engine) == ["a"]
