"""The controller itself: one at a time, a decision is all or nothing, and raw usage past
retention is dropped in bounded batches while rollups stay."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text
from support.server import AppServer
from support.wait import wait_for

from registry import labels
from registry.api.app import create_app
from registry.rollouts import controller as controller_module
from registry.rollouts.controller import Controller
from registry.store import usage_crud
from registry.store.models import utcnow
from registry.usage import Ingestor

from .scenario import Rollouts, decisions
from .traffic import HEALTHY, Arm


def test_one_controller_decides_at_a_time_and_another_takes_over_when_it_stops(
    reg: Rollouts, engine: Engine
) -> None:
    reg.roll_out_v2()
    Ingestor(engine).ingest(HEALTHY.events(1, 30) + HEALTHY.events(2, 30))
    first, second = Controller(engine), Controller(engine)
    try:
        assert first.leadership.hold()
        assert reg.decide(second) == []  # due, but not the controller
        assert reg.rollout().percent == 20
        assert [d["state"] for d in reg.decide(first)] == ["running"]
        assert reg.rollout().percent == 50

        first.stop()  # what a replica's death does to its lock, too
        assert [d["state"] for d in reg.decide(second)] == ["running"]
        assert reg.rollout().percent == 100
    finally:
        first.stop()
        second.stop()


def test_a_decision_that_fails_half_way_leaves_the_rollout_to_be_decided_again(
    reg: Rollouts, controller: Controller, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg.roll_out_v2()
    Ingestor(engine).ingest(HEALTHY.events(1, 30) + Arm(errors_pct=50).events(2, 30))
    audit_before = reg.audit()
    real_move = labels.move

    def dies(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("killed between the rollout's update and the label's")

    monkeypatch.setattr(labels, "move", dies)
    with pytest.raises(RuntimeError, match="killed"):
        reg.decide(controller)

    rollout = reg.rollout()  # the abort was one transaction: none of it was kept
    assert (rollout.state, rollout.decided_at, decisions(rollout)) == ("running", None, [])
    assert reg.label() == (1, False) and reg.audit() == audit_before

    monkeypatch.setattr(labels, "move", real_move)
    (decision,) = reg.decide(controller)
    assert (decision["state"], decision["guard"]) == ("aborted", "error_rate_pp")
    assert reg.label() == (1, True)


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_raw_events_past_retention_go_in_bounded_batches_and_rollups_stay(
    reg: Rollouts, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg.release("v1")
    ingestor = Ingestor(engine)
    ingestor.ingest(HEALTHY.events(1, 25), now=utcnow() - timedelta(days=40))
    ingestor.ingest(HEALTHY.events(1, 5))
    monkeypatch.setattr(controller_module, "PRUNE_BATCH", 10)
    monkeypatch.setattr(controller_module, "PRUNE_BATCHES_PER_TICK", 2)
    batches: list[int] = []
    real_drop = usage_crud.drop_old_events

    def counted(**kwargs: Any) -> int:
        batches.append(real_drop(**kwargs))
        return batches[-1]

    monkeypatch.setattr(usage_crud, "drop_old_events", counted)
    controller = Controller(engine, retention=timedelta(days=30))
    try:
        controller.tick()  # the first tick prunes: two batches at most
        assert batches == [10, 10]
        assert count(engine, "usage_events") == 10
        controller.tick()  # a backlog was left: the next tick goes on
        assert batches == [10, 10, 5]
        assert count(engine, "usage_events") == 5
        controller.tick()  # nothing left, and not due again for a minute of ticks
        assert batches == [10, 10, 5]
    finally:
        controller.stop()

    # The rollups keep every request; the minutes of 40 days ago are gone.
    with engine.connect() as conn:
        requests = conn.execute(text("SELECT sum(requests) FROM usage_rollups")).scalar_one()
        minutes = conn.execute(text("SELECT sum(requests) FROM usage_minutes")).scalar_one()
    assert (requests, minutes) == (30, 5)


def test_the_server_prunes_by_its_configured_retention(reg: Rollouts, engine: Engine) -> None:
    reg.release("v1")
    ingestor = Ingestor(engine)
    ingestor.ingest(HEALTHY.events(1, 7), now=utcnow() - timedelta(hours=13))
    ingestor.ingest(HEALTHY.events(1, 3))
    settings = reg.settings().model_copy(update={"usage_retention": "12h"})

    with AppServer(create_app(settings, engine=engine, controller_tick_s=0.05)):
        wait_for(lambda: count(engine, "usage_events") == 3, 10, "the events past 12h dropped")


def test_the_controller_lock_connection_is_not_left_inside_a_transaction(
    engine: Engine, controller: Controller
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: SQLite's controller lock is a file lock")
    assert controller.leadership.hold()  # taking the lock
    lock = controller.leadership._conn
    assert lock is not None
    pid = lock.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    lock.commit()
    for _ in range(2):  # keeping it, tick after tick
        assert controller.leadership.hold()
    with engine.connect() as conn:
        state = conn.execute(
            text("SELECT state FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ).scalar_one()
    # "idle in transaction" for the life of the process: servers that end such sessions
    # (idle_in_transaction_session_timeout) would take the lock away with them.
    assert state == "idle"
