"""Versions, diff, rollback, promote and the audit log through the API (SPEC §2, §4, §8)."""

from __future__ import annotations

from datetime import datetime

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from support.server import app_of
from support.wait import wait_for

from .harness import SERVED_WITHIN_S, Registry

REPLY = "/v1/features/support.reply"


def served_version(client: TestClient, registry: Registry, feature: str = "support.reply"):
    return client.get(f"/v1/features/{feature}", headers=registry.reader).json()["version"]


def test_versions_newest_first_with_labels(shared_client: TestClient, shared_registry: Registry):
    response = shared_client.get(f"{REPLY}/versions", headers=shared_registry.reader)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    rows = body["data"]
    assert [row["version"] for row in rows] == [3, 2, 1]
    assert [row["labels"] for row in rows] == [["production"], [], []]
    assert [row["commit"]["message"].strip() for row in rows] == [
        "Warmer tone",
        "Ask for the order number",
        "Add support reply, knowledge base answer and a probe",
    ]
    for row in rows:
        assert set(row) >= {"version", "content_hash", "commit", "created_at", "labels"}
        assert set(row["commit"]) >= {"sha", "author", "message", "committed_at"}
        assert datetime.fromisoformat(row["created_at"]).tzinfo is not None
    assert len({row["content_hash"] for row in rows}) == 3


def test_diff_between_versions(shared_client: TestClient, shared_registry: Registry):
    response = shared_client.get(f"{REPLY}/diff?from=1&to=3", headers=shared_registry.reader)
    assert response.status_code == 200
    body = response.json()
    assert (body["feature"], body["from_version"], body["to_version"]) == ("support.reply", 1, 3)
    prompt_diff = body["prompt_diff"]
    assert prompt_diff.startswith("--- support.reply@1\n+++ support.reply@3\n@@ ")
    assert (
        "+You are a support agent for ACME. Write in a {{ tone }} tone. Always ask for the "
        "order number when it is missing.\n"
    ) in prompt_diff
    assert body["partials_diff"].startswith("--- prompts/partials/tone.jinja@1\n")
    assert "-Be concise.\n+Be concise and warm.\n" in body["partials_diff"]
    assert body["policy_diff"] == ""
    delta = body["token_delta"]
    assert isinstance(delta, int) and not isinstance(delta, bool)
    assert delta > 0  # the prompt grew
    assert delta == body["tokens_to"] - body["tokens_from"]

    back = shared_client.get(f"{REPLY}/diff?from=3&to=1", headers=shared_registry.reader).json()
    assert back["token_delta"] == -delta
    same = shared_client.get(f"{REPLY}/diff?from=2&to=2", headers=shared_registry.reader).json()
    assert (same["prompt_diff"], same["policy_diff"], same["token_delta"]) == ("", "", 0)


def test_rollback_to_previous_then_to_a_version(client: TestClient, registry: Registry):
    response = client.post(f"{REPLY}/rollback", json={}, headers=registry.admin)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "feature": "support.reply",
        "label": "production",
        "from_version": 3,
        "to_version": 2,
        "pinned": True,
    }
    wait_for(lambda: served_version(client, registry) == 2, SERVED_WITHIN_S, "version 2")
    resolved = client.get(REPLY, headers=registry.reader).json()
    assert resolved["pinned"] is True

    # Two rollbacks in a row go back two steps (not a toggle).
    again = client.post(f"{REPLY}/rollback", json={}, headers=registry.admin)
    assert again.json()["from_version"] == 2 and again.json()["to_version"] == 1

    explicit = client.post(f"{REPLY}/rollback", json={"to_version": 3}, headers=registry.admin)
    assert explicit.status_code == 200
    assert explicit.json() == {
        "feature": "support.reply",
        "label": "production",
        "from_version": 1,
        "to_version": 3,
        "pinned": True,
    }
    versions = client.get(f"{REPLY}/versions", headers=registry.reader).json()["data"]
    assert [row["labels"] for row in versions] == [["production"], [], []]


def test_rollback_without_an_earlier_target_is_409_and_changes_nothing(
    client: TestClient, registry: Registry
):
    before = client.get("/v1/audit", headers=registry.reader).json()
    response = client.post("/v1/features/kb.answer/rollback", json={}, headers=registry.admin)
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "kb.answer" in detail and "version 1" in detail
    assert "no earlier target" in detail
    assert client.get("/v1/audit", headers=registry.reader).json() == before
    resolved = client.get("/v1/features/kb.answer", headers=registry.reader).json()
    assert (resolved["version"], resolved["pinned"]) == (1, False)


