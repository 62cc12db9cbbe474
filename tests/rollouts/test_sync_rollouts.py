"""What a sync does with a policy's `rollout` section: a first version and a change to the
section alone move the label at once; any other change starts a rollout; a revert to what
the stable version holds ends it and moves at once."""

from __future__ import annotations

import httpx
from sqlalchemy import Engine
from support.cli import cli
from support.wait import wait_for

from .scenario import FEATURE, KEYS, PATH, SERVED_WITHIN_S, Rollouts, serves_only


def moves(reg: Rollouts) -> list[tuple[str, int | None, int]]:
    return [(e["action"], e["from_version"], e["to_version"]) for e in reg.audit()]


def test_a_first_version_and_a_change_to_the_rollout_section_alone_move_at_once(
    reg: Rollouts, admin: httpx.Client
) -> None:
    first = reg.release("v1")
    assert first.rollouts_started == [] and reg.label() == (1, False)

    for change in ({"interval": "2s"}, {"min_requests": 50}, {"guards": {"cost_ratio": 2}}):
        summary = reg.release("v1", **change)
        assert summary.rollouts_started == [], change
    assert reg.label() == (4, False)
    assert moves(reg) == [("sync", None, 1), ("sync", 1, 2), ("sync", 2, 3), ("sync", 3, 4)]

    with reg.server() as server:
        assert admin.get(f"{server.url}{PATH}/rollout").status_code == 404
        # kb.answer has no rollout section: it never rolls out either.
        assert admin.get(f"{server.url}/v1/features/kb.answer/rollout").status_code == 404

        # The prompt and the section together: that is a change to roll out.
        assert reg.release("v5", interval="3s").rollouts_started == [FEATURE]
        assert reg.label() == (4, False)
        rollout = admin.get(f"{server.url}{PATH}/rollout").json()
        assert (rollout["stable"], rollout["candidate"], rollout["interval_s"]) == (4, 5, 3)


def test_a_revert_to_the_stable_version_during_a_rollout_ends_it(
    reg: Rollouts, admin: httpx.Client
) -> None:
    reg.roll_out_v2()
    assert reg.rollout().state == "running"

    summary = reg.release("v1")  # the files of version 1 again: v3, nothing new to roll out

    assert summary.versions_created == 1 and summary.rollouts_started == []
    rollout = reg.rollout()
    assert rollout.state == "superseded" and "moved the label at once" in (rollout.reason or "")
    assert reg.label() == (3, False)  # not an abort: nothing to pin
    assert moves(reg)[-1] == ("sync", 1, 3)
    with reg.server() as server:
        wait_for(
            lambda: serves_only(admin, server.url, 3, ["a", "b", "c"]),
            SERVED_WITHIN_S,
            "v3 alone",
        )


def test_rollback_all_to_a_commit_aborts_a_rollout_of_a_later_version(
    reg: Rollouts, admin: httpx.Client, cli_engines: list[Engine]
) -> None:
    first = reg.commit("v1")
    reg.sync()
    reg.release("v2")  # a rollout from v1 (made at the first commit) to v2 (made after it)
    assert reg.rollout().state == "running"

    code, out, err = cli(
        "rollback", "--all", "--to-commit", first, "--repo", reg.repo.path,
        "--database-url", reg.db_url, "--reason", "incident",
    )  # fmt: skip

    assert code == 0, err
    assert FEATURE in out  # reported, though its label stays on v1
    rollout = reg.rollout()
    assert rollout.state == "aborted" and "incident" in (rollout.reason or "")
    assert reg.label() == (1, True)  # every abort pins
    with reg.server() as server:
        wait_for(lambda: serves_only(admin, server.url, 1, KEYS[:50]), SERVED_WITHIN_S, "v1")
