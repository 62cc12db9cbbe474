"""Rollouts end to end on one real server: the controller is ticked by the test at the end of
each interval, usage goes through POST /v1/usage or the client library, and what the label
serves is read back through the API (SPEC §10).
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text
from support.wait import wait_for

from registry.client import Backoff, Registry
from registry.rollouts.controller import Controller, due_at

from .scenario import (
    FEATURE,
    KEYS,
    PATH,
    SERVED_WITHIN_S,
    Rollouts,
    decisions,
    resolve,
    serves_only,
)
from .traffic import HEALTHY, Arm, ScriptedCall, answer, post_usage

FAST = Backoff(initial_s=0.01, max_s=0.02, jitter_s=0.0)


def test_a_healthy_candidate_steps_up_and_completes_with_a_promote(
    reg: Rollouts, controller: Controller, admin: httpx.Client
) -> None:
    assert reg.roll_out_v2().rollouts_started == [FEATURE]
    with reg.server() as server:
        seen = []
        for _ in range(3):
            post_usage(admin, server.url, HEALTHY.events(1, 30) + HEALTHY.events(2, 30))
            listed = admin.get(f"{server.url}/v1/features").json()["data"]
            row = next(r for r in listed if r["name"] == FEATURE)
            seen.append((row["version"], row["rollout_percent"]))
            (decision,) = reg.decide(controller)
            assert decision["verdict"] == "pass", decision["reason"]

        assert seen == [(1, 20), (1, 50), (1, 100)]  # the stable version, and the split
        rollout = reg.rollout()
        assert (rollout.state, rollout.percent) == ("completed", 100)
        assert [d["decision"] for d in decisions(rollout)] == ["step", "step", "completed"]
        assert reg.label() == (2, False)
        promote = reg.audit()[-1]
        assert (promote["action"], promote["from_version"], promote["to_version"]) == (
            "promote",
            1,
            2,
        )
        assert promote["actor"] == "rollout-controller"
        wait_for(
            lambda: serves_only(admin, server.url, 2, KEYS[:50]),
            SERVED_WITHIN_S,
            "the server to serve the completed candidate alone",
        )
        listed = admin.get(f"{server.url}/v1/features").json()["data"]
        row = next(r for r in listed if r["name"] == FEATURE)
        assert row["version"] == 2 and "rollout_percent" not in row


def test_an_error_regression_is_aborted_on_stable_pinned_and_audited_with_its_numbers(
    reg: Rollouts, controller: Controller, admin: httpx.Client
) -> None:
    reg.roll_out_v2()
    with reg.server() as server:
        assert resolve(admin, server.url, "anyone")["rollout"]["percent"] == 20
        post_usage(admin, server.url, HEALTHY.events(1, 40) + Arm(errors_pct=50).events(2, 40))

        (decision,) = reg.decide(controller)

        assert (decision["verdict"], decision["guard"], decision["state"]) == (
            "abort",
            "error_rate_pp",
            "aborted",
        )
        assert reg.label() == (1, True)
        entry = reg.audit()[-1]
        assert (entry["action"], entry["actor"], entry["to_version"]) == (
            "rollout_abort",
            "rollout-controller",
            1,
        )
        reason = entry["reason"]
        assert reason.startswith("error_rate_pp: ")
        assert "candidate 50.0% (40 requests)" in reason and "stable 0.0% (40)" in reason
        window = decision["window"]
        assert f"window {window[0]} to {window[1]}" in reason
        rollout = reg.rollout()
        assert rollout.state == "aborted" and rollout.reason == reason
        wait_for(
            lambda: serves_only(admin, server.url, 1, KEYS),
            SERVED_WITHIN_S,
            "the server to serve stable to every key",
        )
        rendered = admin.post(
            f"{server.url}{PATH}/render", json={"variables": {"question": "hi"}, "key": "k"}
        ).json()
        assert rendered["version"] == 1 and "rollout" not in rendered
        # Aborted means pinned: the next merge records a version and moves nothing.
        summary = reg.release("v3")
        assert summary.pinned_skipped == [FEATURE] and summary.rollouts_started == []
        assert reg.label() == (1, True)


def test_a_cost_regression_reported_by_the_client_library_is_aborted(
    reg: Rollouts, controller: Controller, admin: httpx.Client
) -> None:
    reg.release("v1")
    # Calls return at once, so latency is noise here: that guard is off for this rollout.
    reg.release("v2", guards={"p95_latency_ratio": None})
    call = ScriptedCall({"v1": answer(output_tokens=50), "v2": answer(output_tokens=400)})
    with (
        reg.server() as server,
        Registry(server.url, reg.reader_token, backoff=FAST, usage_flush_s=0.05) as client,
    ):
        results = [
            client.run(FEATURE, {"question": "Where is my order?"}, call=call, key=key)
            for key in KEYS
        ]
        assert client.flush(10)
        by_version = {v: sum(r.version == v for r in results) for v in (1, 2)}
        assert by_version[2] == call.counts["v2"] >= 20  # each arm has its minimum
        assert all(r.outcome == "ok" for r in results)

        (decision,) = reg.decide(controller)

        assert (decision["verdict"], decision["guard"]) == ("abort", "cost_ratio")
        numbers = decision["numbers"]
        assert numbers["candidate"]["requests"] == by_version[2]
        assert numbers["stable"]["requests"] == by_version[1]
        reason = reg.audit()[-1]["reason"]
        assert reason.startswith("cost_ratio: ") and f"({by_version[2]:,} requests)" in reason
        assert reg.label() == (1, True)
        wait_for(
            lambda: serves_only(admin, server.url, 1, KEYS[:50]),
            SERVED_WITHIN_S,
            "the server to serve stable to every key",
        )


def test_a_paused_rollout_takes_no_step_until_resumed(
    reg: Rollouts, controller: Controller, admin: httpx.Client
) -> None:
    reg.roll_out_v2()
    with reg.server() as server:
        rollout_url = f"{server.url}{PATH}/rollout"
        paused = admin.post(f"{rollout_url}/pause", json={"reason": "looking at a ticket"})
        assert paused.status_code == 200, paused.text
        assert (paused.json()["state"], paused.json()["reason"]) == (
            "paused",
            "looking at a ticket",
        )
        post_usage(admin, server.url, HEALTHY.events(1, 40) + HEALTHY.events(2, 40))

        # Hours after the step was due: a paused rollout is not decided.
        assert controller.tick(due_at(reg.rollout()) + timedelta(hours=3)) == []
        held = reg.rollout()
        assert (held.state, held.step, held.percent) == ("paused", 0, 20)
        assert resolve(admin, server.url, "anyone")["rollout"]["percent"] == 20  # still split
        assert admin.post(f"{rollout_url}/pause", json={}).status_code == 409

        resumed = admin.post(f"{rollout_url}/resume", json={})
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["state"] == "running"
        assert resumed.json()["step_started_at"] > paused.json()["step_started_at"]
        post_usage(admin, server.url, HEALTHY.events(1, 40) + HEALTHY.events(2, 40))
        (decision,) = reg.decide(controller)
        assert decision["verdict"] == "pass"
        assert (reg.rollout().state, reg.rollout().percent) == ("running", 50)
        actions = [e["action"] for e in reg.audit()]
        assert actions[-3:] == ["rollout_start", "rollout_pause", "rollout_resume"]
        assert admin.post(f"{rollout_url}/resume", json={}).status_code == 409


@pytest.mark.parametrize("to_version", [None, 1])
def test_a_rollback_during_a_rollout_aborts_it(
    reg: Rollouts, admin: httpx.Client, to_version: int | None
) -> None:
    reg.release("v1")
    reg.release("v1", interval="2s")  # the rollout section alone: v2 moves at once
    reg.release("v3")  # a rollout from v2 to v3
    assert (reg.rollout().state, reg.label()) == ("running", (2, False))
    with reg.server() as server:
        body = {"reason": "pager"} | ({"to_version": to_version} if to_version else {})
        moved = admin.post(f"{server.url}{PATH}/rollback", json=body)

        assert moved.status_code == 200, moved.text
        expected = to_version or 2  # without --to the label stays on stable
        assert moved.json() == {
            "feature": FEATURE,
            "label": "production",
            "from_version": 2,
            "to_version": expected,
            "pinned": True,
        }
        rollout = reg.rollout()
        assert rollout.state == "aborted" and rollout.reason == "rollback by oncall: pager"
        assert reg.label() == (expected, True)
        entries = [(e["action"], e["from_version"], e["to_version"]) for e in reg.audit()]
        if to_version is None:
            assert entries[-1] == ("rollout_abort", 2, 2)
        else:
            assert entries[-2:] == [("rollout_abort", 2, 2), ("rollback", 2, 1)]
        wait_for(
            lambda: serves_only(admin, server.url, expected, KEYS[:50]),
            SERVED_WITHIN_S,
            f"the server to serve v{expected} alone",
        )


def test_a_newer_sync_supersedes_the_rollout_with_a_new_one_from_the_same_stable(
    reg: Rollouts, controller: Controller, admin: httpx.Client
) -> None:
    reg.roll_out_v2()
    with reg.server() as server:
        post_usage(admin, server.url, HEALTHY.events(1, 30) + HEALTHY.events(2, 30))
        reg.decide(controller)
        assert reg.rollout().percent == 50
        first_id = reg.rollout().id

        assert reg.release("v3").rollouts_started == [FEATURE]

        rows = {r["candidate"]: r for r in admin.get(f"{server.url}/v1/rollouts").json()["data"]}
        assert list(rows) == [3]  # each feature's latest
        latest = rows[3]
        assert (latest["state"], latest["stable"], latest["step"], latest["percent"]) == (
            "running",
            1,
            0,
            20,
        )
        assert reg.rollout().id != first_id
        with reg.engine.connect() as conn:
            old = conn.execute(
                text("SELECT state, reason FROM rollouts WHERE id = :id"), {"id": first_id}
            ).one()
        assert old.state == "superseded" and "v3" in old.reason
        assert reg.label() == (1, False)
        wait_for(
            lambda: resolve(admin, server.url, "k")["rollout"]["candidate"] == 3,
            SERVED_WITHIN_S,
            "the server to split between v1 and v3",
        )


def test_an_arm_short_of_min_requests_waits_then_the_rollout_aborts(
    reg: Rollouts, controller: Controller, admin: httpx.Client
) -> None:
    reg.roll_out_v2()
    with reg.server() as server:
        # A terrible candidate, but stable has too few requests to compare it with: wait.
        post_usage(admin, server.url, HEALTHY.events(1, 5) + Arm(errors_pct=90).events(2, 30))
        verdicts = [reg.decide(controller)[0] for _ in range(3)]
        assert [(v["verdict"], v["state"]) for v in verdicts] == [("wait", "running")] * 3
        assert "stable 5; each arm needs 20" in verdicts[0]["reason"]
        assert reg.rollout().waited == 3 and reg.label() == (1, False)

        (last,) = reg.decide(controller)  # a fourth interval without enough: abort

        assert (last["state"], reg.label()) == ("aborted", (1, True))
        entry = reg.audit()[-1]
        assert entry["action"] == "rollout_abort"
        assert entry["reason"].startswith("min_requests: waiting for data: candidate 30")
        assert "still after waiting 3 more intervals" in entry["reason"]
        wait_for(lambda: serves_only(admin, server.url, 1, KEYS[:20]), SERVED_WITHIN_S, "v1")


def test_with_both_arms_at_their_minimum_a_late_look_still_aborts_the_bad_candidate(
    reg: Rollouts, controller: Controller, admin: httpx.Client
) -> None:
    reg.roll_out_v2()
    with reg.server() as server:
        post_usage(admin, server.url, HEALTHY.events(1, 5) + Arm(errors_pct=50).events(2, 40))
        (first,) = reg.decide(controller)
        assert first["verdict"] == "wait"
        post_usage(admin, server.url, HEALTHY.events(1, 40))  # stable's traffic arrives late

        (second,) = reg.decide(controller)

        assert (second["verdict"], second["guard"]) == ("abort", "error_rate_pp")
        assert second["numbers"]["stable"]["requests"] == 45  # the window kept growing
