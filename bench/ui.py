"""Dashboard server time with 1,000 features and 1,000,000 usage events, as a ratio to
GET /v1/features in the same run.

    python bench/ui.py                          # SQLite; PostgreSQL too when
                                                # PROMPTREG_TEST_POSTGRES_URL is set
    python bench/ui.py --features 1000 --events 1000000 --repeat 40 [--keep]

Setup (a temporary directory, removed at the end): a git repository of `--features`
features (two commits, so each has two versions) synced into a fresh database; 20 of them
rolled back (pinned), 10 with a rollout running. `--events` usage events over the last 7
days, features drawn with Zipf weights (a few busy ones, a long tail: most features have
calls in any hour), inserted directly with the hourly rollups ingestion would build
(bench/usage.py's `bulk_insert`). A reader token signs in to the dashboard.

Server: the app (`registry.api.app:create_app`) under uvicorn, one worker, in a child
process. Timed: wall time per request on one keep-alive connection to 127.0.0.1 (the
server's time plus the loopback), requests of the four kinds interleaved, median and p95
of `--repeat` each after a warm-up:
- GET /v1/features, the baseline: every feature as JSON;
- GET /ui, the features page (every feature's 24 h usage, cost today and alarms; the first
  100 rows by name rendered);
- GET /ui?sort=p95&dir=desc, the same sorted by p95 latency;
- GET /ui/features/NAME, the busiest feature's page (timeline, sample, 24 h charts, audit).
The first features page after start-up is timed once too (cold: every live policy parsed,
the hours before the last two summed; after that, once per hour).

Goals: the features page within 3x GET /v1/features, and within 50 ms. Prints figures and
ratios; exits 0 whatever they are (timing noise must not fail a build).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from _common import fresh_database, two_commit_registry
from sqlalchemy import Engine
from sqlmodel import Session
from usage import bulk_insert, server, stored_event, synced

from registry import labels
from registry.rollouts import machine
from registry.store import crud, usage_crud
from registry.store.db import session_scope

GOAL_RATIO = 3.0
GOAL_MS = 50.0


def build_registry(root: Path, count: int) -> list[str]:
    """A git repository with `count` features, each changed once (two versions)."""
    names = [f"bench.f{i:04d}" for i in range(count)]
    two_commit_registry(
        root,
        names,
        policy="models: [gpt-4o, gpt-4o-mini]\nmax_output_tokens: 300\n"
        "budget: {max_request_tokens: 4000, daily_usd: 5, drift_alarm_pct: 20}\n"
        "degraded_message: Unavailable.\n",
        prompt_head="---\ninputs:\n  q: {type: string}\nsample:\n  q: Where is my order?\n---\n",
    )
    return names


def generate(count: int, ids: dict[str, int], now: datetime) -> list[dict[str, Any]]:
    """`count` stored-event rows over 7 days; feature i drawn with weight 1/(i+1)."""
    rng = random.Random(5)
    names = sorted(ids)
    chosen = rng.choices(names, weights=[1 / (i + 1) for i in range(len(names))], k=count)
    return [
        stored_event(rng, now, f"ui-{serial}", ids[name], version=2)
        for serial, name in enumerate(chosen)
    ]


def move_labels(engine: Engine, names: list[str]) -> None:
    """Roll 20 features back (pinned) and start a rollout on 10 others."""
    with session_scope(engine, write=True) as session:
        for name in names[100:120]:
            labels.rollback(session, name, actor="bench", reason="bench")
        for name in names[200:210]:
            machine.start_by_name(session, name, label="production", to_version=1, actor="bench")


def signed_in(base: str, token: str) -> httpx.Client:
    """A keep-alive client with a dashboard session."""
    client = httpx.Client(base_url=base, timeout=60)
    form = client.get("/ui/login").text
    nonce = re.search(r'name="csrf" value="([^"]+)"', form)
    assert nonce is not None
    answer = client.post("/ui/login", data={"csrf": nonce.group(1), "token": token})
    assert answer.status_code == 303, answer.text
    return client


def bench(kind: str, args: argparse.Namespace, work: Path) -> None:
    now = datetime.now(UTC)
    repo = work / f"registry-{kind}"
    names = build_registry(repo, args.features)
    with fresh_database(kind, work, bench="ui") as url:
        started = time.perf_counter()
        engine = synced(url, repo, work / "cache")
        move_labels(engine, names)
        with Session(engine) as session:
            ids = usage_crud.find_features(session=session, names=names)
        bulk_insert(engine, generate(args.events, ids, now))
        with session_scope(engine) as session:
            _, token = crud.create_token(session=session, name="bench", role="reader")
        engine.dispose()
        took = time.perf_counter() - started
        print(f"\n{kind}: {args.features:,} features, {args.events:,} events (setup {took:.0f} s)")
        busiest = names[0]
        paths = {
            "GET /v1/features (baseline)": "/v1/features",
            "features page": "/ui",
            "features page, by p95": "/ui?sort=p95&dir=desc",
            f"feature page ({busiest})": f"/ui/features/{busiest}",
        }
        with server(
            "registry.api.app:create_app", {"PROMPTREG_DATABASE_URL": url}, factory=True
        ) as base:
            client = signed_in(base, token)
            client.headers["Authorization"] = f"Bearer {token}"
            cold_started = time.perf_counter()
            assert client.get("/ui").status_code == 200
            cold = (time.perf_counter() - cold_started) * 1000
            times: dict[str, list[float]] = {label: [] for label in paths}
            for round_number in range(args.repeat + 5):
                for label, path in paths.items():
                    started = time.perf_counter()
                    answer = client.get(path)
                    elapsed = (time.perf_counter() - started) * 1000
                    assert answer.status_code == 200, (path, answer.status_code)
                    if round_number >= 5:  # the first rounds warm caches and connections
                        times[label].append(elapsed)
            client.close()
        baseline = statistics.median(times["GET /v1/features (baseline)"])
        for label, values in times.items():
            values.sort()
            median = statistics.median(values)
            p95 = values[int(0.95 * (len(values) - 1))]
            goal = ""
            if label.startswith("features page"):
                ratio_ok = median <= GOAL_RATIO * baseline
                ms_ok = median <= GOAL_MS
                goal = (
                    f"goal <= {GOAL_RATIO:g}x: {'OK' if ratio_ok else 'MISSED'}, "
                    f"<= {GOAL_MS:g} ms: {'OK' if ms_ok else 'MISSED'}"
                )
            print(
                f"  {label:<36} median {median:6.1f} ms  p95 {p95:6.1f} ms  "
                f"x{median / baseline:4.2f} of /v1/features  {goal}"
            )
        print(f"  first features page after start (cold, once an hour after): {cold:.0f} ms")
        minute = datetime.now(UTC).minute
        live = minute + 60 if minute < 5 else minute
        print(f"  (run at minute {minute} of the hour: the per-request part read {live} minutes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", type=int, default=1000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=40, help="timed requests of each kind")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    kinds = ["sqlite"] + (["postgres"] if os.environ.get("PROMPTREG_TEST_POSTGRES_URL") else [])
    tmp = Path(tempfile.mkdtemp(prefix="promptreg-bench-ui-"))
    try:
        for kind in kinds:
            bench(kind, args, tmp)
    finally:
        if args.keep:
            print(f"kept {tmp} (the SQLite database is its bench-*.db)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if "postgres" not in kinds:
        print("\n(PostgreSQL skipped: set PROMPTREG_TEST_POSTGRES_URL, or run under .ci/run)")


if __name__ == "__main__":
    main()
