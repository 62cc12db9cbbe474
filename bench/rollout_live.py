"""The `live` section of bench/rollout.py: guarded rollouts against real servers and databases.

Abort under traffic. A temporary git repository holds `bench.reply`, whose policy rolls
new versions out in steps 10 → 50 → 100 % every 30 s (min_requests 200, the policy
example's guards: error_rate_pp 2, p95_latency_ratio 1.3, cost_ratio 1.2), synced into a
fresh SQLite database that two `promptreg serve` replicas share (each runs the rollout
controller; one holds its lock). Synthetic traffic at 200 requests/s: each request, paced
on a fixed schedule, resolves the label on replica A or B in turn with a random user key
(`GET /v1/features/bench.reply?key=…`), and the arm it was served decides its outcome:
10 % errors on the candidate, 1 % on stable, the same lognormal latency and cost on both.
Usage is posted once a second per replica, in batches, as the client library posts it.
Once both replicas split the traffic, version 2 is synced in and the clock starts.
A poller asks both replicas every few milliseconds whether they still split.

- candidate requests before the abort: requests answered with the candidate arm before the
  controller recorded its decision; goal <= the first step's share of one interval plus 1 s
  of traffic (10 % × 200/s × 31 s = 620). The simulator, on the same plan and traffic,
  catches this candidate at the first look in 99.4 % of 1,000 seeded rollouts.
- from the end of the interval to every replica serving stable: goal <= 1 s. Shown in
  parts: interval end → decision (the controller's tick), decision → each replica.

Stats at scale: bench/rollout_scale.py.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from _common import free_port

from registry.rollouts.controller import due_at
from registry.store import crud
from registry.store.db import make_engine, migrate, session_scope
from registry.sync import sync_ref

PROMPTREG = Path(sys.executable).with_name("promptreg")
FEATURE = "bench.reply"
RPS = 200
STEPS = (10, 50, 100)
INTERVAL_S = 30  # the simulator catches this candidate at the first look 99% of the time
ERRORS = {"stable": 0.01, "candidate": 0.10}
GOAL_PROPAGATION_S = 1.0


def policy() -> str:
    steps = ", ".join(map(str, STEPS))
    return (
        "models: [gpt-4o]\nmax_output_tokens: 300\nbudget: {max_request_tokens: 4000}\n"
        "degraded_message: Unavailable.\n"
        f"rollout:\n  steps: [{steps}]\n  interval: {INTERVAL_S}s\n  min_requests: 200\n"
        "  guards: {error_rate_pp: 2, p95_latency_ratio: 1.3, cost_ratio: 1.2}\n"
    )


def prompt(text: str) -> str:
    return f"---\ninputs:\n  q: {{type: string}}\n---\nsystem:\n{text}\nuser:\n{{{{ q }}}}\n"


class Registry:
    """A git repository of bench.reply and a database synced from it, with a token."""

    def __init__(self, root: Path) -> None:
        self.root, self.repo = root, root / "repo"
        self.url = f"sqlite:///{root / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        self.repo.mkdir(parents=True)
        self._git("init", "--quiet", "--initial-branch=main")
        self.commit("Be helpful.")
        migrate(self.url)
        self.engine = make_engine(self.url)
        self.sync()
        with session_scope(self.engine) as session:
            _, self.token = crud.create_token(session=session, name="bench", role="admin")

    def _git(self, *args: str) -> None:
        env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
        ident = ["-c", "user.name=bench", "-c", "user.email=bench@example.com"]
        subprocess.run(["git", *ident, *args], cwd=self.repo, env=env, check=True)

    def commit(self, text: str) -> None:
        for rel, content in (
            ("policies/bench/reply.yaml", policy()),
            ("prompts/bench/reply.jinja", prompt(text)),
        ):
            path = self.repo / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        self._git("add", "--all")
        self._git("commit", "--quiet", "-m", text)

    def sync(self) -> None:
        summary = sync_ref(
            self.engine, repo=str(self.repo), ref="main", label="production", cache_dir=self.root
        )
        assert summary.ok, summary.errors

    def rollout(self) -> Any:
        with session_scope(self.engine) as session:
            feature = crud.get_feature(session=session, name=FEATURE)
            assert feature is not None
            row = crud.latest_rollout(session=session, feature=feature, label="production")
            if row is not None:
                session.expunge(row)
            return row


@contextmanager
def serve(database_url: str, log: Path) -> Iterator[str]:
    """`promptreg serve` on a free port, until the block ends; its base URL."""
    port = free_port()
    command = [str(PROMPTREG), "serve", "--port", str(port), "--database-url", database_url]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"promptreg serve exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("promptreg serve did not answer /healthz within 60 s")
            time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


# -- abort under traffic --------------------------------------------------------------------


class Traffic:
    """Paced requests over the replicas, each one's usage event batched per second."""

    def __init__(self, bases: list[str], token: str, seed: int) -> None:
        self.bases, self.token = bases, token
        self.rng = random.Random(seed)
        self.served: list[tuple[float, str]] = []  # (wall time, arm)
        self.pending: dict[str, list[dict[str, Any]]] = {base: [] for base in bases}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        clients = {
            base: httpx.Client(base_url=base, headers=headers, timeout=5) for base in self.bases
        }
        poster = threading.Thread(target=self._post, args=(clients,), daemon=True)
        poster.start()
        start, sent = time.monotonic(), 0
        try:
            while not self.stop.is_set():
                lag = start + sent / RPS - time.monotonic()
                if lag > 0:
                    time.sleep(lag)  # the pace of the traffic
                base = self.bases[sent % len(self.bases)]
                sent += 1
                key = f"user-{self.rng.randrange(10**9)}"
                try:
                    answer = clients[base].get(f"/v1/features/{FEATURE}", params={"key": key})
                    data = answer.json()
                except (httpx.HTTPError, ValueError) as exc:
                    self.errors.append(repr(exc))
                    continue
                arm = data.get("rollout", {}).get("arm", "stable")
                self.served.append((time.time(), arm))
                with self.lock:
                    self.pending[base].append(self._event(data["version"], arm))
        finally:
            self.stop.set()
            poster.join(timeout=10)
            for client in clients.values():
                client.close()

    def _event(self, version: int, arm: str) -> dict[str, Any]:
        failed = self.rng.random() < ERRORS[arm]
        return {
            "id": uuid.uuid4().hex,
            "feature": FEATURE,
            "version": version,
            "model": "gpt-4o",
            "input_tokens": 1500,
            "output_tokens": 0 if failed else 200,
            "estimated_input_tokens": 1500,
            "latency_ms": round(800 * math.exp(0.6 * self.rng.gauss(0, 1)), 1),
            "outcome": "error" if failed else "ok",
            "cost_usd": 0.0 if failed else 0.002 * math.exp(self.rng.gauss(0, 1)),
        }

    def _post(self, clients: dict[str, httpx.Client]) -> None:
        while True:
            stopping = self.stop.wait(1.0)  # clients flush once a second
            for base, client in clients.items():
                with self.lock:
                    batch, self.pending[base] = self.pending[base], []
                for start in range(0, len(batch), 1000):
                    answer = client.post("/v1/usage", json={"events": batch[start : start + 1000]})
                    if answer.status_code != 202:
                        self.errors.append(f"usage: HTTP {answer.status_code} {answer.text[:200]}")
            if stopping:
                return


