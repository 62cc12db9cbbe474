"""A real registry for API tests: a git repository, a synced database, tokens and servers.

`build_registry(path)` commits a small registry in three steps, so `support.reply` has
three versions (the third made by a change to the partial it includes), `kb.answer` one,
and `lab.probe` one (a prompt whose variables can trip the sandbox and the render limits).
`new_registry` syncs it after every commit and creates two tokens: a `Registry`.
Repositories are `support.git.GitRepo`s; servers over a registry come from
`support.server`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from support.features import policy
from support.git import GitRepo

from registry.config import Settings
from registry.store import crud
from registry.store.db import session_scope
from registry.sync import SyncSummary, sync_ref

WEBHOOK_SECRET = "correct horse battery staple"
# SPEC §4: every replica serves a label move within one second; bench/api.py measures how
# fast. Tests wait up to five, so that a loaded machine slows them down without failing them.
SERVED_WITHIN_S = 5.0
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

KB_POLICY = policy(300, model="gpt-4o-mini", degraded="Search is unavailable.")

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

PROBE_POLICY = policy(
    100, model="gpt-4o-mini", max_request_tokens=100000, degraded="Probe unavailable."
)

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
