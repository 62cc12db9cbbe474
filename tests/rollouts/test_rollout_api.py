"""The rollout API and metrics: GET /v1/features/{name}/rollout and /v1/rollouts, the admin
actions, and promptreg_rollout_percent / promptreg_rollout_aborts_total."""

from __future__ import annotations

import re

import httpx
from support.wait import wait_for

from registry.rollouts.controller import Controller

from .scenario import FEATURE, PATH, SERVED_WITHIN_S, Rollouts, bearer, serves_only, when
from .traffic import HEALTHY, Arm, post_usage

FIELDS = {"state", "candidate", "stable", "percent", "step", "label", "started_at", "decided_at"}


def test_the_rollout_of_a_feature_is_404_until_it_has_one_then_answers_its_fields(
    reg: Rollouts, controller: Controller, admin: httpx.Client
) -> None:
    reg.release("v1")
    with reg.server() as server:
        never = admin.get(f"{server.url}{PATH}/rollout")
        assert never.status_code == 404
        assert never.json()["detail"].startswith("feature 'support.reply' never had a rollout")
        assert admin.get(f"{server.url}/v1/features/kb.answer/rollout").status_code == 404
        unknown = admin.get(f"{server.url}/v1/features/no.such/rollout")
        assert unknown.status_code == 404 and "unknown feature" in unknown.json()["detail"]
        assert admin.get(f"{server.url}/v1/rollouts").json() == {"data": [], "count": 0}

        reg.release("v2")
        running = admin.get(f"{server.url}{PATH}/rollout").json()
        assert running.keys() >= FIELDS
        assert {k: running[k] for k in FIELDS - {"started_at"}} == {
            "state": "running",
            "candidate": 2,
            "stable": 1,
            "percent": 20,
            "step": 0,
            "label": "production",
            "decided_at": None,
        }
        assert when(running["started_at"]) == reg.rollout().started_at

        post_usage(admin, server.url, HEALTHY.events(1, 30) + Arm(errors_pct=60).events(2, 30))
        reg.decide(controller)
        finished = admin.get(f"{server.url}{PATH}/rollout").json()  # finished, still answered
        assert (finished["state"], finished["percent"], finished["step"]) == ("aborted", 20, 0)
        assert when(finished["decided_at"]) >= when(finished["started_at"])
        listed = admin.get(f"{server.url}/v1/rollouts").json()
        assert listed["count"] == 1 and listed["data"][0] == finished


def test_admins_start_and_complete_a_rollout_readers_only_read(
    reg: Rollouts, admin: httpx.Client
) -> None:
    reg.release("v1")
    reg.release("v1", interval="2s")  # v2 at once
    with reg.server() as server, httpx.Client(headers=bearer(reg.reader_token)) as reader:
        start = f"{server.url}{PATH}/rollout/start"
        body = {"to_version": 1, "steps": [50, 100], "interval": "3s", "reason": "back to v1"}
        refused = reader.post(start, json=body)
        assert refused.status_code == 403
        assert admin.post(start, json={**body, "to_version": 2}).status_code == 409  # the label's
        bad = admin.post(start, json={**body, "steps": [50, 40]})
        assert bad.status_code == 422 and "steps must increase" in bad.json()["detail"]
        assert admin.post(start, json={**body, "to_version": 9}).status_code == 404

        started = admin.post(start, json=body)

        assert started.status_code == 200, started.text
        row = started.json()
        assert (row["candidate"], row["stable"], row["percent"], row["interval_s"]) == (1, 2, 50, 3)
        assert reader.get(f"{server.url}{PATH}/rollout").json()["state"] == "running"
        assert reader.post(f"{server.url}{PATH}/rollout/complete", json={}).status_code == 403
        done = admin.post(f"{server.url}{PATH}/rollout/complete", json={"reason": "looks good"})
        assert done.status_code == 200, done.text
        assert (done.json()["state"], done.json()["percent"]) == ("completed", 100)
        assert reg.label() == (1, False)
        last = reg.audit()[-1]
        assert (last["action"], last["from_version"], last["to_version"], last["actor"]) == (
            "promote",
            2,
            1,
            "oncall",
        )
        assert last["reason"] == "rollout complete: completed by oncall: looks good"
        again = admin.post(f"{server.url}{PATH}/rollout/abort", json={})
        assert again.status_code == 404  # nothing running to abort
        wait_for(lambda: serves_only(admin, server.url, 1, ["k"]), SERVED_WITHIN_S, "v1 alone")


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    found = re.search(rf"^{name}\{{{re.escape(want)}\}} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_metrics_show_the_percent_while_running_and_count_aborts_by_guard(
    reg: Rollouts, controller: Controller, admin: httpx.Client
) -> None:
    reg.roll_out_v2()
    with reg.server() as server:

        def scrape() -> str:
            answer = httpx.get(f"{server.url}/metrics")
            assert answer.status_code == 200
            return answer.text

        assert metric(scrape(), "promptreg_rollout_percent", feature=FEATURE) == 20
        aborted = admin.post(f"{server.url}{PATH}/rollout/abort", json={"reason": "by hand"})
        assert aborted.json()["state"] == "aborted"
        text = scrape()
        assert metric(text, "promptreg_rollout_percent", feature=FEATURE) is None
        assert metric(text, "promptreg_rollout_aborts_total", feature=FEATURE, guard="manual") == 1

        started = admin.post(f"{server.url}{PATH}/rollout/start", json={"to_version": 2})
        assert started.status_code == 200, started.text
        post_usage(admin, server.url, HEALTHY.events(1, 30) + Arm(latency_ms=900).events(2, 30))
        (decision,) = reg.decide(controller)
        assert decision["guard"] == "p95_latency_ratio"

        text = scrape()
        guard = "p95_latency_ratio"
        assert metric(text, "promptreg_rollout_aborts_total", feature=FEATURE, guard=guard) == 1
        assert metric(text, "promptreg_rollout_aborts_total", feature=FEATURE, guard="manual") == 1