def verdict(met: bool) -> str:
    return "goal met" if met else "goal MISSED"


def splitting(base: str, token: str) -> bool:
    answer = httpx.get(
        f"{base}/v1/features/{FEATURE}", headers={"Authorization": f"Bearer {token}"}
    )
    return "rollout" in answer.json()


def abort_under_traffic(work: Path, seed: int) -> None:
    print(
        f"abort under traffic: {RPS} requests/s over 2 `promptreg serve` replicas on SQLite, "
        f"candidate errors {ERRORS['candidate']:.0%} vs stable {ERRORS['stable']:.0%}, "
        f"steps {' → '.join(map(str, STEPS))}% every {INTERVAL_S} s, min_requests 200"
    )
    registry = Registry(work / "live")
    with ExitStack() as stack:
        bases = [stack.enter_context(serve(registry.url, work / f"serve-{i}.log")) for i in "ab"]
        traffic = Traffic(bases, registry.token, seed)
        runner = threading.Thread(target=traffic.run, daemon=True)
        runner.start()
        stack.callback(runner.join, 10)
        stack.callback(traffic.stop.set)
        time.sleep(2)  # stable-only traffic first, as in production
        registry.commit("Be helpful and brief.")
        registry.sync()
        while not all(splitting(base, registry.token) for base in bases):
            time.sleep(0.005)
        first_stable: dict[str, float] = {}
        deadline = time.monotonic() + INTERVAL_S * (len(STEPS) + 4) * 2
        while len(first_stable) < len(bases) and time.monotonic() < deadline:
            for base in bases:
                if base not in first_stable and not splitting(base, registry.token):
                    first_stable[base] = time.time()
            time.sleep(0.002)
        traffic.stop.set()
    rollout = registry.rollout()
    registry.engine.dispose()
    if rollout is None or rollout.state != "aborted" or len(first_stable) < len(bases):
        state = rollout.state if rollout is not None else "no rollout"
        print(f"  the rollout did not abort in time: {state}; errors {traffic.errors[:3]}")
        return
    decided = rollout.decided_at.timestamp()
    interval_end = due_at(rollout).timestamp()
    before = sum(1 for at, arm in traffic.served if arm == "candidate" and at < decided)
    until_stable = sum(
        1 for at, arm in traffic.served if arm == "candidate" and at < max(first_stable.values())
    )
    allowed = STEPS[0] / 100 * RPS * (INTERVAL_S + 1)
    last = json.loads(rollout.decisions)[-1]
    propagation = max(first_stable.values()) - interval_end
    print(f"  aborted at step {rollout.step + 1} ({rollout.percent}%): {last.get('reason')}")
    print(
        f"  candidate requests before the abort: {before:,} (until every replica served "
        f"stable: {until_stable:,}); goal <= {allowed:,.0f} ({STEPS[0]}% × {RPS}/s × "
        f"({INTERVAL_S} s + 1 s)): {verdict(before <= allowed)}"
    )
    replicas = ", ".join(
        f"replica {name} +{(first_stable[b] - decided) * 1000:.0f} ms"
        for name, b in zip("AB", bases, strict=True)
    )
    print(
        f"  interval end → every replica serving stable: {propagation * 1000:.0f} ms "
        f"(decision +{(decided - interval_end) * 1000:.0f} ms; then {replicas}); goal <= "
        f"{GOAL_PROPAGATION_S:g} s: {verdict(propagation <= GOAL_PROPAGATION_S)}"
    )
    if traffic.errors:
        print(f"  ({len(traffic.errors)} traffic errors, first: {traffic.errors[0]})")


def live(seed: int = 1) -> None:
    """Both live measurements, in a temporary folder removed afterwards."""
    from rollout_scale import stats_at_scale  # bench/ is this script's folder, on sys.path

    print("\n== live: a rollout against real servers and databases ==")
    with tempfile.TemporaryDirectory(prefix="promptreg-bench-rollout-") as tmp:
        for part in (
            lambda: abort_under_traffic(Path(tmp), seed),
            lambda: stats_at_scale(Path(tmp)),
        ):
            try:
                part()
            except Exception as exc:  # a broken part is reported; the bench still exits 0
                print(f"  failed: {exc!r}")
