"""Start-up time of what users touch most, and what each install adds to a virtual env.

    python bench/startup.py [--runs 7] [--skip-install]

Every figure is a ratio to `python -c pass` in the same run (this interpreter), so a
slow or busy machine moves both sides alike. Runs are interleaved: each round runs every
command once, in a shuffled order, and the medians of the rounds are compared.

Measured, on the demo registry of this repository (SPEC §9 targets in brackets):
- `promptreg --help` and `promptreg rollback --help` [<= 15x]
- `promptreg validate` of the demo registry [<= 60x]
- `python -c "import registry.client"` [<= 10x]
- the client's first `run` in a fresh process: import, a `Registry` started from a
  snapshot file of the demo, render, token count (the tokenizer load included), a
  scripted model call, the result [<= 25x]

Then (unless --skip-install) the wheel built from this checkout is installed into fresh
virtual environments: core alone [adds <= 60 MB to site-packages], and `[server]`.
Exits 0 whatever the figures: timing noise must not fail a build.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CORE_LIMIT_MB = 60

FIRST_RUN = """
import sys
from registry.client import Registry
reg = Registry(None, snapshot=sys.argv[1], report_usage=False)
result = reg.run(
    "support.classify",
    {"message": "I was charged twice this month", "channel": "email"},
    call=lambda model, messages, params, max_output_tokens, stream, timeout: "billing",
)
assert result.text == "billing" and not result.degraded, result
"""


def _timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _snapshot(folder: Path, env: dict[str, str]) -> Path:
    """Sync the demo registry into a throwaway database and export it for the client."""
    db = f"sqlite:///{folder / 'bench.db'}"
    promptreg = str(BIN / "promptreg")
    subprocess.run(
        [promptreg, "sync", "--repo", str(ROOT), "--no-history", "--database-url", db],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    out = folder / "snapshot.json"
    subprocess.run(
        [promptreg, "export", "--out", str(out), "--database-url", db],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return out


def startup(runs: int) -> None:
    """Print the medians and ratios of the start-up commands."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTREG_")}
    with tempfile.TemporaryDirectory(prefix="promptreg-startup-") as tmp:
        folder = Path(tmp)
        snapshot = _snapshot(folder, env)
        python, promptreg = str(BIN / "python"), str(BIN / "promptreg")
        commands: dict[str, tuple[list[str], float | None]] = {
            "python -c pass": ([python, "-c", "pass"], None),
            "promptreg --help": ([promptreg, "--help"], 15),
            "promptreg rollback --help": ([promptreg, "rollback", "--help"], 15),
            "promptreg validate (demo)": ([promptreg, "validate", str(ROOT)], 60),
            "import registry.client": ([python, "-c", "import registry.client"], 10),
            "client: first run": ([python, "-c", FIRST_RUN, str(snapshot)], 25),
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for argv, _ in commands.values():  # warm the file cache once
            _timed(argv, folder, env)
        order = list(commands)
        for _ in range(runs):
            random.shuffle(order)
            for name in order:
                times[name].append(_timed(commands[name][0], folder, env))
    base = statistics.median(times["python -c pass"])
    print(f"start-up, medians of {runs} interleaved runs (ratio to `python -c pass`)")
    print(f"{'command':32} {'median':>9} {'ratio':>7} {'target':>7}")
    for name, (_, target) in commands.items():
        median = statistics.median(times[name])
        ratio = median / base
        mark = "" if target is None else ("ok" if ratio <= target else "OVER")
        goal = "" if target is None else f"<= {target}x"
        print(f"{name:32} {median * 1000:7.0f}ms {ratio:6.1f}x {goal:>7} {mark}")


def _site_size(env_dir: Path) -> int:
    (site,) = env_dir.glob("lib/python*/site-packages")
    return sum(p.stat().st_size for p in site.rglob("*") if p.is_file() and not p.is_symlink())


def install_sizes() -> None:
    """Print what the core install and `[server]` add to a fresh virtual environment."""
    with tempfile.TemporaryDirectory(prefix="promptreg-install-") as tmp:
        folder = Path(tmp)
        sys.path.insert(0, str(ROOT / "tests"))
        from test_packaging import build_wheel

        wheel = build_wheel(folder)
        constraints = str(ROOT / "constraints.txt")
        sizes: dict[str, int] = {}
        for name, spec in (("core", str(wheel)), ("server", f"{wheel}[server]")):
            env_dir = folder / name
            venv.EnvBuilder(with_pip=True).create(env_dir)
            empty = _site_size(env_dir)
            subprocess.run(
                [
                    str(env_dir / "bin/python"),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "-c",
                    constraints,
                    spec,
                ],
                check=True,
            )
            sizes[name] = _site_size(env_dir) - empty
            shutil.rmtree(env_dir)
    mb = {name: size / 1e6 for name, size in sizes.items()}
    verdict = "ok" if mb["core"] <= CORE_LIMIT_MB else "OVER"
    print("\nwhat an install adds to a fresh venv's site-packages")
    core, limit = mb["core"], CORE_LIMIT_MB
    print(f"  pip install promptreg            {core:6.1f} MB  (<= {limit} MB {verdict})")
    print(f"  pip install 'promptreg[server]'  {mb['server']:6.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="rounds of every command (>= 5)")
    parser.add_argument("--skip-install", action="store_true", help="skip the install sizes")
    args = parser.parse_args()
    startup(max(args.runs, 5))
    if not args.skip_install:
        install_sizes()


if __name__ == "__main__":
    main()
