"""Sync of a large history: full first sync against an incremental sync of one new commit.

    python bench/sync.py [--features 1000] [--commits 300] [--incremental 5] [--seed 7]
    .ci/run .venv/bin/python bench/sync.py      # SQLite and a throwaway PostgreSQL

Generates (with one `git fast-import`) a repository of `--features` features in 20
team folders, each folder with its own `_defaults.yaml`, under a top-level
`_defaults.yaml`; one feature in three includes one of ten shared partials; every prompt
has a sample, so every load renders it and counts its tokens, as a real sync does. Then
`--commits` commits follow, each touching 1-5 files: mostly one feature's policy or
prompt, sometimes a team's `_defaults.yaml` (50 features), a shared partial (~33
features) or, rarely, the top-level `_defaults.yaml` (every feature).

Measured, per database: the first sync of the whole history into an empty database
(`sync_ref`, in one process whose catalog and tokenizers are already loaded; the cold
start is printed on its own), then `--incremental` times: one new commit changing one
feature's policy, synced. PostgreSQL runs when PROMPTREG_TEST_POSTGRES_URL is set (a
fresh database is created and dropped).

Targets: full <= 60 s; incremental <= 1 s and <= 2 % of full (median of the runs).
The exit status is 0 either way: timing noise must not fail a build.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _common import fresh_database
from sqlalchemy import func, select

from registry.definitions.load import RegistryLoader
from registry.definitions.tree import DirTree
from registry.store.db import make_engine, session_scope
from registry.store.models import Version
from registry.sync import sync_ref

FULL_TARGET_S = 60.0
INCREMENTAL_TARGET_S = 1.0
RATIO_TARGET = 0.02
TEAMS = 20
PARTIALS = 10
EPOCH = 1_700_000_000

Files = dict[str, str]


def policy(max_output_tokens: int, temperature: float) -> str:
    return (
        "models:\n"
        "  - model: gpt-4o-mini\n"
        "    timeout_s: 10\n"
        "  - model: gpt-4o\n"
        f"params: {{temperature: {temperature}}}\n"
        f"max_output_tokens: {max_output_tokens}\n"
        "budget:\n"
        "  max_request_usd: 0.05\n"
    )


def prompt(feature: str, revision: int, partial: int | None) -> str:
    include = f'{{% include "partials/p{partial}.jinja" %}}\n' if partial is not None else ""
    return (
        "---\n"
        f"description: {feature}, revision {revision}\n"
        "inputs:\n"
        "  question: {type: string, max_length: 4000}\n"
        "  tone: {type: string, default: friendly, enum: [friendly, formal]}\n"
        "sample:\n"
        f"  question: What does {feature} do, in revision {revision}?\n"
        "---\n"
        "system:\n"
        f"You handle {feature} for ACME. Answer in a {{{{ tone }}}} tone (revision {revision}).\n"
        f"{include}"
        "user:\n"
        "{{ question }}\n"
    )


def defaults(owner: str, deadline: int) -> str:
    return (
        f"owner: {owner}\n"
        f"deadline_s: {deadline}\n"
        "budget:\n"
        "  max_request_tokens: 6000\n"
        "degraded_message: Unavailable right now, please retry in a minute.\n"
    )


def partial(k: int, revision: int) -> str:
    return f"Shared guidance {k}, revision {revision}: be accurate, cite the docs, stay brief.\n"


class History:
    """The generated repository's files, and the commits that change them."""

    def __init__(self, features: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.names = [f"team{i % TEAMS:02d}/f{i:04d}" for i in range(features)]
        self.partial_of = {
            name: (i % PARTIALS if i % 3 == 0 else None) for i, name in enumerate(self.names)
        }
        self.revision: dict[str, int] = {}

    def _next(self, key: str) -> int:
        self.revision[key] = self.revision.get(key, 0) + 1
        return self.revision[key]

    def initial(self) -> Files:
        files: Files = {"policies/_defaults.yaml": defaults("platform", 25)}
        for team in range(TEAMS):
            files[f"policies/team{team:02d}/_defaults.yaml"] = defaults(f"team{team:02d}", 20)
        for k in range(PARTIALS):
            files[f"prompts/partials/p{k}.jinja"] = partial(k, 0)
        for name in self.names:
            files[f"policies/{name}.yaml"] = policy(300, 0.2)
            files[f"prompts/{name}.jinja"] = prompt(name, 0, self.partial_of[name])
        return files

    def feature_change(self, name: str | None = None) -> Files:
        name = name or self.rng.choice(self.names)
        n = self._next(name)
        if self.rng.random() < 0.5:
            return {f"policies/{name}.yaml": policy(300 + n, round(0.2 + (n % 7) / 10, 1))}
        return {f"prompts/{name}.jinja": prompt(name, n, self.partial_of[name])}

    def change(self) -> Files:
        """One commit: 1-5 files, now and then a shared one."""
        files: Files = {}
        for _ in range(self.rng.randint(1, 5)):
            roll = self.rng.random()
            if roll < 0.01:
                n = self._next("top")
                files["policies/_defaults.yaml"] = defaults("platform", 25 + n % 5)
            elif roll < 0.06:
                team = self.rng.randrange(TEAMS)
                n = self._next(f"team{team}")
                files[f"policies/team{team:02d}/_defaults.yaml"] = defaults(
                    f"team{team:02d}", 20 + n % 9
                )
            elif roll < 0.09:
                k = self.rng.randrange(PARTIALS)
                files[f"prompts/partials/p{k}.jinja"] = partial(k, self._next(f"p{k}"))
            else:
                files.update(self.feature_change())
        return files


def fast_import(repo: Path, commits: list[tuple[str, Files]], tick: int) -> int:
    """Append `commits` to main with one `git fast-import`; returns the clock's new tick."""
    chunks: list[bytes] = []
    has_main = (
        subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "main"], cwd=repo, capture_output=True
        ).returncode
        == 0
    )
    for i, (message, files) in enumerate(commits):
        tick += 1
        who = f"Bench Author <bench@example.com> {EPOCH + 60 * tick} +0000"
        body = message.encode()
        chunks.append(
            f"commit refs/heads/main\nauthor {who}\ncommitter {who}\ndata {len(body)}\n".encode()
            + body
            + b"\n"
        )
        if i == 0 and has_main:
            chunks.append(b"from refs/heads/main^0\n")
        for path, content in files.items():
            data = content.encode()
            chunks.append(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")
        chunks.append(b"\n")
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=b"".join(chunks), check=True)
    return tick


