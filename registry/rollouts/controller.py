"""The rollout controller: runs inside `serve`, decides each rollout at the end of its interval.

Exactly one controller acts at a time, however many replicas run: on PostgreSQL it holds
a session-level advisory lock on a connection of its own (a replica that dies drops the
connection, and with it the lock; another replica takes over at its next tick); on
SQLite, an exclusive lock on a file beside the database (one host, any number of
processes). Each decision is one transaction that re-reads the rollout under a row lock,
so a controller killed mid-decision leaves the rollout as it was and the next one decides
it again. Both arms are read from the minute rollups over the same window: from the
minute the step started to now.

The same loop drops raw usage events older than PROMPTREG_USAGE_RETENTION, and minute
rollups older than a day, in bounded batches so no transaction grows with the backlog, and
a few batches per tick so a backlog never holds a decision back.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Engine, text
from sqlmodel import Session

from registry.outcomes import OUTCOMES
from registry.rollouts import machine
from registry.rollouts.guards import ArmStats, GuardConfig, judge
from registry.store import crud, usage_crud
from registry.store.db import session_scope
from registry.store.models import Rollout, Version, utcnow
from registry.usage.rollup import minute_of

log = logging.getLogger("promptreg.rollouts")
CONTROLLER_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"promptreg.rollout-controller").digest()[:8], "big", signed=True
)
ACTOR = "rollout-controller"
MINUTE_RETENTION = timedelta(days=1)  # guards read minutes of the current step only
PRUNE_BATCH = 10_000  # rows per transaction
PRUNE_BATCHES_PER_TICK = 5  # a backlog is worked off over ticks, between decisions
PRUNE_EVERY_TICKS = 60


class Leadership:
    """Whether this process is the one controller, across replicas."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None
        self._file: IO[bytes] | None = None

    def hold(self) -> bool:
        """Try to be (or stay) the controller; never waits."""
        if self.engine.dialect.name == "postgresql":
            return self._hold_advisory()
        return self._hold_file()

    def _hold_advisory(self) -> bool:
        try:
            if self._conn is not None:
                self._conn.execute(text("SELECT 1"))  # the connection, and its lock, live
                # End the probe's transaction: a session left idle in transaction is ended by
                # servers with idle_in_transaction_session_timeout, and the lock with it.
                self._conn.commit()
                return True
            conn = self.engine.connect()
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": CONTROLLER_LOCK_KEY}
            ).scalar_one()
            conn.commit()
            if got:
                self._conn = conn
                return True
            conn.close()
        except Exception as exc:  # a lost connection loses the lock with it
            log.warning("rollout controller lock lost: %s", exc)
            self.release()
        return False

    def _hold_file(self) -> bool:
        if self._file is not None:
            return True
        database = self.engine.url.database
        if not database or database == ":memory:":
            return True  # one process owns an in-memory database
        import fcntl

        handle = Path(f"{database}.controller.lock").open("ab")  # noqa: SIM115 (held open)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def release(self) -> None:
        """Give the controller role up (its lock is released)."""
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # already broken: closing it is all that is left
                log.debug("closing the controller connection failed", exc_info=True)
            self._conn = None
        if self._file is not None:
            self._file.close()  # closing the file releases its lock
            self._file = None


