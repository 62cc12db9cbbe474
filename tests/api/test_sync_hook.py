"""POST /v1/sync and the git push webhook (SPEC §4, §8)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session
from support.server import app_of
from support.wait import wait_for

from registry.config import Settings
from registry.store import crud

from .harness import (
    POLL_S,
    REPLY_POLICY,
    SERVED_WITHIN_S,
    WEBHOOK_SECRET,
    Registry,
    hub_signature,
)

HOOK = "/v1/hooks/git"
REPLY = "/v1/features/support.reply"


def new_commit(registry: Registry) -> str:
    """Commit a policy change to support.reply (its version 4); the sha."""
    return registry.repo.commit(
        "Lower the temperature",
        {"policies/support/reply.yaml": REPLY_POLICY.replace("0.3", "0.1")},
    )


def push(ref: str, after: str) -> bytes:
    return json.dumps(
        {"ref": ref, "before": "0" * 40, "after": after, "repository": {"full_name": "acme/p"}}
    ).encode()


def signed(body: bytes, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    return {
        "X-Hub-Signature-256": hub_signature(secret, body),
        "X-GitHub-Event": "push",
        "Content-Type": "application/json",
    }


def sync_runs(registry: Registry) -> int:
    with Session(registry.engine) as session:
        return len(crud.list_sync_runs(session=session, limit=1000))


def test_sync_returns_its_summary(client: TestClient, registry: Registry):
    sha = new_commit(registry)
    response = client.post("/v1/sync", headers=registry.admin)
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["to_commit"] == sha
    assert summary["ref"] == "main" and summary["label"] == "production"
    assert (summary["commits"], summary["versions_created"], summary["labels_moved"]) == (1, 1, 1)
    assert summary["ok"] is True and summary["errors"] == []

    def at_four() -> bool:
        return client.get(REPLY, headers=registry.reader).json()["version"] == 4

    wait_for(at_four, SERVED_WITHIN_S, "version 4")
    resolved = client.get(REPLY, headers=registry.reader).json()
    assert resolved["commit"]["sha"] == sha
    assert resolved["policy"]["params"] == {"temperature": 0.1}
    audit = client.get("/v1/audit?feature=support.reply", headers=registry.reader).json()
    assert (audit["data"][0]["action"], audit["data"][0]["actor"]) == ("sync", "oncall")

    again = client.post("/v1/sync", headers=registry.admin).json()
    assert (again["commits"], again["versions_created"], again["labels_moved"]) == (0, 0, 0)


def test_webhook_without_or_with_a_wrong_signature_is_401(
    shared_client: TestClient, shared_registry: Registry
):
    body = push("refs/heads/main", "f" * 40)
    before = sync_runs(shared_registry)
    cases = [
        {"Content-Type": "application/json"},
        signed(body, secret="not the secret"),
        {"X-Hub-Signature-256": "sha256=", "Content-Type": "application/json"},
        {"X-Hub-Signature-256": hub_signature(WEBHOOK_SECRET, body)[7:]},  # no sha256= prefix
        {"X-Hub-Signature": "sha1=" + "0" * 40},  # GitHub's legacy header is not accepted
    ]
    for headers in cases:
        response = shared_client.post(HOOK, content=body, headers=headers)
        assert response.status_code == 401, headers
        assert response.json() == {"detail": "missing or wrong X-Hub-Signature-256"}
    # a signature over another body
    response = shared_client.post(HOOK, content=body + b" ", headers=signed(body))
    assert response.status_code == 401
    assert sync_runs(shared_registry) == before


def test_webhook_push_to_the_branch_syncs(client: TestClient, registry: Registry):
    sha = new_commit(registry)
    body = push("refs/heads/main", sha)
    response = client.post(HOOK, content=body, headers=signed(body))
    assert response.status_code == 202
    assert response.json()["accepted"] is True
    assert isinstance(response.json()["detail"], str)

    def synced() -> bool:
        resolved = client.get(REPLY, headers=registry.reader).json()
        return resolved["commit"]["sha"] == sha

    wait_for(synced, SERVED_WITHIN_S, "the pushed commit to be served")
    assert client.get(REPLY, headers=registry.reader).json()["version"] == 4
    audit = client.get("/v1/audit?feature=support.reply", headers=registry.reader).json()
    assert (audit["data"][0]["action"], audit["data"][0]["actor"]) == ("sync", "webhook")


def test_webhook_push_to_another_branch_is_ignored(client: TestClient, registry: Registry):
    new_commit(registry)  # on main, not synced: an ignored push must not pick it up
    before = sync_runs(registry)
    for ref in ("refs/heads/feature/x", "refs/tags/v1.0", "refs/heads/main-old"):
        body = push(ref, "a" * 40)
        response = client.post(HOOK, content=body, headers=signed(body))
        assert response.status_code == 202, ref
        assert response.json() == {"accepted": False, "detail": f"ignored push to {ref}"}
    assert sync_runs(registry) == before
    assert client.get(REPLY, headers=registry.reader).json()["version"] == 3


def test_webhook_with_a_good_signature_but_no_json_is_422(
    shared_client: TestClient, shared_registry: Registry
):
    body = b"ref=refs/heads/main"
    response = shared_client.post(HOOK, content=body, headers=signed(body))
    assert response.status_code == 422
    assert response.json() == {"detail": "webhook body is not JSON"}


@pytest.fixture
def client_without_secret(shared_registry: Registry) -> Iterator[TestClient]:
    settings: Settings = shared_registry.settings().model_copy(update={"webhook_secret": None})
    with app_of(settings, poll_s=POLL_S) as app, TestClient(app) as client:
        yield client


def test_webhook_without_a_configured_secret_is_401(client_without_secret: TestClient):
    body = push("refs/heads/main", "f" * 40)
    response = client_without_secret.post(HOOK, content=body, headers=signed(body))
    assert response.status_code == 401
    assert "PROMPTREG_WEBHOOK_SECRET" in response.json()["detail"]


def test_syncing_the_same_ref_into_another_label_reuses_its_versions(
    client: TestClient, registry: Registry
):
    summary = registry.sync(label="staging")
    assert summary.versions_created == 0
    versions = client.get(f"{REPLY}/versions", headers=registry.reader).json()["data"]
    assert [row["version"] for row in versions] == [3, 2, 1]
    staging = client.get(f"{REPLY}?label=staging", headers=registry.reader).json()
    assert staging["version"] == 3
