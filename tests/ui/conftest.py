"""Fixtures for the dashboard: a synced registry with usage and markup in it, a real server,
signed-in HTTP clients, and Chromium driven by Playwright.

The registry is `api.harness`'s (support.reply v1-v3, kb.answer, lab.probe; admin token
`oncall`, reader token `dashboard`) plus a fourth commit whose message and prompt carry
HTML, so every page that shows them shows whether they are escaped. The browser is
Debian's `chromium` (Playwright's own download is not used); without one, the browser
tests skip and say so.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from api.harness import POLL_S, Registry, bearer, new_registry
from sqlalchemy import Engine
from support.server import AppServer, app_of

MARKUP = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"> & "quoted"'
MARKUP_PROMPT = f"""\
---
inputs:
  question: {{type: string}}
sample:
  question: How do I rotate an API key?
---
system:
Answer from the knowledge base only. Never write {MARKUP}
user:
{{{{ question }}}}
"""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture
def registry(db_url: str, engine: Engine, tmp_path: Path) -> Registry:
    """The API test registry, a commit with markup in its message and prompt, and usage."""
    registry = new_registry(db_url, engine, tmp_path)
    registry.repo.commit(
        f"kb: stricter answers {MARKUP}", {"prompts/kb/answer.jinja": MARKUP_PROMPT}
    )
    registry.sync()
    return registry


@pytest.fixture
def server(registry: Registry) -> Iterator[AppServer]:
    """`create_app` under uvicorn on 127.0.0.1, with usage reported for support.reply."""
    with app_of(registry.settings(), poll_s=POLL_S) as app, AppServer(app) as running:
        report_usage(running.url, registry.admin_token)
        yield running


def report_usage(url: str, token: str) -> None:
    """Usage of support.reply v3 over the last hours (with markup in a model name)."""
    now = datetime.now(UTC)
    events: list[dict[str, Any]] = []
    for hours_ago in range(6):
        for index in range(20):
            events.append(
                {
                    "feature": "support.reply",
                    "version": 3,
                    "model": "gpt-4o" if index % 4 else "<b>gpt-4o-mini</b>",
                    "input_tokens": 420 + index,
                    "output_tokens": 120,
                    "latency_ms": 300 + 40 * index + 25 * hours_ago,
                    "outcome": "error" if index == 0 else "ok",
                    "estimated_input_tokens": 400,
                    "cost_usd": 0.002,
                    "at": (now - timedelta(hours=hours_ago, minutes=index)).isoformat(),
                }
            )
    answer = httpx.post(f"{url}/v1/usage", json={"events": events}, headers=bearer(token))
    assert answer.status_code == 202 and not answer.json()["rejected"], answer.text


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def sign_in(url: str, token: str) -> httpx.Client:
    """An HTTP client signed in to the dashboard with `token` (the caller closes it)."""
    client = httpx.Client(base_url=url, timeout=30)
    form = client.get("/ui/login")
    answer = client.post(
        "/ui/login", data={"csrf": csrf_of(form.text), "token": token, "next": "/ui"}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/ui", answer.text
    return client


@pytest.fixture
def admin(server: AppServer, registry: Registry) -> Iterator[httpx.Client]:
    """Signed in with the admin token `oncall`."""
    client = sign_in(server.url, registry.admin_token)
    yield client
    client.close()


@pytest.fixture
def reader(server: AppServer, registry: Registry) -> Iterator[httpx.Client]:
    """Signed in with the reader token `dashboard`."""
    client = sign_in(server.url, registry.reader_token)
    yield client
    client.close()


# -- the browser -----------------------------------------------------------------------------


def chromium() -> str | None:
    """Debian's Chromium: on PATH, or where the package puts it."""
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium through Playwright for the whole run; each test opens its own context
    (its own cookies). Playwright launches it on a fresh temporary profile, deleted at exit."""
    executable = chromium()
    if executable is None:
        pytest.skip(
            "browser tests skipped: no Chromium found (install Debian's `chromium` package; "
            ".ci/run installs it)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()
