"""Usage ingestion through the API, and the stats query over 1,000,000 stored events.

    python bench/usage.py                       # SQLite; PostgreSQL too when
                                                # PROMPTREG_TEST_POSTGRES_URL is set
    python bench/usage.py --events 50000 --stored 1000000 --clients 1,4

Ingestion: a real uvicorn server (one worker) over a fresh database holding a synced
registry of 10 features; httpx clients post pre-encoded batches of 100 events, each with
a client id, as the client library does. Events/s over the whole run, with 1 and with
several concurrent clients. Baseline, run beside it: a bare FastAPI app on the same
uvicorn that parses the same JSON bodies and answers 202 without validating or storing
anything (the HTTP + JSON floor). Target: >= 5,000 events/s on SQLite.

Stats: a fresh database gets 1,000,000 events bulk-inserted directly (COPY on PostgreSQL,
executemany on SQLite) with their hourly rollups built by the same `aggregate` that
ingestion uses. 40% of the events belong to `bench.f0`, most of them in its last 24 hours
(the hot feature and the heavy day). Timed: `feature_stats(bench.f0, window=24h)`, the
query behind GET /v1/features/{name}/stats and `promptreg stats`. Baseline, run beside
it: the same totals and percentiles computed from the raw events of the window (an index
range scan on (feature_id, at)). Target: <= 100 ms.

Prints figures and ratios; exits 0 whatever they are (timing noise must not fail a build).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from _common import free_port, fresh_database, two_commit_registry
from fastapi import FastAPI, Request, Response
from sqlalchemy import Engine, select, text
from sqlmodel import Session

from registry.store import crud, usage_crud
from registry.store.db import make_engine, session_scope
from registry.store.models import UsageEvent
from registry.sync import sync_ref
from registry.usage import feature_stats
from registry.usage.rollup import aggregate

FEATURES = [f"bench.f{i}" for i in range(10)]
MODELS = ("gpt-4o", "gpt-4o-mini")
OUTCOMES = ["ok"] * 90 + ["fallback"] * 5 + ["error"] * 2 + ["timeout", "degraded", "rejected"]
WEEK_S = 7 * 24 * 3600
TARGET_EVENTS_S = 5_000
TARGET_STATS_MS = 100.0

# The baseline server: parse the body, answer like ours, store nothing.
bare = FastAPI()


@bare.post("/v1/usage", status_code=202)
async def bare_usage(request: Request) -> Response:
    """Parse the JSON batch and count it."""
    body = json.loads(await request.body())
    count = len(body["events"])
    return Response(
        json.dumps({"accepted": count, "duplicates": 0, "rejected": []}),
        status_code=202,
        media_type="application/json",
    )


@bare.get("/healthz")
async def bare_health() -> dict[str, str]:
    """Liveness, for the start-up wait."""
    return {"status": "ok"}


# --- setup ---------------------------------------------------------------------------------


def build_registry(root: Path) -> None:
    """A git repository with FEATURES, each with two versions (two commits)."""
    two_commit_registry(
        root,
        FEATURES,
        policy="models: [gpt-4o, gpt-4o-mini]\nmax_output_tokens: 300\nstream: true\n"
        "budget: {max_request_tokens: 4000, daily_usd: 50, drift_alarm_pct: 20}\n"
        "degraded_message: Unavailable.\n",
        prompt_head="---\ninputs:\n  q: {type: string}\n---\n",
    )


def synced(url: str, repo: Path, cache: Path) -> Engine:
    """An engine on `url` with the bench registry synced into production."""
    engine = make_engine(url)
    summary = sync_ref(engine, repo=str(repo), ref="main", label="production", cache_dir=cache)
    assert summary.ok, summary.errors
    return engine


@contextmanager
def server(app: str, env: dict[str, str], *, factory: bool) -> Iterator[str]:
    """uvicorn with one worker in a child process; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    command += ["--log-level", "warning", "--no-access-log"] + (["--factory"] if factory else [])
    proc = subprocess.Popen(command, env={**os.environ, **env}, cwd=Path(__file__).parent)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{app} did not start")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# --- ingestion -----------------------------------------------------------------------------


def batches(count: int, size: int, rng: random.Random) -> list[bytes]:
    """Pre-encoded request bodies of `size` valid events each, ids like the client's."""
    prefix = f"{rng.getrandbits(64):016x}"  # registry.client: a per-process prefix, a counter
    serial = 0
    out = []
    for _ in range(count):
        events = []
        for _ in range(size):
            estimate = rng.randint(200, 2000)
            serial += 1
            events.append(
                {
                    "id": f"{prefix}-{serial}",
                    "at": datetime.now(UTC).isoformat(),
                    "feature": rng.choice(FEATURES),
                    "version": 2,
                    "model": rng.choice(MODELS),
                    "input_tokens": int(estimate * rng.uniform(0.9, 1.3)),
                    "output_tokens": rng.randint(20, 300),
                    "latency_ms": round(rng.lognormvariate(6.8, 0.6), 1),
                    "outcome": rng.choice(OUTCOMES),
                    "estimated_input_tokens": estimate,
                }
            )
        out.append(json.dumps({"events": events}).encode())
    return out


