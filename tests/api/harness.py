"""A real registry for API tests: a git repository, a synced database, tokens and servers.

`build_registry(path)` commits a small registry in three steps, so `support.reply` has
three versions (the third made by a change to the partial it includes), `kb.answer` one,
and `lab.probe` one (a prompt whose variables can trip the sandbox and the render limits).
`new_registry` syncs it after every commit and creates two tokens: a `Registry`.
Servers are real: `ServerProcess` runs `promptreg serve` as a child process,
`ThreadedServer` runs uvicorn in a thread of the test process; both wait for /healthz and
always stop.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from sqlalchemy import Engine

from registry.config import Settings
from registry.store import crud
from registry.store.db import session_scope
from registry.sync import SyncSummary, sync_ref

T = TypeVar("T")

AUTHOR = "Grace Hopper"
EMAIL = "grace@example.com"
EPOCH = 1_700_000_000
PROMPTREG = Path(sys.executable).with_name("promptreg")
WEBHOOK_SECRET = "correct horse battery staple"
POLL_S = 0.02  # the change watcher's poll interval in TestClient apps

DEFAULTS = """\
owner: platform
circuit_breaker: {failure_rate_pct: 50, min_requests: 10, cooldown_s: 30}
"""

REPLY_POLICY = """\
description: Draft a reply to a support ticket
models:
  - model: gpt-4o
    timeout_s: 10
    max_retries: 1
  - model: gpt-4o-mini
    timeout_s: 8
params: {temperature: 0.3}
max_output_tokens: 400
stream: true
deadline_s: 25
budget:
  max_request_tokens: 2000
  max_request_usd: 0.05
degraded_message: Drafting is unavailable right now. Please try again in a minute.
"""

REPLY_PROMPT = """\
---
description: Draft a reply to a customer support ticket
inputs:
  customer_name: {type: string}
  ticket: {type: string}
  tone: {type: string, default: friendly, enum: [friendly, formal]}
  history: {type: messages, default: []}
  priority: {type: integer, default: 3}
sample:
  customer_name: Ada
  ticket: My invoice is wrong.
---
system:
You are a support agent for ACME. Write in a {{ tone }} tone.
{% include "partials/tone.jinja" %}

{{ history }}

user:
Customer {{ customer_name }} (priority {{ priority }}) wrote:
{{ ticket }}
"""

REPLY_PROMPT_V2 = REPLY_PROMPT.replace(
    "Write in a {{ tone }} tone.",
    "Write in a {{ tone }} tone. Always ask for the order number when it is missing.",
)

KB_POLICY = """\
models:
  - model: gpt-4o-mini
max_output_tokens: 300
budget:
  max_request_tokens: 4000
degraded_message: Search is unavailable.
"""

KB_PROMPT = """\
---
inputs:
  question: {type: string}
sample:
  question: How do I rotate an API key?
---
system:
Answer from the knowledge base only.
user:
{{ question }}
"""

PROBE_POLICY = """\
models:
  - model: gpt-4o-mini
max_output_tokens: 100
budget:
  max_request_tokens: 100000
degraded_message: Probe unavailable.
"""

# Valid with its sample; `escape` reaches for a dunder (the sandbox refuses it), a large
# `repeat` runs into the loop limit, a large `width` into the output-size limit.
PROBE_PROMPT = """\
---
inputs:
  question: {type: string}
  escape: {type: boolean, default: false}
  repeat: {type: integer, default: 1}
  width: {type: integer, default: 1}
sample:
  question: ping
---
{% if escape %}{{ question.__class__.__mro__ }}{% endif %}
{% for i in range(repeat) %}{{ question }}{% endfor %}
{{ question | center(width) }}
"""


def tone(text: str) -> str:
    """The partial `prompts/partials/tone.jinja`."""
    return f"{text}\n"


class GitRepo:
    """A git repository on `main` with a fixed author and a clock ticking a minute a commit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tick = 0
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "--quiet", "--initial-branch=main")
        self.git("config", "commit.gpgsign", "false")

    def __str__(self) -> str:
        return str(self.path)

    def git(self, *args: str) -> str:
        """Run git here, ignoring the caller's configuration; its stdout."""
        date = f"{EPOCH + 60 * self.tick} +0000"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(
            GIT_CONFIG_NOSYSTEM="1",
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_AUTHOR_NAME=AUTHOR,
            GIT_AUTHOR_EMAIL=EMAIL,
            GIT_COMMITTER_NAME=AUTHOR,
            GIT_COMMITTER_EMAIL=EMAIL,
            GIT_AUTHOR_DATE=date,
            GIT_COMMITTER_DATE=date,
        )
        done = subprocess.run(
            ["git", *args], cwd=self.path, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr}")
        return done.stdout.strip()

    def commit(self, message: str, files: Mapping[str, str | None]) -> str:
        """Write (None: delete) `files`, commit them; the new sha."""
        for rel, content in files.items():
            target = self.path / rel
            if content is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        self.tick += 1
        self.git("add", "--all")
        self.git("commit", "--quiet", "--no-verify", "-m", message)
        return self.git("rev-parse", "HEAD")


