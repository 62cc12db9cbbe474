"""A rollout acted on from the dashboard: pause, resume, abort and complete, each behind its
confirmation page, each what the API would have done, audited with the token's name."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from api.harness import Registry
from support.server import AppServer

from .conftest import csrf_of

FEATURE = "/ui/features/support.reply"


def api(server: AppServer, registry: Registry, method: str, path: str, **body: Any) -> Any:
    answer = httpx.request(
        method, f"{server.url}{path}", json=body or None, headers=registry.admin, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def start_rollout(server: AppServer, registry: Registry) -> None:
    """support.reply back on v2, then v3 rolled out over it (10% first), with both arms used."""
    api(server, registry, "POST", "/v1/features/support.reply/rollback", to_version=2)
    api(
        server,
        registry,
        "POST",
        "/v1/features/support.reply/rollout/start",
        to_version=3,
        steps=[10, 50, 100],
        interval="1h",
    )
    now = datetime.now(UTC).isoformat()
    events = [
        {
            "feature": "support.reply",
            "version": 3 if index % 5 == 0 else 2,
            "model": "gpt-4o",
            "input_tokens": 400,
            "output_tokens": 100,
            "latency_ms": 500 + index,
            "outcome": "ok",
            "estimated_input_tokens": 400,
            "cost_usd": 0.002,
            "at": now,
        }
        for index in range(50)
    ]
    answer = httpx.post(f"{server.url}/v1/usage", json={"events": events}, headers=registry.admin)
    assert answer.status_code == 202 and not answer.json()["rejected"], answer.text


def act(admin: httpx.Client, action: str, reason: str = "") -> httpx.Response:
    """Open the action's confirmation page, then post its form as the button would."""
    confirm = admin.get(f"{FEATURE}/confirm", params={"action": action, "label": "production"})
    assert confirm.status_code == 200, confirm.text
    assert "the rollout of support.reply v3?" in confirm.text
    form = {"csrf": csrf_of(confirm.text), "label": "production", "reason": reason}
    return admin.post(f"{FEATURE}/rollout/{action}", data=form)


def test_pause_resume_and_abort_a_rollout(
    admin: httpx.Client, server: AppServer, registry: Registry
) -> None:
    start_rollout(server, registry)
    page = admin.get(FEATURE).text
    assert "Rollout of v3 over v2" in page and "Pause…" in page
    assert "stable v2" in page and "candidate v3" in page  # both arms, side by side
    assert "running 10%" in admin.get("/ui").text

    assert act(admin, "pause", "looking at latency").status_code == 303
    rollout = api(server, registry, "GET", "/v1/features/support.reply/rollout")
    assert rollout["state"] == "paused"
    assert "Resume…" in admin.get(FEATURE).text
    assert act(admin, "resume").status_code == 303
    assert api(server, registry, "GET", "/v1/features/support.reply/rollout")["state"] == "running"

    assert act(admin, "abort").status_code == 422  # an abort says why
    answer = act(admin, "abort", "p95 looks worse")
    assert answer.headers["location"].endswith("done=abort")
    assert api(server, registry, "GET", "/v1/features/support.reply/rollout")["state"] == "aborted"
    served = api(server, registry, "GET", "/v1/features/support.reply")
    assert (served["version"], served["pinned"]) == (2, True)
    audit = api(server, registry, "GET", "/v1/audit?feature=support.reply")["data"]
    actions = [(e["action"], e["actor"]) for e in audit[:4]]
    assert actions == [
        ("rollout_abort", "oncall"),
        ("rollout_resume", "oncall"),
        ("rollout_pause", "oncall"),
        ("rollout_start", "oncall"),
    ]
    assert "p95 looks worse" in audit[0]["reason"]
    assert "The rollout was aborted" in admin.get(answer.headers["location"]).text


def test_complete_a_rollout(admin: httpx.Client, server: AppServer, registry: Registry) -> None:
    start_rollout(server, registry)
    assert act(admin, "complete").status_code == 303
    served = api(server, registry, "GET", "/v1/features/support.reply")
    assert (served["version"], served["pinned"]) == (3, False)
    entry = api(server, registry, "GET", "/v1/audit?feature=support.reply")["data"][0]
    assert (entry["action"], entry["actor"], entry["to_version"]) == ("promote", "oncall", 3)
    # nothing left to act on: the confirmation says so
    confirm = admin.get(f"{FEATURE}/confirm", params={"action": "pause"})
    assert confirm.status_code == 409
