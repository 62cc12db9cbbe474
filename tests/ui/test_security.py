"""The dashboard's security, over HTTP against a real server: sign-in and its cookie, CSRF,
roles checked on the server, refused cross-origin posts, escaping, no token anywhere.

Every refused POST is also checked through the API: the label did not move.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from api.harness import Registry, bearer
from sqlalchemy import Engine
from support.server import AppServer, app_of

from registry.store import crud
from registry.store.db import session_scope

from .conftest import MARKUP, csrf_of, sign_in

ROLLBACK = "/ui/features/support.reply/rollback"


def served_version(server: AppServer, registry: Registry) -> tuple[int, bool]:
    """(version, pinned) of support.reply's production label, through the API."""
    answer = httpx.get(f"{server.url}/v1/features/support.reply", headers=registry.admin)
    assert answer.status_code == 200, answer.text
    return answer.json()["version"], answer.json()["pinned"]


@contextmanager
def label_unmoved(server: AppServer, registry: Registry) -> Iterator[None]:
    """The block leaves support.reply's production label where it was, pinned or not."""
    before = served_version(server, registry)
    yield
    assert served_version(server, registry) == before


def rollback_form(client: httpx.Client, **fields: str) -> dict[str, str]:
    """A rollback of support.reply to v1, with the session's CSRF token unless overridden."""
    page = client.get("/ui/features/support.reply")
    return {"csrf": csrf_of(page.text), "label": "production", "version": "1",
            "reason": "bad answers", **fields}  # fmt: skip


def test_pages_need_a_session_and_send_you_to_sign_in(server: AppServer) -> None:
    root = httpx.get(f"{server.url}/")
    assert (root.status_code, root.headers["location"]) == (303, "/ui")
    for path in ("/ui", "/ui/features/support.reply", "/ui/audit", "/ui/features/kb.answer/diff"):
        answer = httpx.get(f"{server.url}{path}")
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/ui/login?next=%2Fui"), path


def test_the_session_cookie_is_httponly_samesite_strict_and_holds_no_token(
    server: AppServer, registry: Registry
) -> None:
    with httpx.Client(base_url=server.url) as client:
        nonce = csrf_of(client.get("/ui/login").text)
        answer = client.post(
            "/ui/login", data={"csrf": nonce, "token": registry.admin_token, "next": "/ui"}
        )
    assert answer.status_code == 303
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith("promptreg_session=")
    )
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path"} <= attributes
    assert "samesite=strict" in cookie.lower() and "path=/ui" in cookie.lower()
    assert "secure" not in attributes  # plain HTTP here; see the HTTPS test below
    assert registry.admin_token not in cookie
    assert registry.admin_token not in answer.headers.get("location", "")


def test_the_cookie_is_secure_under_https(registry: Registry) -> None:
    from fastapi.testclient import TestClient

    with app_of(registry.settings()) as app:
        with TestClient(app, base_url="https://dashboard.example") as client:
            nonce = csrf_of(client.get("/ui/login").text)
            answer = client.post(
                "/ui/login",
                data={"csrf": nonce, "token": registry.reader_token},
                follow_redirects=False,
            )
        cookie = next(
            c for c in answer.headers.get_list("set-cookie") if c.startswith("promptreg_session=")
        )
        assert "; secure" in cookie.lower()


