"""HTTP API throughput and rollback propagation: promptreg under wrk against a bare FastAPI app.

    python bench/api.py [--duration 10] [--connections 32] [--warmup 3] [--rounds 1]
                        [--moves 20] [--no-uncached] [--verbose] [--keep]

Setup (all in a temporary directory, removed at the end): a git repository with this
repository's prompts/ and policies/ plus 100 generated small features (`bench.f000` ..
`bench.f099`; a second commit changes `bench.f000`, so it has two versions to move
between), synced into a fresh SQLite database with `registry.sync.sync_ref`, and a reader
and an admin token.

Servers, both started the same way, `python -m uvicorn APP --host 127.0.0.1 --port P
--workers 1 --no-access-log --log-level warning` (whatever loop and HTTP implementation
uvicorn picks, it picks for both), each pinned to CPU 0 with `taskset -c 0`:
- promptreg: `registry.api.app:create_app --factory`, PROMPTREG_DATABASE_URL set;
- bare: `bench/bare_app.py`, one `async def` route per path shape returning, from a dict,
  the exact bytes promptreg answered for that path (no auth, no validation, no body read).

Load: `taskset -c 1 wrk -t1 -c32 -d10s --latency -s SCRIPT.lua`, after a warm-up run of
the same script; the same request bytes (Authorization header included) go to both.
- resolve: GET /v1/features/bench.fNNN, a random one of the 100 per request;
- render: POST /v1/features/kb.answer/render with kb.answer's sample variables (the same
  body every request, so promptreg answers from its per-version render cache);
- render, uncached (informative, no target): a new question per request, so promptreg
  renders the template and counts tokens on every model of the chain each time.

Each run also reads the server process's CPU time (/proc/PID/stat) before and after: CPU
microseconds per request, and the share of its CPU the server got. On a busy machine
req/s moves with whatever else runs on CPU 0 (a share well under 100% says so); CPU per
request barely does, so its ratio (bare / ours) is printed beside the req/s ratio. With
`--rounds N` the promptreg and bare runs alternate in order and the median run is shown.
The first render of the fresh replica (its litellm import and tokenizer loads) is timed
too: one request, informative, no target.

Rollback propagation: a second promptreg replica (B) on the same SQLite file. Through
replica A, alternately roll `bench.f000` back (to version 1, pinned) and promote it (to
version 2); after each move, resolve on B (and A) in a tight loop until the answer shows
the new version. The latency is counted from A's answer to the move (and, on the next
line, from the request sent); how long A itself keeps serving the old version is shown
too. A random pause before each move spreads the moves over the replicas' poll phase.

Targets: resolve >= 0.8x bare req/s, render >= 0.5x bare req/s, propagation <= 1 s
(aim <= 100 ms). The exit status is 0 whether targets are met or not (timing noise must
not fail a build), and 0 with a message when wrk is not installed.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import free_port

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
FEATURES = 100
MOVED = "bench.f000"
RENDERED = "kb.answer"
TARGET_RESOLVE = 0.8
TARGET_RENDER = 0.5
TARGET_PROPAGATION_MS = 1000.0
AIM_PROPAGATION_MS = 100.0
SERVER_CPU = "0"
LOAD_CPU = "1"

POLICY = """\
description: Generated bench feature {i}
owner: bench
models:
  - model: gpt-4.1-mini
    timeout_s: 5
  - model: claude-haiku-4-5
params:
  temperature: 0.{t}
max_output_tokens: {out}
stream: false
budget:
  max_request_tokens: 2000
  daily_usd: 5
tags: [bench, group-{g}]
"""

PROMPT = """\
---
description: Generated bench feature {i}
inputs:
  text: {{type: string, max_length: 2000, description: The text to work on}}
  tone: {{type: string, default: friendly, enum: [friendly, formal]}}
sample:
  text: Please summarise this note about invoice {i}.
---
system:
You are bench assistant number {i}{rev}. Answer in a {{{{ tone }}}} tone, in at most
three sentences, and never invent facts that are not in the user's text.

