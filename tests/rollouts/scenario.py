"""Rollout scenarios against real parts: a registry whose feature rolls out in guarded steps,
what its servers serve per key, and a look at the controller lock (usage: traffic.py).

`Rollouts` is one test's registry: a git repository where `support.reply` carries a
`rollout` section (steps 20 → 50 → 100, an interval of a second, 20 requests per arm)
and `kb.answer` carries none, synced into `production` on the test's database, with an
admin token `oncall` and a reader token `dashboard`. Versions differ by a marker in the
system prompt (`v1`, `v2`, …), so a scripted `call` can behave differently per version.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import Engine, text
from support import features
from support.git import GitRepo
from support.server import AppServer

from registry.api.app import create_app
from registry.config import Settings
from registry.rollouts.controller import CONTROLLER_LOCK_KEY, Controller, due_at
from registry.store import crud
from registry.store.db import session_scope
from registry.store.models import Rollout
from registry.sync import SyncSummary, sync_ref

FEATURE = "support.reply"
PATH = f"/v1/features/{FEATURE}"
# SPEC: every replica serves a label move within one second. Tests wait up to five, so a
# loaded machine slows them down without failing them; bench/rollout.py measures it.
SERVED_WITHIN_S = 5.0
GUARDS = {"error_rate_pp": 5, "p95_latency_ratio": 1.5, "cost_ratio": 1.3}

KB_POLICY = features.policy(100, model="gpt-4o-mini", degraded="Search is unavailable.")


def policy(
    *,
    steps: Sequence[int] = (20, 50, 100),
    interval: str = "1s",
    min_requests: int = 20,
    guards: Mapping[str, float | None] | None = None,
) -> str:
    """support.reply's policy: one model, a breaker that never opens, a rollout section."""
    chosen = {**GUARDS, **(guards or {})}
    return (
        "models:\n"
        "  - model: gpt-4o\n"
        "    timeout_s: 10\n"
        "max_output_tokens: 200\n"
        "budget:\n"
        "  max_request_tokens: 4000\n"
        # Both arms call the same model: the candidate's failures must not open its circuit
        # for the stable arm too (that would hide the difference the guard looks for).
        "circuit_breaker: {failure_rate_pct: 100, min_requests: 100000, cooldown_s: 1}\n"
        "degraded_message: Drafting is unavailable right now.\n"
        "rollout:\n"
        f"  steps: {json.dumps(list(steps))}\n"
        f"  interval: {interval}\n"
        f"  min_requests: {min_requests}\n"
        f"  guards: {json.dumps(chosen)}\n"
    )


def prompt(marker: str) -> str:
    """support.reply's prompt; `marker` names the version in the system message."""
    return (
        "---\n"
        "inputs:\n"
        "  question: {type: string}\n"
        "sample:\n"
        "  question: Where is my order?\n"
        "---\n"
        f"system:\nYou draft support replies ({marker}).\n"
        "user:\n{{ question }}\n"
    )