def test_a_wrong_token_is_refused_and_not_shown_back(server: AppServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        nonce = csrf_of(client.get("/ui/login").text)
        answer = client.post("/ui/login", data={"csrf": nonce, "token": "prt_not-a-real-token"})
    assert answer.status_code == 401
    assert "unknown or was revoked" in answer.text
    assert "prt_not-a-real-token" not in answer.text
    assert "promptreg_session" not in answer.headers.get("set-cookie", "")


def test_sign_in_needs_the_form_s_own_nonce(server: AppServer, registry: Registry) -> None:
    # A sign-in posted from elsewhere (login CSRF) has no nonce cookie to match.
    answer = httpx.post(
        f"{server.url}/ui/login", data={"csrf": "guess", "token": registry.admin_token}
    )
    assert answer.status_code == 403
    assert "promptreg_session" not in answer.headers.get("set-cookie", "")


def test_sign_in_only_goes_on_to_dashboard_pages(server: AppServer, registry: Registry) -> None:
    with httpx.Client(base_url=server.url) as client:
        for target, where in (
            ("//evil.example/ui", "/ui"),
            ("https://evil.example/ui", "/ui"),
            ("/ui/audit?feature=kb.answer", "/ui/audit?feature=kb.answer"),
        ):
            client.cookies.clear()
            nonce = csrf_of(client.get("/ui/login").text)
            answer = client.post(
                "/ui/login", data={"csrf": nonce, "token": registry.reader_token, "next": target}
            )
            assert answer.headers["location"] == where


def test_no_token_in_any_page_url_or_log(
    admin: httpx.Client, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    paths = [
        "/ui",
        "/ui?q=support&sort=p95&dir=desc",
        "/ui/features/support.reply",
        "/ui/features/support.reply/live?window=7d",
        "/ui/features/support.reply/diff?from=1&to=3&view=split",
        "/ui/features/support.reply/confirm?action=rollback&version=1",
        "/ui/audit",
    ]
    for path in paths:
        answer = admin.get(path)
        assert answer.status_code == 200, (path, answer.text[:500])
        for token in (registry.admin_token, registry.reader_token):
            assert token not in answer.text, path
            assert token not in str(answer.url), path
            assert all(token not in value for value in answer.headers.values()), path
        assert "Content-Security-Policy" in answer.headers
        assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
        assert answer.headers["Cache-Control"] == "no-store"
    answer = admin.post(ROLLBACK, data=rollback_form(admin))
    assert answer.status_code == 303
    assert registry.admin_token not in caplog.text
    assert registry.admin_token not in answer.headers["location"]


def test_markup_from_git_and_usage_is_shown_as_text(
    admin: httpx.Client, server: AppServer, registry: Registry
) -> None:
    escaped = "&lt;script&gt;window.pwned = 1&lt;/script&gt;"
    feature = admin.get("/ui/features/kb.answer").text
    assert escaped in feature  # the commit message, the prompt source and the sample
    assert "<script>window.pwned" not in feature
    assert '<img src=x onerror="window.pwned = 2">' not in feature
    diff = admin.get("/ui/features/kb.answer/diff?from=1&to=2").text
    assert "<script>window.pwned" not in diff and escaped in diff
    # A reason with markup, given through the API, lands in the audit log as text.
    moved = httpx.post(
        f"{server.url}/v1/features/kb.answer/rollback",
        json={"reason": MARKUP},
        headers=registry.admin,
    )
    assert moved.status_code == 200, moved.text
    audit = admin.get("/ui/audit").text
    assert escaped in audit and "<script>window.pwned" not in audit


def test_a_post_without_the_csrf_token_is_refused(
    admin: httpx.Client, server: AppServer, registry: Registry
) -> None:
    with label_unmoved(server, registry):
        for fields in ({"csrf": ""}, {"csrf": "0" * 64}):
            answer = admin.post(ROLLBACK, data=rollback_form(admin, **fields))
            assert answer.status_code == 403
            assert "CSRF token is missing or wrong" in answer.text
        form = rollback_form(admin)
        del form["csrf"]
        assert admin.post(ROLLBACK, data=form).status_code == 403


def test_a_forged_post_without_a_session_is_refused(
    admin: httpx.Client, server: AppServer, registry: Registry
) -> None:
    with label_unmoved(server, registry):
        form = rollback_form(admin)  # even with a real CSRF token, but no session cookie
        answer = httpx.post(f"{server.url}{ROLLBACK}", data=form)
        assert answer.status_code == 403
        assert "sign in first" in answer.text


def test_a_post_from_another_origin_is_refused(
    admin: httpx.Client, server: AppServer, registry: Registry
) -> None:
    with label_unmoved(server, registry):
        for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            answer = admin.post(ROLLBACK, data=rollback_form(admin), headers=headers)
            assert answer.status_code == 403, headers
            assert "refused" in answer.text


def test_a_reader_sees_no_action_and_its_posts_are_refused(
    reader: httpx.Client, server: AppServer, registry: Registry
) -> None:
    page = reader.get("/ui/features/support.reply").text
    assert "Roll back…" not in page and "Promote…" not in page
    assert "/confirm" not in page
    confirm = reader.get("/ui/features/support.reply/confirm?action=rollback&version=1")
    assert confirm.status_code == 403
    with label_unmoved(server, registry):
        # The reader's own session and CSRF token: everything right but the role.
        for path in (ROLLBACK, "/ui/features/support.reply/promote"):
            answer = reader.post(path, data=rollback_form(reader))
            assert answer.status_code == 403
            assert "needs an admin token" in answer.text


def test_an_admin_rolls_back_through_the_domain_code_audited_with_the_token_name(
    admin: httpx.Client, server: AppServer, registry: Registry
) -> None:
    answer = admin.post(ROLLBACK, data=rollback_form(admin, reason=""))
    assert answer.status_code == 422  # a rollback from the dashboard says why
    answer = admin.post(ROLLBACK, data=rollback_form(admin))
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/features/support.reply?label=production&done=rollback"
    assert served_version(server, registry) == (1, True)
    audit = httpx.get(f"{server.url}/v1/audit?feature=support.reply", headers=registry.admin)
    entry = audit.json()["data"][0]
    assert entry["action"] == "rollback" and entry["actor"] == "oncall"
    assert (entry["from_version"], entry["to_version"], entry["reason"]) == (3, 1, "bad answers")
    page = admin.get(answer.headers["location"]).text
    assert "Rolled back. production serves v1 (pinned)." in page
    # promote: back to the newest, unpinned
    form = rollback_form(admin, version="", reason="")
    assert admin.post("/ui/features/support.reply/promote", data=form).status_code == 303
    assert served_version(server, registry) == (3, False)


def test_a_conflict_is_a_page_not_a_crash(admin: httpx.Client) -> None:
    # lab.probe has one version: no earlier target.
    page = admin.get("/ui/features/lab.probe")
    form = {"csrf": csrf_of(page.text), "label": "production", "reason": "try"}
    answer = admin.post("/ui/features/lab.probe/rollback", data=form)
    assert answer.status_code == 409
    assert "no earlier target" in answer.text and "<h1>Cannot do that now</h1>" in answer.text
    answer = admin.post("/ui/features/lab.probe/rollout/pause", data=form)
    assert answer.status_code == 404
    assert admin.get("/ui/features/no.such").status_code == 404


def test_signing_out_ends_the_session(server: AppServer, registry: Registry) -> None:
    client = sign_in(server.url, registry.admin_token)
    try:
        cookie = client.cookies["promptreg_session"]
        page = client.get("/ui")
        answer = client.post("/ui/logout", data={"csrf": csrf_of(page.text)})
        assert answer.status_code == 303 and answer.headers["location"] == "/ui/login"
        assert "promptreg_session" not in client.cookies
    finally:
        client.close()
    # The old cookie, replayed, opens nothing.
    replay = httpx.get(f"{server.url}/ui", cookies={"promptreg_session": cookie})
    assert replay.status_code == 303 and replay.headers["location"].startswith("/ui/login")


def test_revoking_the_token_ends_its_sessions(
    admin: httpx.Client, server: AppServer, registry: Registry, engine: Engine
) -> None:
    form = rollback_form(admin)
    with session_scope(engine) as session:
        crud.revoke_token(session=session, name="oncall")
    assert admin.get("/ui").status_code == 303
    assert admin.post(ROLLBACK, data=form).status_code == 403
    assert (
        httpx.get(f"{server.url}/v1/features", headers=bearer(registry.admin_token)).status_code
        == 401
    )