def make_repository(root: Path, features: int, commits: int, seed: int) -> tuple[History, int]:
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main", str(root)], check=True)
    history = History(features, seed)
    plan = [("Initial registry", history.initial())]
    plan += [(f"Change {i + 1}", history.change()) for i in range(commits)]
    return history, fast_import(root, plan, 0)


def warm_up() -> float:
    """Load the catalog and tokenizers once (what every process pays on its first sync)."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        history = History(1, 0)
        for path, content in history.initial().items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(content)
        loaded = RegistryLoader(DirTree(root)).load()
        assert not loaded.problems, loaded.problems
    return time.perf_counter() - started


def bench(kind: str, repo: Path, history: History, tick: int, runs: int) -> dict[str, float]:
    """Full sync, then `runs` incremental syncs of one new commit each, on a fresh database."""
    with tempfile.TemporaryDirectory() as tmp, fresh_database(kind, Path(tmp), bench="sync") as url:
        engine = make_engine(url)
        cache = Path(tmp) / "cache"
        try:
            started, cpu = time.perf_counter(), time.process_time()
            full = sync_ref(engine, repo=str(repo), ref="main", cache_dir=cache, actor="bench")
            full_s = time.perf_counter() - started
            full_cpu_s = time.process_time() - cpu
            if not full.ok:
                print(f"  ({len(full.errors)} errors: {full.errors[0]})")
            with session_scope(engine) as session:
                versions = session.execute(select(func.count()).select_from(Version)).scalar_one()
            incremental: list[float] = []
            for i in range(runs):
                tick = fast_import(repo, [(f"Incremental {i}", history.feature_change())], tick)
                started = time.perf_counter()
                one = sync_ref(engine, repo=str(repo), ref="main", cache_dir=cache, actor="bench")
                incremental.append(time.perf_counter() - started)
                assert one.commits == 1 and one.versions_created == 1, one.as_dict()
        finally:
            engine.dispose()
    # the same commits again on the next database: rewind main to where this run started
    subprocess.run(["git", "update-ref", "refs/heads/main", f"main~{runs}"], cwd=repo, check=True)
    median = statistics.median(incremental)
    return {
        "full_s": full_s,
        "full_cpu_s": full_cpu_s,
        "commits": float(full.commits),
        "versions": float(versions),
        "incremental_s": median,
        "incremental_max_s": max(incremental),
        "ratio": median / full_s,
    }


def report(kind: str, r: dict[str, float]) -> None:
    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    print(
        f"{kind:<11}full {r['full_s']:7.2f} s ({r['full_cpu_s']:.1f} s CPU in this process; "
        f"{int(r['commits'])} commits, {int(r['versions'])} versions, "
        f"{r['full_s'] / r['commits'] * 1000:.1f} ms/commit)"
    )
    print(
        f"{'':<11}incremental {r['incremental_s']:.3f} s median, {r['incremental_max_s']:.3f} s "
        f"max   ratio {r['ratio'] * 100:.2f} %"
    )
    print(
        f"{'':<11}targets: full <= {FULL_TARGET_S:g} s {verdict(r['full_s'] <= FULL_TARGET_S)}; "
        f"incremental <= {INCREMENTAL_TARGET_S:g} s "
        f"{verdict(r['incremental_s'] <= INCREMENTAL_TARGET_S)}; "
        f"<= {RATIO_TARGET:.0%} of full {verdict(r['ratio'] <= RATIO_TARGET)}"
    )


def main(argv: list[str] | None = None) -> int:
    """Generate the repository, run the benchmark on each database, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", type=int, default=1000)
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--incremental", type=int, default=5, help="incremental runs")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args(argv)

    kinds = ["sqlite"]
    if os.environ.get("PROMPTREG_TEST_POSTGRES_URL") and not args.sqlite_only:
        kinds.append("postgresql")
    else:
        print("PostgreSQL skipped: set PROMPTREG_TEST_POSTGRES_URL (.ci/run sets it)")
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        started = time.perf_counter()
        history, tick = make_repository(repo, args.features, args.commits, args.seed)
        print(
            f"repository: {args.features} features, {args.commits + 1} commits "
            f"(generated in {time.perf_counter() - started:.1f} s)"
        )
        print(f"cold start (catalog and tokenizers, once per process): {warm_up():.2f} s")
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"machine: {os.cpu_count()} CPUs, load average {load} (timings are wall clock)")
        for kind in kinds:
            report(kind, bench(kind, repo, history, tick, args.incremental))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