user:
{{{{ text }}}}
"""


# -- registry ------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> None:
    """Run git in `repo` with a fixed identity."""
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def feature_files(i: int, rev: str = "") -> dict[str, str]:
    """The policy and prompt of generated feature number `i`."""
    return {
        f"policies/bench/f{i:03d}.yaml": POLICY.format(i=i, t=i % 10, out=100 + i, g=i % 7),
        f"prompts/bench/f{i:03d}.jinja": PROMPT.format(i=i, rev=rev),
    }


def build_repo(repo: Path, features: int) -> None:
    """This repository's prompts and policies plus `features` generated ones, two commits."""
    repo.mkdir(parents=True)
    shutil.copytree(ROOT / "prompts", repo / "prompts")
    shutil.copytree(ROOT / "policies", repo / "policies")
    for i in range(features):
        for rel, text in feature_files(i).items():
            path = repo / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "bench registry")
    for rel, text in feature_files(0, rev=" (revised)").items():
        (repo / rel).write_text(text)
    git(repo, "commit", "-q", "-am", "revise bench.f000")


def build_database(repo: Path, url: str, cache_dir: Path) -> tuple[str, str, dict[str, Any]]:
    """Migrate, sync the repo, create tokens; returns (reader, admin, kb.answer's sample)."""
    from registry.definitions.load import RegistryLoader
    from registry.definitions.tree import DirTree
    from registry.store import crud
    from registry.store.db import make_engine, migrate, session_scope
    from registry.sync import sync_ref

    migrate(url)
    engine = make_engine(url)
    try:
        summary = sync_ref(engine, repo=str(repo), label="production", cache_dir=cache_dir)
        if not summary.ok:
            raise SystemExit(f"sync of the bench registry failed: {summary.errors[:3]}")
        with session_scope(engine) as session:
            _, reader = crud.create_token(session=session, name="bench-reader", role="reader")
            _, admin = crud.create_token(session=session, name="bench-admin", role="admin")
    finally:
        engine.dispose()
    loaded = RegistryLoader(DirTree(repo), samples=False).load()
    sample = loaded.features[RENDERED].prompt.sample
    if not sample:
        raise SystemExit(f"{RENDERED} has no sample to render")
    return reader, admin, dict(sample)


# -- processes -----------------------------------------------------------------------------


PINNING = False  # set by main(): taskset exists and CPUs 0 and 1 are ours


def pin(cpu: str) -> list[str]:
    """The `taskset` prefix, or nothing when the machine cannot pin."""
    return ["taskset", "-c", cpu] if PINNING else []


