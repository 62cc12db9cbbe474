"""Reading features: the list, resolve with ETag / If-None-Match, versions and labels, 404, 410."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi.testclient import TestClient
from support.git import AUTHOR, EPOCH
from support.shapes import RESOLVED_VERSION_KEYS
from support.wait import wait_for

from .harness import SERVED_WITHIN_S, Registry

STRONG_ETAG = re.compile(r'^"([0-9a-f]{64})"$')


def test_list_features(shared_client: TestClient, shared_registry: Registry):
    response = shared_client.get("/v1/features", headers=shared_registry.reader)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    rows = {row["name"]: row for row in body["data"]}
    assert [row["name"] for row in body["data"]] == ["kb.answer", "lab.probe", "support.reply"]
    reply = rows["support.reply"]
    assert reply["label"] == "production"
    assert reply["version"] == 3
    assert reply["pinned"] is False
    assert reply["retired"] is False
    assert datetime.fromisoformat(reply["updated_at"]).tzinfo is not None
    assert rows["kb.answer"]["version"] == 1


def test_list_features_of_an_unused_label(shared_client: TestClient, shared_registry: Registry):
    response = shared_client.get("/v1/features?label=canary", headers=shared_registry.reader)
    assert response.status_code == 200
    assert {row["version"] for row in response.json()["data"]} == {None}


def test_resolve_body_and_etag(shared_client: TestClient, shared_registry: Registry):
    response = shared_client.get("/v1/features/support.reply", headers=shared_registry.reader)
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= RESOLVED_VERSION_KEYS
    assert (body["feature"], body["version"], body["label"]) == ("support.reply", 3, "production")
    assert body["pinned"] is False
    assert re.fullmatch(r"[0-9a-f]{64}", body["content_hash"])
    match = STRONG_ETAG.match(response.headers["etag"])
    assert match, response.headers["etag"]
    assert match.group(1) == body["content_hash"]

    commit = body["commit"]
    assert set(commit) >= {"sha", "author", "message", "committed_at"}
    assert commit["sha"] == shared_registry.repo.git("rev-parse", "HEAD")
    assert commit["author"] == AUTHOR
    assert commit["message"].strip() == "Warmer tone"
    # the third commit of the fixed clock: EPOCH + 3 minutes
    assert datetime.fromisoformat(commit["committed_at"]) == datetime.fromtimestamp(
        EPOCH + 180, UTC
    )

    prompt = body["prompt"]
    assert set(prompt) == {"path", "source", "inputs"}
    assert prompt["path"] == "prompts/support/reply.jinja"
    assert "Always ask for the order number" in prompt["source"]
    assert set(prompt["inputs"]) == {"customer_name", "ticket", "tone", "history", "priority"}

    policy = body["policy"]
    assert [m["model"] for m in policy["models"]] == ["gpt-4o", "gpt-4o-mini"]
    assert policy["max_output_tokens"] == 400
    assert policy["budget"]["max_request_tokens"] == 2000
    assert policy["owner"] == "platform"  # merged from policies/_defaults.yaml


def test_if_none_match_answers_304_without_a_body(
    shared_client: TestClient, shared_registry: Registry
):
    first = shared_client.get("/v1/features/support.reply", headers=shared_registry.reader)
    etag = first.headers["etag"]
    again = shared_client.get(
        "/v1/features/support.reply", headers={**shared_registry.reader, "If-None-Match": etag}
    )
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    other = shared_client.get(
        "/v1/features/support.reply",
        headers={**shared_registry.reader, "If-None-Match": f'"{"0" * 64}"'},
    )
    assert other.status_code == 200
    assert other.json()["version"] == 3


def test_if_none_match_uses_weak_comparison_over_a_list(
    shared_client: TestClient, shared_registry: Registry
):
    etag = shared_client.get("/v1/features/support.reply", headers=shared_registry.reader).headers[
        "etag"
    ]
    for header in (f'"{"0" * 64}", {etag}', f"W/{etag}", "*"):
        response = shared_client.get(
            "/v1/features/support.reply",
            headers={**shared_registry.reader, "If-None-Match": header},
        )
        assert response.status_code == 304, header


def test_resolve_a_version(shared_client: TestClient, shared_registry: Registry):
    current = shared_client.get("/v1/features/support.reply", headers=shared_registry.reader)
    response = shared_client.get(
        "/v1/features/support.reply?version=1", headers=shared_registry.reader
    )
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == 1
    assert body["content_hash"] != current.json()["content_hash"]
    assert response.headers["etag"] == f'"{body["content_hash"]}"'
    assert "order number" not in body["prompt"]["source"]
    assert body["commit"]["message"].strip().startswith("Add support reply")


def test_unknown_feature_version_or_label_is_404(
    shared_client: TestClient, shared_registry: Registry
):
    cases = {
        "/v1/features/nope": "unknown feature 'nope'",
        "/v1/features/support.reply?version=99": "feature 'support.reply' has no version 99",
        "/v1/features/support.reply?label=staging": (
            "feature 'support.reply' has no version labelled 'staging'"
        ),
        "/v1/features/nope/versions": "unknown feature 'nope'",
        "/v1/features/nope/diff?from=1&to=2": "unknown feature 'nope'",
        "/v1/features/support.reply/diff?from=1&to=9": "feature 'support.reply' has no version 9",
        "/v1/audit?feature=nope": "unknown feature 'nope'",
    }
    for path, detail in cases.items():
        response = shared_client.get(path, headers=shared_registry.reader)
        assert response.status_code == 404, path
        assert response.json() == {"detail": detail}, path
    render = shared_client.post(
        "/v1/features/nope/render", json={"variables": {}}, headers=shared_registry.reader
    )
    assert render.status_code == 404
    assert render.json() == {"detail": "unknown feature 'nope'"}


def test_bad_query_values_are_422(shared_client: TestClient, shared_registry: Registry):
    for path, field in [
        ("/v1/features/support.reply?version=0", "version"),
        ("/v1/features/support.reply?version=abc", "version"),
        ("/v1/features/support.reply/diff?from=1", "to"),
        ("/v1/features/support.reply/diff?from=x&to=2", "from"),
        ("/v1/audit?limit=0", "limit"),
    ]:
        response = shared_client.get(path, headers=shared_registry.reader)
        assert response.status_code == 422, path
        detail = response.json()["detail"]
        assert isinstance(detail, str) and field in detail, (path, detail)


def test_version_query_takes_ascii_digits_only(
    shared_client: TestClient, shared_registry: Registry
):
    client = TestClient(shared_client.app, raise_server_exceptions=False)
    for raw in ("%C2%B2", "%D9%A3"):  # '²', '٣'
        response = client.get(
            f"/v1/features/support.reply?version={raw}", headers=shared_registry.reader
        )
        assert response.status_code == 422, (raw, response.text)
        assert "version" in response.json()["detail"]


def test_another_label(client: TestClient, registry: Registry):
    promoted = client.post(
        "/v1/features/support.reply/promote",
        json={"label": "staging", "version": 3},
        headers=registry.admin,
    )
    assert promoted.status_code == 200, promoted.text
    rollback = client.post("/v1/features/support.reply/rollback", json={}, headers=registry.admin)
    assert rollback.status_code == 200, rollback.text

    def production_at_2() -> bool:
        response = client.get("/v1/features/support.reply", headers=registry.reader)
        return response.json()["version"] == 2

    wait_for(production_at_2, SERVED_WITHIN_S, "production to serve version 2")
    staging = client.get("/v1/features/support.reply?label=staging", headers=registry.reader)
    assert staging.status_code == 200
    assert (staging.json()["version"], staging.json()["label"]) == (3, "staging")
    assert staging.json()["pinned"] is False
    production = client.get("/v1/features/support.reply", headers=registry.reader).json()
    assert production["pinned"] is True
    assert staging.headers["etag"] != f'"{production["content_hash"]}"'
    listed = client.get("/v1/features?label=staging", headers=registry.reader).json()["data"]
    assert {row["name"]: row["version"] for row in listed} == {
        "kb.answer": None,
        "lab.probe": None,
        "support.reply": 3,
    }


def test_retired_feature_is_410_but_its_history_stays(client: TestClient, registry: Registry):
    assert client.get("/v1/features/kb.answer", headers=registry.reader).status_code == 200
    registry.repo.commit("Retire the knowledge base answer", {"policies/kb/answer.yaml": None})
    summary = registry.sync()
    assert summary.retired == ["kb.answer"]

    def retired() -> bool:
        return client.get("/v1/features/kb.answer", headers=registry.reader).status_code == 410

    wait_for(retired, SERVED_WITHIN_S, "kb.answer to answer 410")
    detail = "feature 'kb.answer' was retired: its policy file was deleted"
    response = client.get("/v1/features/kb.answer", headers=registry.reader)
    assert response.json() == {"detail": detail}
    render = client.post(
        "/v1/features/kb.answer/render",
        json={"variables": {"question": "hi"}},
        headers=registry.reader,
    )
    assert (render.status_code, render.json()) == (410, {"detail": detail})

    versions = client.get("/v1/features/kb.answer/versions", headers=registry.reader)
    assert versions.status_code == 200
    assert [row["version"] for row in versions.json()["data"]] == [1]
    pinned = client.get("/v1/features/kb.answer?version=1", headers=registry.reader)
    assert pinned.status_code == 200
    assert pinned.json()["version"] == 1

    listed = client.get("/v1/features", headers=registry.reader).json()["data"]
    assert {row["name"]: row["retired"] for row in listed}["kb.answer"] is True
    audit = client.get("/v1/audit?feature=kb.answer", headers=registry.reader).json()["data"]
    assert audit[0]["action"] == "retire"
    rollback = client.post("/v1/features/kb.answer/rollback", json={}, headers=registry.admin)
    assert (rollback.status_code, rollback.json()) == (410, {"detail": detail})
