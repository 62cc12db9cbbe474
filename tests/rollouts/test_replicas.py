"""Rollouts across real `promptreg serve` replicas on one database, their controllers deciding
on their own (intervals of a second): one controller acts at a time, an abort reaches every
replica, and a controller killed mid-rollout is replaced by another replica's."""

from __future__ import annotations

import os
import signal
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from support.server import ServeProcess, replicas
from support.wait import wait_for

from registry.client import Backoff, Registry

from .scenario import (
    FEATURE,
    KEYS,
    PATH,
    SERVED_WITHIN_S,
    Rollouts,
    controller_lock_held,
    decisions,
    serves_only,
)
from .traffic import HEALTHY, ScriptedCall, Traffic, answer, failing

pytestmark = pytest.mark.slow
FAST = Backoff(initial_s=0.01, max_s=0.02, jitter_s=0.0)
DECIDED_WITHIN_S = 30.0  # a few one-second intervals, on a loaded machine


def test_a_failing_candidate_is_aborted_and_no_replica_serves_it_afterwards(
    reg: Rollouts, admin: httpx.Client, tmp_path: Path
) -> None:
    reg.release("v1")
    call = ScriptedCall({"v1": answer(), "v2": failing()})
    with (
        replicas(reg.db_url, tmp_path) as (a, b),
        Registry(a.url, reg.reader_token, refresh_s=0.1, usage_flush_s=0.1, backoff=FAST) as client,
    ):
        assert reg.release("v2").rollouts_started == [FEATURE]
        users = iter(range(10**9))

        def aborted_while_serving_users() -> bool:
            for _ in range(20):  # users keep coming while the controllers look
                client.run(
                    FEATURE, {"question": "Where is my order?"}, call=call, key=f"u{next(users)}"
                )
            state = admin.get(f"{b.url}{PATH}/rollout").json()["state"]
            assert state in ("running", "aborted"), state
            return state == "aborted"

        wait_for(aborted_while_serving_users, DECIDED_WITHIN_S, "a controller to abort v2")

        rollout = reg.rollout()
        (abort,) = [d for d in decisions(rollout) if d["decision"] == "aborted"]
        assert abort["guard"] == "error_rate_pp" and abort["numbers"]["candidate"]["errors"] > 0
        assert [e["action"] for e in reg.audit()].count("rollout_abort") == 1  # one controller
        assert reg.label() == (1, True)
        for replica in (a, b):
            wait_for(
                lambda r=replica: serves_only(admin, r.url, 1, KEYS),
                SERVED_WITHIN_S,
                f"{replica} to serve v1 to every key",
            )
        # The client library drops the split at its next revalidation, and calls v1 only.
        wait_for(lambda: client.resolve(FEATURE).split is None, SERVED_WITHIN_S, "the client")
        failed_before = call.counts["v2"]
        results = [client.run(FEATURE, {"question": "?"}, call=call, key=key) for key in KEYS[:100]]
        assert {r.version for r in results} == {1} and {r.outcome for r in results} == {"ok"}
        assert call.counts["v2"] == failed_before


def test_a_controller_killed_mid_rollout_is_replaced_by_another_replica(
    reg: Rollouts, admin: httpx.Client, tmp_path: Path
) -> None:
    reg.release("v1")
    with ExitStack() as stack:
        leader = stack.enter_context(ServeProcess(reg.db_url, tmp_path))
        # Alone, the first replica takes the controller lock at its first tick.
        wait_for(lambda: controller_lock_held(reg.engine), DECIDED_WITHIN_S, "a controller")
        follower = stack.enter_context(ServeProcess(reg.db_url, tmp_path))
        reg.release("v2", steps=(20, 40, 60, 80, 100))
        traffic = stack.enter_context(
            Traffic(admin, follower.url, {1: HEALTHY, 2: HEALTHY}, per_batch=10)
        )

        wait_for(lambda: reg.rollout().step >= 1, DECIDED_WITHIN_S, "the leader to take a step")
        assert leader.process is not None
        os.kill(leader.process.pid, signal.SIGKILL)  # mid-rollout, without a chance to clean up
        assert leader.process.wait(timeout=10) == -signal.SIGKILL
        killed_at = datetime.now(UTC)
        assert reg.rollout().state == "running", "the leader finished before it was killed"

        wait_for(
            lambda: reg.rollout().state == "completed",
            DECIDED_WITHIN_S,
            "the other replica to finish the rollout",
        )
        assert follower.healthy() and controller_lock_held(reg.engine)  # the follower leads
        history = decisions(reg.rollout())
        # Every step decided once, whoever decided it: never two controllers at a time.
        assert [(d["decision"], d.get("percent")) for d in history] == [
            ("step", 40),
            ("step", 60),
            ("step", 80),
            ("step", 100),
            ("completed", 100),
        ]
        after = [d for d in history if datetime.fromisoformat(d["at"]) > killed_at]
        assert after and after[-1]["decision"] == "completed"
        assert reg.label() == (2, False)
        assert reg.audit()[-1]["action"] == "promote"
        assert traffic.posted > 0
        wait_for(
            lambda: serves_only(admin, follower.url, 2, KEYS[:50]),
            SERVED_WITHIN_S,
            "the follower to serve v2",
        )