@dataclass
class Server:
    """A uvicorn process we started."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """Terminate (then kill) this process only."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_server(
    name: str, app: list[str], env: dict[str, str], log: Path, servers: list[Server]
) -> Server:
    """Start uvicorn (pinned to the server CPU) and wait for /healthz."""
    port = free_port()
    cmd = [
        *pin(SERVER_CPU),
        sys.executable,
        "-m",
        "uvicorn",
        *app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(name, port, proc, log)
    servers.append(server)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited at start:\n{log.read_text()[-3000:]}")
        try:
            status, _ = request(port, "GET", "/healthz")
            if status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{name} did not answer /healthz within 60 s:\n{log.read_text()[-3000:]}")


def request(
    port: int,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: bytes | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, bytes]:
    """One HTTP request (on `conn` when given, kept alive); returns (status, body)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        if own:
            conn.close()


# -- wrk -----------------------------------------------------------------------------------

LUA_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT {\\"requests\\":%d,\\"duration_us\\":%d,\\"p50_us\\":%d,\\"p90_us\\":%d," ..
    "\\"p99_us\\":%d,\\"max_us\\":%d,\\"mean_us\\":%.1f,\\"connect\\":%d,\\"read\\":%d," ..
    "\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status,
    e.timeout))
end
"""


def lua_resolve(paths: list[str], token: str) -> str:
    """A random one of `paths` per request, with the reader token."""
    listed = ",\n  ".join(json.dumps(p) for p in paths)
    return f"""
local paths = {{
  {listed}
}}
local reqs = {{}}
wrk.headers["Authorization"] = "Bearer {token}"
init = function(args)
  math.randomseed(os.time())
  for i, p in ipairs(paths) do reqs[i] = wrk.format("GET", p) end
end
request = function() return reqs[math.random(#reqs)] end
{LUA_DONE}"""


def lua_render(path: str, token: str, body_file: Path) -> str:
    """The same POST body every request."""
    return f"""
local f = assert(io.open({json.dumps(str(body_file))}, "rb"))
local body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.path = {json.dumps(path)}
wrk.body = body
wrk.headers["Authorization"] = "Bearer {token}"
wrk.headers["Content-Type"] = "application/json"
{LUA_DONE}"""


def lua_render_varying(path: str, token: str, head_file: Path, tail_file: Path) -> str:
    """A POST body with a counter spliced into the question: a new text every request."""
    return f"""
local function slurp(name)
  local f = assert(io.open(name, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end
local head = slurp({json.dumps(str(head_file))})
local tail = slurp({json.dumps(str(tail_file))})
local n = 0
local salt = 0
wrk.headers["Authorization"] = "Bearer {token}"
wrk.headers["Content-Type"] = "application/json"
init = function(args) salt = os.time() end
request = function()
  n = n + 1
  return wrk.format("POST", {json.dumps(path)}, nil, head .. salt .. "-" .. n .. tail)
end
{LUA_DONE}"""


@dataclass
class Load:
    """One wrk run's figures, and the server's CPU time over it."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_s: float = 0.0  # the server process's user + system CPU seconds during the run
    wall_s: float = 0.0

    @property
    def cpu_us(self) -> float:
        """Server CPU microseconds per request: what contention on the machine cannot move."""
        return self.cpu_s * 1e6 / max(1, self.requests)

    @property
    def share(self) -> float:
        """Fraction of one CPU the server got (well under 1: something else ran on its CPU)."""
        return self.cpu_s / self.wall_s if self.wall_s else 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, its exited threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(
    server: Server, script: Path, seconds: float, connections: int, *, verbose: bool = False
) -> Load:
    """Run wrk (pinned to the load CPU) and parse the script's `done` line."""
    cmd = [
        *pin(LOAD_CPU),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{server.port}",
    ]
    cpu, wall = cpu_seconds(server.proc.pid), time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    cpu, wall = cpu_seconds(server.proc.pid) - cpu, time.perf_counter() - wall
    if verbose:
        print(out.stdout, out.stderr, sep="\n")
    found = re.search(r"^BENCH_RESULT (\{.*\})$", out.stdout, re.M)
    if out.returncode != 0 or found is None:
        raise SystemExit(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    data = json.loads(found.group(1))
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Load(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        requests=data["requests"],
        errors=errors,
        cpu_s=cpu,
        wall_s=wall,
    )


def measure(
    server: Server, script: Path, args: argparse.Namespace, label: str, verbose: bool = False
) -> Load:
    """Warm-up run, then the measured run."""
    if args.warmup > 0:
        run_wrk(server, script, args.warmup, args.connections)
    load = run_wrk(server, script, args.duration, args.connections, verbose=verbose)
    note = f", {load.errors} ERRORS" if load.errors else ""
    print(
        f"  {label:<32} {load.rps:>7.0f} req/s  p50 {load.p50_ms:6.2f} ms  "
        f"p99 {load.p99_ms:6.2f} ms  {load.cpu_us:6.0f} us CPU/req  "
        f"(server got {load.share:.0%} of a CPU){note}",
        flush=True,
    )
    return load


# -- rollback propagation ------------------------------------------------------------------


@dataclass
class Propagation:
    """Latencies (ms) of the label moves as seen by each replica."""

    b_after_ack: list[float]
    b_after_send: list[float]
    a_after_ack: list[float]
    write_ms: list[float]
    failures: int


def served_version(conn: http.client.HTTPConnection, token: str) -> int:
    """The version a replica resolves `bench.f000` to right now."""
    status, body = request(0, "GET", f"/v1/features/{MOVED}", token=token, conn=conn)
    if status != 200:
        raise SystemExit(f"resolve of {MOVED} answered {status}: {body[:300]!r}")
    return int(json.loads(body)["version"])


def propagation(
    a: Server, b: Server, reader: str, admin: str, moves: int, timeout_s: float = 5.0
) -> Propagation:
    """Alternate rollback/promote through A; poll B and A until each serves the move."""
    conn_a = http.client.HTTPConnection("127.0.0.1", a.port, timeout=10)
    conn_b = http.client.HTTPConnection("127.0.0.1", b.port, timeout=10)
    poll_a = http.client.HTTPConnection("127.0.0.1", a.port, timeout=10)
    out = Propagation([], [], [], [], 0)
    rng = random.Random(7)
    try:
        for i in range(moves):
            time.sleep(rng.uniform(0.0, 0.1))  # land at a random phase of the replicas' polls
            action = "rollback" if i % 2 == 0 else "promote"
            payload = {"to_version": 1, "reason": "bench"} if i % 2 == 0 else {"version": 2}
            sent = time.perf_counter()
            status, body = request(
                0,
                "POST",
                f"/v1/features/{MOVED}/{action}",
                token=admin,
                body=json.dumps(payload).encode(),
                conn=conn_a,
            )
            acked = time.perf_counter()
            if status != 200:
                raise SystemExit(f"{action} through replica A answered {status}: {body[:300]!r}")
            target = int(json.loads(body)["to_version"])
            seen_b = seen_a = None
            while (seen_b is None or seen_a is None) and time.perf_counter() - acked < timeout_s:
                if seen_b is None and served_version(conn_b, reader) == target:
                    seen_b = time.perf_counter()
                if seen_a is None and served_version(poll_a, reader) == target:
                    seen_a = time.perf_counter()
            if seen_b is None or seen_a is None:
                out.failures += 1
                continue
            out.write_ms.append((acked - sent) * 1000)
            out.b_after_ack.append((seen_b - acked) * 1000)
            out.b_after_send.append((seen_b - sent) * 1000)
            out.a_after_ack.append((seen_a - acked) * 1000)
    finally:
        for conn in (conn_a, conn_b, poll_a):
            conn.close()
    return out


# -- main ----------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    """Met or not, for the table."""
    return "met" if ok else "NOT MET"


def implementations() -> str:
    """Which event loop and HTTP parser uvicorn will pick (auto), for the report."""
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http_impl = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{loop} + {http_impl}"


def median_load(loads: list[Load]) -> Load:
    """The run with the median throughput (the lower middle one for an even count)."""
    return sorted(loads, key=lambda load: load.rps)[(len(loads) - 1) // 2]


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through `finally`: servers stop


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, set up, run every measurement, print the table, clean up."""
    global PINNING
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds (median)")
    parser.add_argument("--features", type=int, default=FEATURES)
    parser.add_argument("--moves", type=int, default=20, help="rollbacks + promotes")
    parser.add_argument("--no-uncached", action="store_true", help="skip the uncached render")
    parser.add_argument("--verbose", action="store_true", help="print wrk's own output")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)

    if shutil.which("wrk") is None:
        print("wrk is not installed: skipping the API benchmark (apt-get install -y wrk).")
        return 0
    cpus = os.sched_getaffinity(0)
    PINNING = shutil.which("taskset") is not None and {0, 1} <= cpus
    if not PINNING:
        print("note: cannot pin to CPUs 0 and 1 (need taskset and 2 CPUs): running unpinned")
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)

    sys.path.insert(0, str(ROOT))
    tmp = Path(tempfile.mkdtemp(prefix="promptreg-bench-api-"))
    servers: list[Server] = []
    try:
        run(args, tmp, servers)
    except KeyboardInterrupt as exc:
        print(f"interrupted ({exc or 'Ctrl-C'}): stopping the servers")
        return 130
    finally:
        for server in reversed(servers):
            server.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def run(args: argparse.Namespace, tmp: Path, servers: list[Server]) -> None:
    """Everything between setup and clean-up; every server started is added to `servers`."""
    print(f"setting up in {tmp} ...", flush=True)
    repo, db = tmp / "repo", tmp / "bench.db"
    url = f"sqlite:///{db}"
    build_repo(repo, args.features)
    started = time.perf_counter()
    reader, admin, sample = build_database(repo, url, tmp / "cache")
    print(
        f"  registry: {args.features} generated features + the demo's, synced in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )

    env = {
        **os.environ,
        "PROMPTREG_DATABASE_URL": url,
        "PROMPTREG_REPO": str(repo),
        "PROMPTREG_CACHE_DIR": str(tmp / "cache"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    factory = ["registry.api.app:create_app", "--factory"]
    ours = start_server("promptreg A", factory, env, tmp / "a.log", servers)

    # What promptreg answers is what the bare app will answer, byte for byte.
    names = [f"bench.f{i:03d}" for i in range(args.features)]
    paths = [f"/v1/features/{name}" for name in names]
    render_path = f"/v1/features/{RENDERED}/render"
    render_body = json.dumps({"variables": sample}).encode()
    bodies: dict[str, dict[str, str]] = {"resolve": {}, "render": {}}
    for name, path in zip(names, paths, strict=True):
        status, body = request(ours.port, "GET", path, token=reader)
        if status != 200:
            raise SystemExit(f"GET {path} answered {status}: {body[:300]!r}")
        bodies["resolve"][name] = base64.b64encode(body).decode()
    cold = time.perf_counter()  # the process's first render: litellm import, tokenizers
    status, rendered = request(ours.port, "POST", render_path, token=reader, body=render_body)
    cold_ms = (time.perf_counter() - cold) * 1000
    if status != 200:
        raise SystemExit(f"POST {render_path} answered {status}: {rendered[:300]!r}")
    bodies["render"][RENDERED] = base64.b64encode(rendered).decode()
    (tmp / "bodies.json").write_text(json.dumps(bodies))
    sizes = [len(base64.b64decode(b)) for b in bodies["resolve"].values()]

    bare_env = {**env, "BENCH_BARE_BODIES": str(tmp / "bodies.json")}
    bare_app = ["bare_app:app", "--app-dir", str(BENCH_DIR)]
    bare = start_server("bare", bare_app, bare_env, tmp / "bare.log", servers)
    for path in (*paths, render_path):
        method = "POST" if path == render_path else "GET"
        body = render_body if method == "POST" else None
        status, got = request(bare.port, method, path, token=reader, body=body)
        if status != 200:
            raise SystemExit(f"bare {method} {path} answered {status}")

    scripts = {
        "resolve": tmp / "resolve.lua",
        "render": tmp / "render.lua",
        "uncached": tmp / "render-varying.lua",
    }
    scripts["resolve"].write_text(lua_resolve(paths, reader))
    (tmp / "render-body.json").write_bytes(render_body)
    scripts["render"].write_text(lua_render(render_path, reader, tmp / "render-body.json"))
    question = sample["question"] + " (request @@N@@)"
    head, tail = json.dumps({"variables": {**sample, "question": question}}).split("@@N@@")
    (tmp / "head.txt").write_text(head)
    (tmp / "tail.txt").write_text(tail)
    scripts["uncached"].write_text(
        lua_render_varying(render_path, reader, tmp / "head.txt", tmp / "tail.txt")
    )

    load1, load5, _ = os.getloadavg()
    print(
        f"\nload: wrk -t1 -c{args.connections} -d{args.duration:g}s (+{args.warmup:g} s "
        f"warm-up), servers on CPU {SERVER_CPU}, wrk on CPU {LOAD_CPU}; uvicorn "
        f"{implementations()}, 1 worker, no access log; load average {load1:.2f} {load5:.2f}",
        flush=True,
    )
    print(
        f"resolve bodies: {min(sizes)}-{max(sizes)} bytes; render body: "
        f"{len(render_body)} bytes in, {len(rendered)} bytes out",
        flush=True,
    )
    results: dict[tuple[str, str], list[Load]] = {}
    for r in range(args.rounds):
        if args.rounds > 1:
            print(f"round {r + 1} of {args.rounds}", flush=True)
        for scenario in ("resolve", "render"):
            pair = [("promptreg", ours), ("bare", bare)]
            for who, server in pair if r % 2 == 0 else reversed(pair):
                label = f"{scenario:9} {who}"
                load = measure(server, scripts[scenario], args, label, args.verbose)
                results.setdefault((scenario, who), []).append(load)
    uncached = None
    if not args.no_uncached:
        label = "render    promptreg, uncached"
        uncached = measure(ours, scripts["uncached"], args, label, args.verbose)

    print("\nrollback propagation ...", flush=True)
    replica_b = start_server("promptreg B", factory, env, tmp / "b.log", servers)
    for server in (ours, replica_b):  # warm both replicas' caches
        for path in paths[:5]:
            request(server.port, "GET", path, token=reader)
    prop = propagation(ours, replica_b, reader, admin, args.moves)

    medians = {key: median_load(loads) for key, loads in results.items()}
    report(args, medians, uncached, prop, cold_ms)
    for server in servers:
        if server.proc.poll() is not None:
            print(f"warning: {server.name} exited early:\n{server.log.read_text()[-2000:]}")


def report(
    args: argparse.Namespace,
    loads: dict[tuple[str, str], Load],
    uncached: Load | None,
    prop: Propagation,
    cold_ms: float,
) -> None:
    """The summary table."""
    line = "-" * 92
    rounds = f" (median of {args.rounds} rounds)" if args.rounds > 1 else ""
    print(
        f"\n{line}\n{'':34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU us/req':>12}"
        f"{'CPU share':>11}{'errors':>8}\n{line}"
    )

    def row(name: str, load: Load) -> None:
        print(
            f"{name:34}{load.rps:9.0f}{load.p50_ms:9.2f}{load.p99_ms:9.2f}{load.cpu_us:12.0f}"
            f"{load.share:11.0%}{load.errors:8d}"
        )

    def ratio(name: str, ours: Load, bare: Load, target: float) -> None:
        value = ours.rps / bare.rps
        print(
            f"{name:34}{value:8.2f}x of bare req/s   target >= {target:.1f}x: "
            f"{verdict(value >= target)}\n"
            f"{'':34}{bare.cpu_us / ours.cpu_us:8.2f}x by CPU per request (bare/ours); "
            f"p50 {ours.p50_ms / bare.p50_ms:.2f}x, p99 {ours.p99_ms / bare.p99_ms:.2f}x bare's"
        )

    for scenario, title, target in (
        ("resolve", f"resolve ({args.features} paths)", TARGET_RESOLVE),
        ("render", f"render {RENDERED}", TARGET_RENDER),
    ):
        row(f"{title} promptreg", loads[(scenario, "promptreg")])
        row(f"{title} bare", loads[(scenario, "bare")])
        ratio(
            f"{scenario} ratio{rounds}",
            *(loads[(scenario, w)] for w in ("promptreg", "bare")),
            target,
        )
        print(line)
    if uncached is not None:
        row("render uncached (info, no target)", uncached)
    print(f"first render on a fresh replica     {cold_ms:8.0f} ms (one request, nothing else)")
    print(line)
    if prop.b_after_ack:
        med_b, max_b = statistics.median(prop.b_after_ack), max(prop.b_after_ack)
        print(
            f"rollback propagation to B          median {med_b:6.1f} ms   max {max_b:6.1f} ms"
            f"   ({len(prop.b_after_ack)} moves, after A's answer)"
        )
        print(
            f"  counted from the request sent    median "
            f"{statistics.median(prop.b_after_send):6.1f} ms   max {max(prop.b_after_send):6.1f}"
            f" ms   (the write: median {statistics.median(prop.write_ms):.1f} ms)"
        )
        print(
            f"  replica A itself                 median "
            f"{statistics.median(prop.a_after_ack):6.1f} ms   max {max(prop.a_after_ack):6.1f} ms"
        )
        ok = max_b <= TARGET_PROPAGATION_MS and not prop.failures
        print(
            f"  target max <= {TARGET_PROPAGATION_MS:.0f} ms: {verdict(ok)};  aim <= "
            f"{AIM_PROPAGATION_MS:.0f} ms: {verdict(max_b <= AIM_PROPAGATION_MS)}"
        )
    if prop.failures:
        print(f"  {prop.failures} move(s) NOT seen within 5 s: target NOT MET")
    print(line)


if __name__ == "__main__":
    sys.exit(main())