def post_all(base: str, token: str, bodies: list[bytes], clients: int) -> float:
    """Post every body with `clients` concurrent keep-alive clients; events/s."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    chunks = [bodies[i::clients] for i in range(clients)]
    failures: list[str] = []

    def run(chunk: list[bytes]) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            for body in chunk:
                response = client.post("/v1/usage", content=body)
                if response.status_code != 202 or response.json()["rejected"]:
                    failures.append(response.text[:200])

    threads = [threading.Thread(target=run, args=(chunk,)) for chunk in chunks]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} batches failed, e.g. {failures[0]}")
    events = sum(len(json.loads(b)["events"]) for b in bodies)
    return events / elapsed


def bench_ingestion(kind: str, args: argparse.Namespace, repo: Path, work: Path) -> None:
    rng = random.Random(1)
    size = args.batch
    with fresh_database(kind, work, bench="usage") as url:
        engine = synced(url, repo, work / "cache")
        with session_scope(engine) as session:
            _, token = crud.create_token(session=session, name="bench", role="reader")
        engine.dispose()
        env = {"PROMPTREG_DATABASE_URL": url}
        print(f"\ningestion on {kind}: uvicorn (1 worker), httpx, batches of {size}")
        with server("registry.api.app:create_app", env, factory=True) as ours:
            post_all(ours, token, batches(20, size, rng), 1)  # warm-up: caches, connections
            with server("usage:bare", {}, factory=False) as floor:
                post_all(floor, token, batches(20, size, rng), 1)
                for clients in args.clients:
                    bodies = batches(args.events // size, size, rng)
                    rate = post_all(ours, token, bodies, clients)
                    base_rate = post_all(floor, token, bodies, clients)
                    verdict = "OK" if rate >= TARGET_EVENTS_S else "MISSED"
                    print(
                        f"  {clients} client(s): {rate:>9,.0f} events/s   bare app "
                        f"{base_rate:>9,.0f} events/s   ours/bare {rate / base_rate:.2f}   "
                        f"target >= {TARGET_EVENTS_S:,}: {verdict if kind == 'sqlite' else '-'}"
                    )


# --- stats ---------------------------------------------------------------------------------


def generate(count: int, ids: dict[str, int], now: datetime) -> list[dict[str, Any]]:
    """`count` stored-event rows: 40% bench.f0 (75% of those in its last 24 h), 7 days."""
    rng = random.Random(2)
    prefixes = [f"{rng.getrandbits(64):016x}" for _ in range(50)]  # 50 client processes
    rows = []
    for serial in range(count):
        hot = rng.random() < 0.4
        name = "bench.f0" if hot else rng.choice(FEATURES[1:])
        recent = hot and rng.random() < 0.75
        age = rng.uniform(0, 24 * 3600 - 1) if recent else rng.uniform(0, WEEK_S)
        event_id = f"{prefixes[serial % len(prefixes)]}-{serial}"
        rows.append(stored_event(rng, now, event_id, ids[name], age_s=age))
    return rows


def stored_event(
    rng: random.Random,
    now: datetime,
    event_id: str,
    feature_id: int,
    *,
    version: int | None = None,
    age_s: float | None = None,
) -> dict[str, Any]:
    """A stored-event row of one call: tokens, model, outcome, latency and cost from `rng`;
    the version 1 or 2 unless given, at any time of the last 7 days unless `age_s` says."""
    estimate = rng.randint(200, 2000)
    input_tokens = int(estimate * rng.uniform(0.9, 1.3))
    output_tokens = rng.randint(20, 300)
    model = rng.choice(MODELS)
    price_in, price_out = (2.5e-6, 1e-5) if model == "gpt-4o" else (1.5e-7, 6e-7)
    return {
        "event_id": event_id,
        "feature_id": feature_id,
        "version": rng.choice((1, 2)) if version is None else version,
        "model": model,
        "outcome": rng.choice(OUTCOMES),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "estimated_input_tokens": estimate,
        "latency_ms": round(rng.lognormvariate(6.8, 0.6), 1),
        "cost_usd": input_tokens * price_in + output_tokens * price_out,
        "at": now - timedelta(seconds=rng.uniform(0, WEEK_S) if age_s is None else age_s),
        "received_at": now,
    }


COLUMNS = [c.name for c in UsageEvent.__table__.columns if c.name != "id"]  # type: ignore[attr-defined]


def bulk_insert(engine: Engine, rows: list[dict[str, Any]]) -> None:
    """Insert events directly (COPY on PostgreSQL) and their rollups, like ingestion would."""
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            with cursor.copy(f"COPY usage_events ({', '.join(COLUMNS)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row([row[c] for c in COLUMNS])
            raw.commit()
        finally:
            raw.close()
    else:
        table = UsageEvent.__table__  # type: ignore[attr-defined]
        with engine.begin() as conn:
            for start in range(0, len(rows), 50_000):
                conn.execute(table.insert(), rows[start : start + 50_000])
    rollups, latency = aggregate(rows)
    with session_scope(engine, write=True) as session:
        for start in range(0, len(rollups), 5_000):
            usage_crud.add_rollups(session=session, rows=rollups[start : start + 5_000])
        for start in range(0, len(latency), 5_000):
            usage_crud.add_latency(session=session, rows=latency[start : start + 5_000])
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def raw_stats(engine: Engine, feature_id: int, since: datetime) -> dict[str, Any]:
    """The baseline: the same totals and percentiles from the raw events of the window."""
    t = UsageEvent.__table__  # type: ignore[attr-defined]
    query = select(
        t.c.outcome,
        t.c.input_tokens,
        t.c.output_tokens,
        t.c.estimated_input_tokens,
        t.c.cost_usd,
        t.c.latency_ms,
    ).where(t.c.feature_id == feature_id, t.c.at >= since)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    latencies = sorted(r[5] for r in rows if r[0] != "rejected")
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": len(rows),
        "input": sum(r[1] for r in rows),
        "cost": sum(r[4] or 0 for r in rows),
        "p50": cuts[49],
        "p95": cuts[94],
    }


def timed(fn: Any, repeat: int) -> tuple[float, float, Any]:
    """Median and p95 wall time in ms of `fn()` over `repeat` runs, and its last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))], result


