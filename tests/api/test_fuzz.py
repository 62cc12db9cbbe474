"""Property-based fuzzing of every operation in the app's /openapi.json: nothing is a 5xx.

Schemathesis (v4) generates requests from the schema, positive and negative, and sends
them in-process with an admin token. Bounded to a few examples per operation so the
whole run takes seconds. Excluded: `POST /v1/sync` (each call walks git — slow, and
covered in test_sync_hook.py) and `POST /v1/hooks/git` (a random body never carries a
valid signature, so it would only ever exercise the 401 path, also covered there).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from sqlalchemy import create_engine
from support.server import app_of

from registry.api.app import create_app
from registry.config import Settings

from .harness import POLL_S, Registry, bearer

FEATURES = ["support.reply", "kb.answer", "lab.probe", None]
INT4_MAX = 2**31 - 1
INT8_MAX = 2**63 - 1


@pytest.fixture(scope="module")
def fuzzed_app(shared_registry: Registry) -> Iterator[FastAPI]:
    """The app under fuzzing; its lifespan (started by schemathesis) is stopped afterwards."""
    # The module's registry is shared: fuzzed rollbacks and promotes only move its labels.
    with app_of(shared_registry.settings(), poll_s=POLL_S) as app:
        try:
            yield app
        finally:
            asgi.shutdown_lifespans()


def _schema_only_app() -> FastAPI:
    # The OpenAPI document does not depend on the database: an app over an engine that is
    # never connected (its lifespan never runs) gives it at import time. Requests go to the
    # per-test `fuzzed_app` through case.call(app=...).
    # (schemathesis.pytest.from_fixture would be the lazy way, but schemathesis 4.32 uses
    # `request.node._nodeid`, which pytest 9 no longer has.)
    return create_app(Settings(), engine=create_engine("sqlite://"))


schema = schemathesis.openapi.from_dict(_schema_only_app().openapi()).exclude(
    path_regex=r"^/v1/(sync|hooks/git)$"
)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_request_is_a_server_error(case, fuzzed_app: FastAPI, shared_registry: Registry):
    name = case.path_parameters.get("name") if case.path_parameters else None
    if name is not None:
        # Three cases in four go to a real feature, so fuzzed queries and bodies get past 404.
        real = FEATURES[zlib.crc32(repr(name).encode()) % 4]
        case.path_parameters["name"] = real or name
    response = case.call(app=fuzzed_app, headers=bearer(shared_registry.admin_token))
    case.validate_response(response, checks=[not_a_server_error])


# What the fuzzer found: a version number beyond what the database binds (int4 columns on
# PostgreSQL, 64-bit integers on SQLite) raises DataError / OverflowError, and on PostgreSQL a
# NUL character in a feature name, label or reason raises DataError: both answer 500.
TOO_BIG = 2**63
OUT_OF_RANGE = [
    ("GET", f"/v1/features/support.reply?version={TOO_BIG}", None),
    ("GET", f"/v1/features/support.reply/diff?from={TOO_BIG}&to=1", None),
    ("POST", "/v1/features/support.reply/render", {"variables": {}, "version": TOO_BIG}),
    ("POST", "/v1/features/support.reply/rollback", {"to_version": TOO_BIG}),
    ("POST", "/v1/features/support.reply/promote", {"version": TOO_BIG}),
    ("GET", f"/v1/features/support.reply?version={INT4_MAX + 1}", None),
]
WITH_NUL = [
    ("GET", "/v1/features/a%00b", None),
    ("GET", "/v1/features/a%00b/versions", None),
    ("GET", "/v1/features/support.reply?label=a%00b", None),
    ("GET", "/v1/features?label=a%00b", None),
    ("GET", "/v1/audit?feature=a%00b", None),
    ("GET", "/v1/audit?label=a%00b", None),
    ("POST", "/v1/features/support.reply/render", {"variables": {}, "label": "a\x00b"}),
    ("POST", "/v1/features/kb.answer/rollback", {"label": "a\x00b"}),
    ("POST", "/v1/features/kb.answer/promote", {"label": "a\x00b"}),
    ("POST", "/v1/features/kb.answer/rollback", {"to_version": 1, "reason": "a\x00b"}),
]


@pytest.mark.parametrize(("method", "path", "body"), OUT_OF_RANGE + WITH_NUL)
def test_values_the_database_cannot_store_are_not_5xx(
    request: pytest.FixtureRequest,
    shared_client: TestClient,
    shared_registry: Registry,
    method,
    path,
    body,
):
    client = TestClient(shared_client.app, raise_server_exceptions=False)
    response = client.request(method, path, json=body, headers=shared_registry.admin)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert isinstance(response.json()["detail"], str)
