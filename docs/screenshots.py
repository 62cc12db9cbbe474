"""Take the dashboard screenshots under docs/screenshots/ (the README shows one).

    .venv/bin/python docs/screenshots.py

In a temporary folder: this repository's demo registry (prompts/, policies/) committed to
a fresh git repository and synced, then a second commit to support.reply, whose policy has
a rollout section, so the sync starts a guarded rollout (5% on the new version), which
`oncall` pauses and resumes; a week of
synthetic usage for every feature, and a few minutes of both arms of the rollout. The app
runs under uvicorn on 127.0.0.1 and Debian's Chromium (through Playwright) signs in with
an admin token and saves each main page at 1280 px (the feature page also whole), and two
at 390 px.
"""

from __future__ import annotations

import math
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from registry.api.app import create_app
from registry.config import Settings
from registry.rollouts import machine
from registry.store import crud
from registry.store.db import make_engine, migrate, session_scope
from registry.sync import sync_ref
from registry.usage import Ingestor

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
SHOTS = [  # (viewport width, [(file name, path, whole page?)])
    (
        1280,
        [
            ("features", "/ui", False),
            ("feature", "/ui/features/support.reply", False),
            ("feature-full", "/ui/features/support.reply", True),
            ("diff", "/ui/features/support.reply/diff?from=1&to=2&view=split", False),
            ("audit", "/ui/audit", False),
        ],
    ),
    (
        390,
        [
            ("features-390", "/ui?sort=requests&dir=desc", False),
            ("feature-390", "/ui/features/support.reply", False),
        ],
    ),
]
TRAFFIC = {  # feature -> (requests per hour at the daily peak, median latency ms, error share)
    "support.reply": (48, 1400, 0.02),
    "support.classify": (120, 380, 0.004),
    "support.summarize": (18, 2100, 0.01),
    "kb.answer": (66, 900, 0.03),
    "extract.invoice": (12, 1700, 0.06),
    "marketing.tagline": (3, 800, 0.0),
}


def git(repo: Path, *args: str) -> None:
    env = {
        "GIT_AUTHOR_NAME": "Ada Lovelace",
        "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Ada Lovelace",
        "GIT_COMMITTER_EMAIL": "ada@example.com",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "PATH": "/usr/bin:/bin",
    }
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def registry(repo: Path) -> None:
    """The demo registry in two commits: the second changes support.reply."""
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    for folder in ("prompts", "policies"):
        shutil.copytree(ROOT / folder, repo / folder)
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "Demo registry: six features sharing partials")


def change_reply(repo: Path) -> None:
    prompt = repo / "prompts" / "support" / "reply.jinja"
    prompt.write_text(
        prompt.read_text().replace(
            "user:", "Offer a callback when the customer asks the same thing twice.\n\nuser:", 1
        )
    )
    git(repo, "commit", "--quiet", "-am", "support.reply: offer a callback on a repeated question")


def usage(engine: Any, now: datetime) -> None:
    """A week of traffic with a daily rhythm; both arms of the rollout in the last minutes."""
    rng = random.Random(11)
    with session_scope(engine) as session:
        live = {
            row.name: row.version
            for row in crud.list_features_with_label(session=session, label="production")
        }
    ingestor = Ingestor(engine)
    events: list[dict[str, Any]] = []
    for hours_ago in range(7 * 24):
        hour = now - timedelta(hours=hours_ago)
        rhythm = 0.55 + 0.45 * math.sin((hour.hour - 8) / 24 * 2 * math.pi)
        for name, (per_hour, median, errors) in TRAFFIC.items():
            for _ in range(max(1, int(per_hour * rhythm))):
                at = hour - timedelta(minutes=rng.uniform(0, 59))
                events.append(event(rng, name, live[name] or 1, median, errors, at))
        if len(events) > 4000:
            ingestor.ingest(events, now=now)
            events = []
    for _ in range(120):  # the rollout's arms, since it started
        arm = 2 if rng.random() < 0.3 else 1
        events.append(event(rng, "support.reply", arm, 1400 if arm == 1 else 1500, 0.02, now))
    ingestor.ingest(events, now=now)


def event(
    rng: random.Random, name: str, version: int, median: float, errors: float, at: datetime
) -> dict[str, Any]:
    estimate = rng.randint(300, 1400)
    failed = rng.random() < errors
    return {
        "feature": name,
        "version": version,
        "model": "gpt-4o",
        "input_tokens": int(estimate * rng.uniform(0.95, 1.12)),
        "output_tokens": rng.randint(40, 400),
        "estimated_input_tokens": estimate,
        "latency_ms": round(rng.lognormvariate(math.log(median), 0.45), 1),
        "outcome": "error" if failed else ("fallback" if rng.random() < 0.03 else "ok"),
        "cost_usd": round(estimate * 2.5e-6 + rng.randint(40, 400) * 1e-5, 6),
        "at": at.isoformat(),
    }


def main() -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="promptreg-shots-") as tmp:
        work = Path(tmp)
        repo = work / "registry"
        registry(repo)
        url = f"sqlite:///{work / 'demo.db'}"
        migrate(url)
        engine = make_engine(url)
        sync_ref(engine, repo=str(repo), ref="main", label="production", cache_dir=work / "cache")
        change_reply(repo)
        sync_ref(engine, repo=str(repo), ref="main", label="production", cache_dir=work / "cache")
        now = datetime.now(UTC)
        usage(engine, now)
        with session_scope(engine) as session:
            _, token = crud.create_token(session=session, name="oncall", role="admin")
            for action, why in (("pause", "checking p95 on the candidate"), ("resume", "p95 ok")):
                machine.act(
                    session, "support.reply", action, label="production", actor="oncall", reason=why
                )
        engine.dispose()

        app = create_app(Settings(database_url=url, repo=str(repo)), controller_tick_s=None)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            for width, shots in SHOTS:
                context = browser.new_context(viewport={"width": width, "height": 900})
                page = context.new_page()
                page.goto(f"{base}/ui")
                page.get_by_label("API token").fill(token)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(f"{base}/ui")
                for name, path, full in shots:
                    page.goto(base + path)
                    page.wait_for_load_state("networkidle")
                    page.screenshot(path=str(OUT / f"{name}.png"), full_page=full)
                    print(f"docs/screenshots/{name}.png")
                context.close()
            browser.close()
        server.should_exit = True
        thread.join(timeout=10)
        app.state.engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
