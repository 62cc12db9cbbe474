"""The dashboard in a real browser: Debian's Chromium, driven by Playwright.

Each test opens its own browser context (its own cookies), records every request the page
makes and every console error, and checks what it did through the API, not the page.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from api.harness import Registry
from support.server import AppServer

pytestmark = pytest.mark.slow


@dataclass
class Tab:
    """A page of a fresh browser context, and what it did."""

    page: Any
    url: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def go(self, path: str) -> None:
        """Open a dashboard path."""
        self.page.goto(self.url + path)

    def sign_in(self, token: str) -> None:
        """Sign in through the form, as a person does."""
        self.go("/ui")
        self.page.get_by_label("API token").fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(f"{self.url}/ui")

    def foreign(self) -> list[str]:
        """Requests that left the server's origin."""
        return [url for url in self.requests if not url.startswith(self.url + "/")]


@pytest.fixture
def tab(browser: Any, server: AppServer) -> Iterator[Tab]:
    """A fresh browser context at 1280 px, watching requests and console errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    opened = Tab(page, server.url)
    page.on("request", lambda request: opened.requests.append(request.url))
    page.on("pageerror", lambda error: opened.errors.append(str(error)))
    page.on(
        "console",
        lambda message: opened.errors.append(message.text) if message.type == "error" else None,
    )
    try:
        yield opened
    finally:
        context.close()


def api(server: AppServer, registry: Registry, path: str) -> Any:
    """A GET through the API with the admin token."""
    answer = httpx.get(f"{server.url}{path}", headers=registry.admin)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_sign_in_list_diff_and_roll_back(tab: Tab, server: AppServer, registry: Registry) -> None:
    from playwright.sync_api import expect

    page = tab.page
    tab.sign_in(registry.admin_token)

    # the list: every feature, filtered as you type (htmx), the URL kept in step
    rows = page.locator("#features tbody tr")
    expect(rows).to_have_count(3)
    expect(page.get_by_role("row", name="support.reply")).to_contain_text("v3")
    page.get_by_label("Name contains").fill("kb")
    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"/ui\?.*\bq=kb\b"))
    page.get_by_label("Name contains").fill("")
    expect(rows).to_have_count(3)
    page.get_by_label("Show").select_option("pinned")  # nothing pinned yet
    expect(page.locator("#features td.empty")).to_have_text("No feature matches.")
    page.get_by_label("Show").select_option("all")
    expect(rows).to_have_count(3)
    page.get_by_role("link", name="Requests 24h").click()  # sort: busiest first
    expect(rows.first).to_contain_text("support.reply")
    expect(rows.first).to_contain_text("120")

    # a feature: timeline, charts drawn from the page's own data, the sample
    page.get_by_role("link", name="support.reply").click()
    expect(page.get_by_role("heading", name="support.reply", level=1)).to_be_visible()
    expect(page.locator("ol.timeline > li")).to_have_count(3)
    expect(page.locator("[data-charts] figure")).to_have_count(5)
    expect(page.locator("[data-charts] canvas").first).to_be_visible()
    expect(page.locator(".message.role-user").first).to_contain_text("My invoice is wrong.")

    # a diff: the partial changed between v2 and v3, side by side too
    page.get_by_role("link", name="diff with v2").first.click()
    expect(page.get_by_role("heading", name="support.reply: v2 → v3")).to_be_visible()
    expect(page.locator("pre.diff .add")).to_contain_text(["Be concise and warm."])
    page.get_by_label("side by side").check()
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("table.diff td.add")).to_contain_text(["Be concise and warm."])

    # roll back to v1, behind a confirmation, with a reason
    page.get_by_role("link", name="support.reply").click()
    page.get_by_label("Roll back to").select_option("1")
    page.get_by_role("button", name="Roll back…").click()
    expect(page.get_by_role("heading", name="Roll support.reply back to v1?")).to_be_visible()
    page.get_by_label("Reason (required)").fill("answers got worse")
    page.get_by_role("button", name="Roll back to v1").click()
    expect(page.get_by_role("status")).to_have_text("Rolled back. production serves v1 (pinned).")

    # through the API: the label moved, pinned, and the audit names the token
    served = api(server, registry, "/v1/features/support.reply")
    assert (served["version"], served["pinned"]) == (1, True)
    entry = api(server, registry, "/v1/audit?feature=support.reply")["data"][0]
    assert (entry["action"], entry["actor"], entry["reason"]) == (
        "rollback",
        "oncall",
        "answers got worse",
    )
    page.get_by_role("link", name="Audit log").click()
    expect(page.locator("table.audit tbody tr").first).to_contain_text("oncall")

    assert tab.foreign() == [], "requests left the server's origin"
    assert tab.errors == [], "the pages logged errors"


def test_a_reader_sees_everything_and_no_action(
    tab: Tab, server: AppServer, registry: Registry
) -> None:
    from playwright.sync_api import expect

    page = tab.page
    tab.sign_in(registry.reader_token)
    expect(page.locator(".who")).to_contain_text("dashboard")
    tab.go("/ui/features/support.reply")
    expect(page.get_by_role("heading", name="Versions")).to_be_visible()
    expect(page.get_by_role("heading", name="Actions")).to_have_count(0)
    expect(page.locator("form[action$='/confirm'], form[action$='/rollback']")).to_have_count(0)
    tab.go("/ui/features/support.reply/confirm?action=rollback&version=1")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    assert tab.foreign() == []


def test_markup_in_a_commit_message_is_shown_as_text(
    tab: Tab, server: AppServer, registry: Registry
) -> None:
    from playwright.sync_api import expect

    page = tab.page
    tab.sign_in(registry.admin_token)
    tab.go("/ui/features/kb.answer")
    message = page.locator("ol.timeline .message").first
    expect(message).to_contain_text("<script>window.pwned = 1</script>")
    expect(message).to_contain_text('<img src=x onerror="window.pwned = 2">')
    assert page.evaluate("window.pwned") is None  # nothing ran
    assert page.locator("ol.timeline script, ol.timeline img").count() == 0
    assert tab.errors == []


class _Forger(BaseHTTPRequestHandler):
    """Another origin's page that posts a rollback to the dashboard as soon as it loads."""

    target = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = (
            f'<form id="f" method="post" action="{self.target}">'
            '<input name="label" value="production"><input name="version" value="1">'
            '<input name="reason" value="forged"></form>'
            "<script>document.getElementById('f').submit()</script>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


def test_a_forged_post_from_another_origin_is_refused(
    tab: Tab, server: AppServer, registry: Registry
) -> None:
    from playwright.sync_api import expect

    tab.sign_in(registry.admin_token)  # the victim is signed in, as an admin
    _Forger.target = f"{server.url}/ui/features/support.reply/rollback"
    # Same host, another port: another origin but the same site, so even the SameSite
    # cookie goes along; the origin check and the missing CSRF token must refuse it.
    forger = ThreadingHTTPServer(("127.0.0.1", 0), _Forger)
    thread = threading.Thread(target=forger.serve_forever, daemon=True)
    thread.start()
    try:
        tab.page.goto(f"http://127.0.0.1:{forger.server_address[1]}/")
        tab.page.wait_for_url(_Forger.target)
        expect(tab.page.get_by_role("heading", name="Not allowed")).to_be_visible()
        expect(tab.page.get_by_role("alert")).to_contain_text("refused")
    finally:
        forger.shutdown()
        forger.server_close()
    served = api(server, registry, "/v1/features/support.reply")
    assert (served["version"], served["pinned"]) == (3, False)


def test_usable_by_keyboard_and_at_390_px(
    browser: Any, server: AppServer, registry: Registry
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        page.goto(f"{server.url}/ui")
        expect(page.get_by_label("API token")).to_be_focused()  # the form is ready to type
        page.keyboard.type(registry.admin_token)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{server.url}/ui")
        page.keyboard.press("Tab")  # the first stop on every page skips the header
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        for path in ("/ui", "/ui/features/support.reply", "/ui/features/support.reply/diff"):
            page.goto(server.url + path)
            page.wait_for_load_state("networkidle")
            # nothing wider than the screen: wide tables scroll inside their own box
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
            unlabelled = page.evaluate(
                "() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]"
                ".filter(e => !e.labels || e.labels.length === 0).map(e => e.name)"
            )
            assert unlabelled == [], (path, unlabelled)
        # reach the first feature link by keyboard alone, and open it
        page.goto(f"{server.url}/ui")
        for _ in range(30):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent") == "kb.answer":
                break
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="kb.answer", level=1)).to_be_visible()
    finally:
        context.close()