def bench_stats(kind: str, args: argparse.Namespace, repo: Path, work: Path) -> None:
    now = datetime.now(UTC)
    with fresh_database(kind, work, bench="usage") as url:
        engine = synced(url, repo, work / "cache")
        with Session(engine) as session:
            ids = usage_crud.find_features(session=session, names=FEATURES)
        print(f"\nstats on {kind}: {args.stored:,} events stored")
        started = time.perf_counter()
        rows = generate(args.stored, ids, now)
        bulk_insert(engine, rows)
        hot_day = sum(
            1
            for r in rows
            if r["feature_id"] == ids["bench.f0"] and r["at"] >= now - timedelta(hours=24)
        )
        del rows
        took = time.perf_counter() - started
        print(f"  setup {took:.0f} s; bench.f0 has {hot_day:,} events in its last 24 h")

        def ours(window: str) -> dict[str, Any]:
            with Session(engine) as session:
                return feature_stats(session, "bench.f0", window=window, now=now)

        for window in ("24h", "7d"):
            median, p95, data = timed(lambda w=window: ours(w), args.repeat)
            since = datetime.fromisoformat(data["since"])
            base_median, _, base = timed(lambda s=since: raw_stats(engine, ids["bench.f0"], s), 3)
            verdict = "OK" if median <= TARGET_STATS_MS else "MISSED"
            target = f"target <= {TARGET_STATS_MS:g} ms: {verdict}" if window == "24h" else ""
            print(
                f"  window {window:>3}: median {median:6.1f} ms, p95 {p95:6.1f} ms "
                f"({data['requests']:,} requests; p50 {data['latency_ms']['p50']} ms vs exact "
                f"{base['p50']:.1f})   raw-events baseline {base_median:8.1f} ms "
                f"({base_median / median:,.0f}x slower)   {target}"
            )
            assert data["requests"] == base["requests"], (data["requests"], base["requests"])
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="events per ingestion run")
    parser.add_argument("--batch", type=int, default=100, help="events per request")
    parser.add_argument("--clients", default="1,4", help="concurrent clients, comma-separated")
    parser.add_argument("--stored", type=int, default=1_000_000, help="events for the stats bench")
    parser.add_argument("--repeat", type=int, default=30, help="stats queries timed")
    parser.add_argument("--skip-ingestion", action="store_true")
    parser.add_argument("--skip-stats", action="store_true")
    args = parser.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    kinds = ["sqlite"] + (["postgres"] if os.environ.get("PROMPTREG_TEST_POSTGRES_URL") else [])
    with tempfile.TemporaryDirectory(prefix="promptreg-bench-") as tmp:
        work = Path(tmp)
        repo = work / "registry"
        build_registry(repo)
        for kind in kinds:
            if not args.skip_ingestion:
                bench_ingestion(kind, args, repo, work)
            if not args.skip_stats:
                bench_stats(kind, args, repo, work)
    if "postgres" not in kinds:
        print("\n(PostgreSQL skipped: set PROMPTREG_TEST_POSTGRES_URL, or run under .ci/run)")


if __name__ == "__main__":
    main()