class Controller:
    """Decides due rollouts every `tick_s` seconds while it holds the leadership."""

    def __init__(
        self,
        engine: Engine,
        *,
        tick_s: float = 1.0,
        retention: timedelta = timedelta(days=30),
        alpha: float = 0.01,
    ) -> None:
        self.engine = engine
        self.tick_s = tick_s
        self.retention = retention
        self.alpha = alpha
        self.leadership = Leadership(engine)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ticks = 0
        self._backlog = False  # the last prune stopped at its batch limit

    def start(self) -> None:
        """Run in a background thread."""
        self._thread = threading.Thread(target=self._loop, name="promptreg-rollouts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop deciding and give the leadership up."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.leadership.release()

    def _loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self.tick()
            except Exception:  # one bad tick must not stop rollouts for good
                log.exception("rollout controller tick failed")

    def tick(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Decide every due rollout, if this process is the controller; the decisions."""
        if not self.leadership.hold():
            return []
        now = now or utcnow()
        decided = []
        with session_scope(self.engine) as session:
            due = [
                row.id
                for row in crud.active_rollouts(session=session)
                if row.state == "running" and due_at(row) <= now
            ]
        for rollout_id in due:
            decision = self.decide(rollout_id, now)
            if decision is not None:
                decided.append(decision)
        self._ticks += 1
        if self._backlog or self._ticks % PRUNE_EVERY_TICKS == 1:
            self.prune(now, max_batches=PRUNE_BATCHES_PER_TICK)
        return decided

    def decide(self, rollout_id: int | None, now: datetime) -> dict[str, Any] | None:
        """One rollout's decision at the end of its interval, in one transaction."""
        with session_scope(self.engine, write=True) as session:
            rollout = session.get(Rollout, rollout_id, with_for_update=True, populate_existing=True)
            if rollout is None or rollout.state != "running":
                return None  # decided (or ended) by someone else meanwhile
            if due_at(rollout) > now:
                return None
            since = minute_of(rollout.step_started_at)
            arms = {
                arm: _arm(session, rollout.feature_id, version_id, since, now)
                for arm, version_id in (
                    ("stable", rollout.stable_version_id),
                    ("candidate", rollout.candidate_version_id),
                )
            }
            guards = GuardConfig(**json.loads(rollout.guards))
            verdict = judge(
                arms["stable"],
                arms["candidate"],
                guards,
                min_requests=rollout.min_requests,
                alpha=self.alpha,
            )
            window = f"window {since.isoformat()} to {now.isoformat()}"
            record = {
                "verdict": verdict.decision,
                "guard": verdict.guard,
                "reason": verdict.reason,
                "window": [since.isoformat(), now.isoformat()],
                "numbers": verdict.numbers,
                "percent": rollout.percent,
                "step": rollout.step,
            }
            if verdict.decision == "abort":
                reason = f"{verdict.reason}; {window}"
                machine.abort(session, rollout, actor=ACTOR, reason=reason, decision=record)
            elif verdict.decision == "wait":
                machine.wait(session, rollout, decision=record, actor=ACTOR)
            else:
                machine.advance(session, rollout, decision=record, actor=ACTOR)
            record["state"] = rollout.state
            return record

    def prune(self, now: datetime, *, max_batches: int | None = None) -> int:
        """Drop raw events past retention and old minute rollups, a batch per transaction;
        with `max_batches`, at most that many batches of each (the rest at the next tick)."""
        # A tick that deleted a backlog of millions in one go would hold every decision
        # back for minutes: the loop takes a few batches per tick until none are left.
        dropped = 0
        self._backlog = False
        for drop, before in (
            (usage_crud.drop_old_events, now - self.retention),
            (usage_crud.drop_old_minutes, now - MINUTE_RETENTION),
        ):
            for batch in itertools.count(1):
                with session_scope(self.engine, write=True) as session:
                    count = drop(session=session, before=before, limit=PRUNE_BATCH)
                dropped += count
                if count < PRUNE_BATCH or self._stop.is_set():
                    break
                if max_batches is not None and batch >= max_batches:
                    self._backlog = True
                    break
        return dropped


def due_at(rollout: Rollout) -> datetime:
    """When the rollout's current step is decided: after its interval, once more per wait."""
    return rollout.step_started_at + timedelta(seconds=rollout.interval_s * (1 + rollout.waited))


def _arm(
    session: Session, feature_id: int, version_id: int, since: datetime, until: datetime
) -> ArmStats:
    version = session.get_one(Version, version_id)
    end = until + timedelta(minutes=1)  # the current minute, still filling
    return arm_stats(
        session, feature_id=feature_id, version=version.version, since=since, until=end
    )


def arm_stats(
    session: Session, *, feature_id: int, version: int, since: datetime, until: datetime
) -> ArmStats:
    """One arm's usage in the minutes [since, until), as the guards judge it."""
    sums, latency = usage_crud.minute_sums(
        session=session, feature_id=feature_id, version=version, since=since, until=until
    )
    return ArmStats.from_outcomes(
        {outcome: int(sums[outcome]) for outcome in OUTCOMES},
        latency=latency,
        cost_sum=float(sums["cost_usd"]),
        cost_sq_sum=float(sums["cost_usd_sq"]),
        cost_n=int(sums["cost_n"]),
        drift_input_tokens=int(sums["drift_input_tokens"]),
        drift_estimated_tokens=int(sums["drift_estimated_tokens"]),
    )
