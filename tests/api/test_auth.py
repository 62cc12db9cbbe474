"""Bearer-token auth (SPEC §4, §8): 401 without or with a bad token, 403 for the wrong role."""

from __future__ import annotations

from fastapi.testclient import TestClient
from support.wait import wait_for
from typer.testing import CliRunner

from registry.cli import app as cli

from .harness import SERVED_WITHIN_S, Registry, bearer

ADMIN_ONLY = [
    ("POST", "/v1/features/support.reply/rollback", {}),
    ("POST", "/v1/features/support.reply/promote", {}),
    ("POST", "/v1/sync", None),
]
READS = [
    ("GET", "/v1/features", None),
    ("GET", "/v1/features/support.reply", None),
    (
        "POST",
        "/v1/features/support.reply/render",
        {"variables": {"customer_name": "A", "ticket": "B"}},
    ),
    ("GET", "/v1/features/support.reply/versions", None),
    ("GET", "/v1/features/support.reply/diff?from=1&to=2", None),
    ("GET", "/v1/audit", None),
]


def test_no_token_is_401_not_403_with_www_authenticate(shared_client: TestClient):
    for method, path, body in READS + ADMIN_ONLY:
        response = shared_client.request(method, path, json=body)
        assert response.status_code == 401, (method, path)
        assert response.json() == {"detail": "missing bearer token"}
        assert response.headers["www-authenticate"].startswith("Bearer"), (method, path)


def test_malformed_authorization_is_401(shared_client: TestClient):
    for header in ("Basic b25jYWxsOnNlY3JldA==", "Bearer", "Bearer    ", "prt_no-scheme"):
        response = shared_client.get("/v1/features", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.json() == {"detail": "missing bearer token"}
        assert "www-authenticate" in response.headers


def test_unknown_token_is_401(shared_client: TestClient):
    for _ in range(2):  # the second answer comes from the replica's token cache
        response = shared_client.get("/v1/features", headers=bearer("prt_not-a-real-token"))
        assert response.status_code == 401
        assert response.json() == {"detail": "unknown or revoked token"}
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_reader_token_reads(shared_client: TestClient, shared_registry: Registry):
    for method, path, body in READS:
        response = shared_client.request(method, path, json=body, headers=shared_registry.reader)
        assert response.status_code == 200, (method, path, response.text)


def test_reader_token_cannot_move_labels_or_sync(
    shared_client: TestClient, shared_registry: Registry
):
    for method, path, body in ADMIN_ONLY:
        response = shared_client.request(method, path, json=body, headers=shared_registry.reader)
        assert response.status_code == 403, (method, path)
        assert response.json() == {"detail": "token 'dashboard' has role reader; this needs admin"}
    resolved = shared_client.get("/v1/features/support.reply", headers=shared_registry.reader)
    assert resolved.json()["version"] == 3 and resolved.json()["pinned"] is False
    audit = shared_client.get("/v1/audit", headers=shared_registry.reader).json()
    assert {row["action"] for row in audit["data"]} == {"sync"}


def test_revoked_token_stops_working_within_a_second(
    client: TestClient, registry: Registry, cli_engines
):
    assert client.get("/v1/features", headers=registry.reader).status_code == 200  # now cached
    result = CliRunner().invoke(
        cli, ["token", "revoke", "dashboard", "--database-url", registry.db_url]
    )
    assert result.exit_code == 0, result.output
    wait_for(
        lambda: client.get("/v1/features", headers=registry.reader).status_code == 401,
        SERVED_WITHIN_S,
        "the revoked token to be refused",
    )
    response = client.get("/v1/features", headers=registry.reader)
    assert response.status_code == 401
    assert response.json() == {"detail": "unknown or revoked token"}
    assert client.get("/v1/features", headers=registry.admin).status_code == 200


def test_admin_rolls_back_and_is_the_audit_actor(client: TestClient, registry: Registry):
    response = client.post(
        "/v1/features/support.reply/rollback",
        json={"reason": "bad tone in prod"},
        headers=registry.admin,
    )
    assert response.status_code == 200, response.text
    audit = client.get("/v1/audit?feature=support.reply", headers=registry.reader)
    entry = audit.json()["data"][0]
    assert entry["action"] == "rollback"
    assert entry["actor"] == "oncall"
    assert entry["reason"] == "bad tone in prod"
    assert (entry["from_version"], entry["to_version"]) == (3, 2)


def test_healthz_needs_no_token(shared_client: TestClient):
    response = shared_client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert isinstance(body["generation"], int)