def build_registry(path: Path, on_commit: Callable[[GitRepo], None] | None = None) -> GitRepo:
    """Three commits: support.reply gets versions 1-3, kb.answer and lab.probe version 1.

    `on_commit` runs after each commit (a sync per merge, as a push webhook would do, so
    the label has pointed at every version in turn).
    """
    after = on_commit or (lambda _: None)
    repo = GitRepo(path)
    repo.commit(
        "Add support reply, knowledge base answer and a probe",
        {
            "policies/_defaults.yaml": DEFAULTS,
            "policies/support/reply.yaml": REPLY_POLICY,
            "prompts/support/reply.jinja": REPLY_PROMPT,
            "prompts/partials/tone.jinja": tone("Be concise."),
            "policies/kb/answer.yaml": KB_POLICY,
            "prompts/kb/answer.jinja": KB_PROMPT,
            "policies/lab/probe.yaml": PROBE_POLICY,
            "prompts/lab/probe.jinja": PROBE_PROMPT,
        },
    )
    after(repo)
    repo.commit("Ask for the order number", {"prompts/support/reply.jinja": REPLY_PROMPT_V2})
    after(repo)
    repo.commit("Warmer tone", {"prompts/partials/tone.jinja": tone("Be concise and warm.")})
    after(repo)
    return repo


@dataclass
class Registry:
    """A synced registry and what a test needs to reach it."""

    db_url: str
    engine: Engine
    repo: GitRepo
    cache_dir: Path
    admin_token: str
    reader_token: str

    @property
    def admin(self) -> dict[str, str]:
        """Headers of the admin token `oncall`."""
        return bearer(self.admin_token)

    @property
    def reader(self) -> dict[str, str]:
        """Headers of the reader token `dashboard`."""
        return bearer(self.reader_token)

    def sync(self, label: str = "production") -> SyncSummary:
        """Sync `main` again (a new commit becomes a version)."""
        return sync(self.engine, self.repo, self.cache_dir, label)

    def settings(self) -> Settings:
        """Server settings for this registry."""
        return Settings(
            database_url=self.db_url,
            repo=str(self.repo),
            ref="main",
            webhook_secret=WEBHOOK_SECRET,
            cache_dir=self.cache_dir,
        )


def new_registry(db_url: str, engine: Engine, root: Path) -> Registry:
    """Build, sync and hand out tokens for a registry under `root`."""
    cache_dir = root / "cache"
    repo = build_registry(root / "repo", lambda repo: sync(engine, repo, cache_dir))
    return Registry(
        db_url=db_url,
        engine=engine,
        repo=repo,
        cache_dir=cache_dir,
        admin_token=make_token(engine, "oncall", "admin"),
        reader_token=make_token(engine, "dashboard", "reader"),
    )


def sync(engine: Engine, repo: GitRepo, cache_dir: Path, label: str = "production") -> SyncSummary:
    """Sync `main` of the repository into `label`, failing on any recorded error."""
    summary = sync_ref(engine, repo=str(repo), ref="main", label=label, cache_dir=cache_dir)
    assert summary.ok, summary.errors
    return summary


def make_token(engine: Engine, name: str, role: str) -> str:
    """A new API token's plaintext."""
    with session_scope(engine) as session:
        _, plaintext = crud.create_token(session=session, name=name, role=role)
    return plaintext


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for `token`."""
    return {"Authorization": f"Bearer {token}"}


def hub_signature(secret: str, body: bytes) -> str:
    """GitHub's `X-Hub-Signature-256` value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def wait_for(check: Callable[[], T | None], timeout_s: float = 5.0, step_s: float = 0.01) -> T:
    """Call `check` until it returns something truthy; that value (AssertionError on timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(step_s)


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class ServerProcess:
    """`promptreg serve` in a child process (a replica), stopped on exit."""

    def __init__(self, database_url: str, cwd: Path, *, extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"serve-{self.port}.log"
        args = ["serve", "--port", str(self.port), "--database-url", database_url, *extra]
        self.command = [str(PROMPTREG), *args]
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        """Start the process without waiting for it (see `wait_ready`)."""
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def __enter__(self) -> ServerProcess:
        if self.process is None:
            self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Wait until /healthz answers 200 (fails early when the process died)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while not _healthy(self.url):
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"server not ready in {timeout_s} s: {self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Terminate the process (kill it if it does not stop)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@contextmanager
def replicas(database_url: str, cwd: Path, count: int = 2) -> Iterator[list[ServerProcess]]:
    """`count` servers on one database, started side by side; all stopped on exit."""
    servers = [ServerProcess(database_url, cwd) for _ in range(count)]
    with ExitStack() as stack:
        for server in servers:
            stack.callback(server.stop)
            server.start()
        for server in servers:
            server.wait_ready()
        yield servers


class ThreadedServer:
    """uvicorn serving `app` from a thread of this process, stopped on exit."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        try:
            wait_for(lambda: self.server.started or not self.thread.is_alive(), timeout_s=15)
            assert self.server.started, "uvicorn did not start"
            wait_for(lambda: _healthy(self.url), timeout_s=15)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for its thread."""
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def __exit__(self, *exc: Any) -> None:
        self.stop()