@dataclass
class Rollouts:
    """One test's registry: repository, database, tokens."""

    db_url: str
    engine: Engine
    repo: GitRepo
    root: Path
    admin_token: str = ""
    reader_token: str = ""

    # -- git and sync --------------------------------------------------------------------
    def commit(self, marker: str, **plan: Any) -> str:
        """Commit support.reply with `marker` in its prompt and a plan (see `policy`)."""
        files = {
            "policies/support/reply.yaml": policy(**plan),
            "prompts/support/reply.jinja": prompt(marker),
        }
        if not (self.repo.path / "policies/kb/answer.yaml").exists():
            files["policies/kb/answer.yaml"] = KB_POLICY
            files["prompts/kb/answer.jinja"] = prompt("kb")
        return self.repo.commit(f"support.reply {marker}", files)

    def sync(self) -> SyncSummary:
        """Sync `main` into `production`; fails on any recorded error."""
        summary = sync_ref(
            self.engine, repo=str(self.repo), ref="main", label="production", cache_dir=self.root
        )
        assert summary.ok, summary.errors
        return summary

    def release(self, marker: str, **plan: Any) -> SyncSummary:
        """Commit and sync: the new version of support.reply moves the label or rolls out."""
        self.commit(marker, **plan)
        return self.sync()

    def roll_out_v2(self) -> SyncSummary:
        """Release v1, then v2 under the default plan: a rollout from v1 to v2 starts."""
        self.release("v1")
        return self.release("v2")

    def settings(self) -> Settings:
        """Server settings for this registry."""
        return Settings(database_url=self.db_url, repo=str(self.repo), ref="main")

    def app(self, *, controller_tick_s: float | None = None) -> FastAPI:
        """The API over this database; no controller unless `controller_tick_s` is given."""
        return create_app(
            self.settings(), engine=self.engine, poll_s=0.02, controller_tick_s=controller_tick_s
        )

    @contextmanager
    def server(self, *, controller_tick_s: float | None = None) -> Iterator[AppServer]:
        """A real server in a thread of this process."""
        with AppServer(self.app(controller_tick_s=controller_tick_s)) as server:
            yield server

    # -- the database, read directly ---------------------------------------------------
    def rollout(self) -> Rollout:
        """support.reply's latest rollout on production."""
        with session_scope(self.engine) as session:
            feature = crud.get_feature(session=session, name=FEATURE)
            assert feature is not None
            row = crud.latest_rollout(session=session, feature=feature, label="production")
            assert row is not None, "support.reply never had a rollout"
            session.expunge(row)
            return row

    def label(self) -> tuple[int, bool]:
        """(version, pinned) of support.reply's production label."""
        with session_scope(self.engine) as session:
            feature = crud.get_feature(session=session, name=FEATURE)
            assert feature is not None
            found = crud.resolve_label(session=session, feature=feature, name="production")
            assert found is not None
            label, version = found
            return version.version, label.pinned

    def audit(self) -> list[dict[str, Any]]:
        """support.reply's audit entries, oldest first."""
        with session_scope(self.engine) as session:
            feature = crud.get_feature(session=session, name=FEATURE)
            entries = crud.list_audit(session=session, feature=feature, label=None, limit=1000)
            return [entry.model_dump(mode="json") for entry in reversed(entries)]

    # -- the controller, driven by the test ------------------------------------------
    def decide(self, controller: Controller) -> list[dict[str, Any]]:
        """Tick `controller` at the moment the running rollout's step is due."""
        return controller.tick(due_at(self.rollout()))


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for `token`."""
    return {"Authorization": f"Bearer {token}"}


def make_token(engine: Engine, name: str, role: str) -> str:
    """A new API token's plaintext."""
    with session_scope(engine) as session:
        _, plaintext = crud.create_token(session=session, name=name, role=role)
    return plaintext


def new_rollouts(db_url: str, engine: Engine, root: Path) -> Rollouts:
    """An empty repository and tokens; the test commits and syncs."""
    made = Rollouts(db_url, engine, GitRepo(root / "repo"), root)
    made.admin_token = make_token(engine, "oncall", "admin")
    made.reader_token = make_token(engine, "dashboard", "reader")
    return made


# -- resolving, by key ----------------------------------------------------------------------


def resolve(http: httpx.Client, base: str, key: str | None = None) -> dict[str, Any]:
    """GET the label's answer (with `key`)."""
    params = {"key": key} if key is not None else {}
    answer = http.get(f"{base}{PATH}", params=params)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


def arms_by_key(http: httpx.Client, base: str, keys: Sequence[str]) -> dict[str, str | None]:
    """Each key's arm as `base` answers it (None: no rollout in the answer)."""
    out = {}
    for key in keys:
        rollout = resolve(http, base, key).get("rollout")
        out[key] = rollout["arm"] if rollout else None
    return out


def serves_only(http: httpx.Client, base: str, version: int, keys: Sequence[str]) -> bool:
    """True when every key gets `version` from `base`, with no rollout in the answer."""
    for key in keys:
        data = resolve(http, base, key)
        if data["version"] != version or "rollout" in data:
            return False
    return True


KEYS = [f"user-{i}" for i in range(200)]


# -- who is the controller ------------------------------------------------------------------


def controller_lock_held(engine: Engine) -> bool:
    """Whether some process holds the rollout controller's lock on this database now."""
    if engine.dialect.name == "postgresql":
        unsigned = CONTROLLER_LOCK_KEY & 0xFFFFFFFFFFFFFFFF
        with engine.connect() as conn:
            held = conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = "
                    "current_database()) AND classid::bigint = :high AND objid::bigint = :low"
                ),
                {"high": unsigned >> 32, "low": unsigned & 0xFFFFFFFF},
            ).scalar_one()
        return bool(held)
    path = Path(f"{engine.url.database}.controller.lock")
    if not path.exists():
        return False
    with path.open("ab") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)  # a replica may take it at its next tick
        return False


def decisions(row: Rollout) -> list[dict[str, Any]]:
    """The rollout's decision history, oldest first."""
    history: list[dict[str, Any]] = json.loads(row.decisions)
    return history


def when(value: str) -> datetime:
    """An ISO 8601 time from the API."""
    return datetime.fromisoformat(value)