def test_rollback_errors(client: TestClient, registry: Registry):
    cases = [
        ("/v1/features/nope/rollback", {}, 404, "unknown feature 'nope'"),
        (f"{REPLY}/rollback", {"to_version": 9}, 404, "feature 'support.reply' has no version 9"),
        (
            f"{REPLY}/rollback",
            {"label": "canary"},
            404,
            "feature 'support.reply' has no version labelled 'canary'",
        ),
        (f"{REPLY}/rollback", {"to_version": 0}, 422, "to_version"),
        (f"{REPLY}/rollback", {"pinned": True}, 422, "pinned"),
        (f"{REPLY}/promote", {"version": 9}, 404, "feature 'support.reply' has no version 9"),
        (f"{REPLY}/promote", {"version": "x"}, 422, "version"),
    ]
    for path, body, status, detail in cases:
        response = client.post(path, json=body, headers=registry.admin)
        assert response.status_code == status, (path, body, response.text)
        assert detail in response.json()["detail"], (path, body)
    assert client.get(REPLY, headers=registry.reader).json()["version"] == 3


def test_promote_unpins(client: TestClient, registry: Registry):
    client.post(f"{REPLY}/rollback", json={"to_version": 1}, headers=registry.admin)
    response = client.post(
        f"{REPLY}/promote", json={"reason": "fixed forward"}, headers=registry.admin
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "feature": "support.reply",
        "label": "production",
        "from_version": 1,
        "to_version": 3,
        "pinned": False,
    }
    to_two = client.post(f"{REPLY}/promote", json={"version": 2}, headers=registry.admin)
    assert to_two.json()["to_version"] == 2 and to_two.json()["pinned"] is False
    wait_for(lambda: served_version(client, registry) == 2, SERVED_WITHIN_S, "version 2")
    assert client.get(REPLY, headers=registry.reader).json()["pinned"] is False


def test_a_pinned_label_survives_a_sync(client: TestClient, registry: Registry):
    client.post(f"{REPLY}/rollback", json={}, headers=registry.admin)
    registry.repo.commit(
        "Policy: shorter answers",
        {
            "policies/support/reply.yaml": (registry.repo.path / "policies/support/reply.yaml")
            .read_text()
            .replace("max_output_tokens: 400", "max_output_tokens: 300")
        },
    )
    synced = client.post("/v1/sync", headers=registry.admin)
    assert synced.status_code == 200, synced.text
    assert synced.json()["versions_created"] == 1
    assert synced.json()["pinned_skipped"] == ["support.reply"]
    assert served_version(client, registry) == 2
    promoted = client.post(f"{REPLY}/promote", json={}, headers=registry.admin)
    assert promoted.json()["to_version"] == 4
    wait_for(lambda: served_version(client, registry) == 4, SERVED_WITHIN_S, "version 4")


def test_audit_newest_first_for_a_feature(client: TestClient, registry: Registry):
    client.post(f"{REPLY}/rollback", json={"reason": "incident 42"}, headers=registry.admin)
    client.post(f"{REPLY}/promote", json={}, headers=registry.admin)
    response = client.get("/v1/audit?feature=support.reply", headers=registry.reader)
    assert response.status_code == 200
    body = response.json()
    rows = body["data"]
    assert body["count"] == len(rows) == 5
    assert [(r["action"], r["from_version"], r["to_version"]) for r in rows] == [
        ("promote", 2, 3),
        ("rollback", 3, 2),
        ("sync", 2, 3),
        ("sync", 1, 2),
        ("sync", None, 1),
    ]
    for row in rows:
        assert set(row) >= {
            "feature",
            "label",
            "action",
            "from_version",
            "to_version",
            "actor",
            "reason",
            "at",
        }
        assert (row["feature"], row["label"]) == ("support.reply", "production")
    assert [r["actor"] for r in rows[:2]] == ["oncall", "oncall"]
    assert rows[1]["reason"] == "incident 42"
    stamps = [datetime.fromisoformat(r["at"]) for r in rows]
    assert stamps == sorted(stamps, reverse=True)
    everything = client.get("/v1/audit?limit=2", headers=registry.reader).json()
    assert everything["count"] == 2
    assert everything["data"] == rows[:2]


def test_a_label_move_is_acknowledged_only_once_committed(app: FastAPI, registry: Registry):
    # A session committed by a yield dependency after the response (FastAPI's default
    # "request" scope) would answer 200 here with nothing moved.
    def refuse_commit(*_: object) -> None:
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    with TestClient(app, raise_server_exceptions=False) as client:
        assert served_version(client, registry) == 3
        event.listen(app.state.engine, "commit", refuse_commit)
        try:
            response = client.post(f"{REPLY}/rollback", json={}, headers=registry.admin)
        finally:
            event.remove(app.state.engine, "commit", refuse_commit)
        assert served_version(client, registry) == 3  # nothing moved...
        assert response.status_code >= 500, response.text  # ...so it must not say it did


def test_the_replica_that_moves_a_label_serves_it_at_once(registry: Registry):
    # A watcher that polls only every 30 s: the move must not wait for it on this replica.
    with app_of(registry.settings(), poll_s=30.0) as app, TestClient(app) as client:
        assert served_version(client, registry) == 3  # cached
        client.post(f"{REPLY}/rollback", json={}, headers=registry.admin)
        assert served_version(client, registry) == 2
        client.post(f"{REPLY}/promote", json={}, headers=registry.admin)
        assert served_version(client, registry) == 3
