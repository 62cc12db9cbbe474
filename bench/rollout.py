"""Guarded rollouts: how often the guards abort a harmless candidate, how fast a bad one.

    python bench/rollout.py                      # every section
    python bench/rollout.py --rollouts 200       # quicker, noisier figures
    python bench/rollout.py --section live       # only the live servers and databases

Statistics (SPEC §10): 1,000 simulated rollouts per line, each replayed through
`registry.rollouts.simulate` with the policy example's guards (error_rate_pp 2,
p95_latency_ratio 1.3, cost_ratio 1.2, drift_pct 25), steps 5 → 25 → 50 → 100, interval
10m, alpha 0.01. Traffic: 1% errors, lognormal latency (median 800 ms, p95 ≈ 2.1 s) and
cost (median $0.002, heavy-tailed: σ = 1 in log space).
- Identical arms: false aborts (goal <= 1%), at 200 requests/s and on small canaries.
  Baseline, on the same seeded traffic: a Flagger-style fixed threshold, the point
  estimates compared with the same limits at the same looks, without a confidence bound.
- +5-point error regression (1% → 6%) and 1.3× cost regression, 200 requests/s,
  min_requests 200: share caught within two intervals (goal >= 95%).
- Candidate exactly at every limit (+2 points, 1.3× latency, 1.2× cost): the worst case
  the error rate is promised for; aborts must stay under judged steps × alpha = 3%.

Seeded: rollout i uses seed i, so the figures reproduce. Prints figures; exits 0 whatever
they are.

Live (bench/rollout_live.py, whose docstring has the details): a candidate erroring at 10%
against 1% under 200 requests/s over two `promptreg serve` replicas on SQLite, usage posted
in batches: candidate requests served before the abort (goal <= the first step's share of
one interval plus 1 s of traffic) and the time from the interval's end to every replica
serving stable (goal <= 1 s); and stats, guards and GET …/stats over rollups summing to
100 M events against 1 M (the same speed: a ratio near 1).
"""

from __future__ import annotations

import argparse
import statistics as stats
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from registry.rollouts.guards import ArmStats, GuardConfig, Verdict, judge
from registry.rollouts.simulate import ArmProfile, Plan, SimulationResult, Traffic, simulate

GUARDS = GuardConfig(error_rate_pp=2, p95_latency_ratio=1.3, cost_ratio=1.2, drift_pct=25)
PLAN = Plan(GUARDS, steps=(5, 25, 50, 100), interval_s=600, min_requests=200, alpha=0.01)
STABLE = ArmProfile()
GOAL_FALSE_ABORTS = 1.0  # percent, at most
GOAL_CAUGHT = 95.0  # percent within two intervals, at least


def naive_judge(
    stable: ArmStats,
    candidate: ArmStats,
    guards: GuardConfig,
    *,
    min_requests: int,
    alpha: float = 0.01,
) -> Verdict:
    """Flagger-style: abort when a point estimate crosses its limit at any look."""
    if min(stable.requests, candidate.requests) < max(min_requests, 1):
        return Verdict("wait", None, "too few requests", {})
    checks: list[tuple[str, float | None, float | None, float | None]] = [
        ("error_rate_pp", guards.error_rate_pp, candidate.error_pct, stable.error_pct),
        ("p95_latency_ratio", guards.p95_latency_ratio, candidate.p95_ms, stable.p95_ms),
        ("cost_ratio", guards.cost_ratio, candidate.mean_cost, stable.mean_cost),
        ("drift_pct", guards.drift_pct, candidate.drift_pct, 0.0),
    ]
    for name, limit, value, reference in checks:
        if limit is None or value is None or reference is None:
            continue
        if name in ("error_rate_pp", "drift_pct"):
            broken = value - reference > limit
        else:
            broken = value > limit * reference
        if broken:
            return Verdict("abort", name, name, {})
    return Verdict("pass", None, "every estimate within its limit", {})


def run(
    traffic: Traffic, plan: Plan, rollouts: int, judge_with: Callable[..., Verdict] = judge
) -> list[SimulationResult]:
    """`rollouts` seeded simulations: rollout i uses seed i."""
    return [simulate(plan, traffic, seed, judge=judge_with) for seed in range(rollouts)]


def aborts(results: list[SimulationResult]) -> tuple[float, Counter[str]]:
    """Percent of rollouts aborted, and the count per guard."""
    by_guard = Counter(r.guard or "" for r in results if r.aborted)
    return 100 * sum(by_guard.values()) / len(results), by_guard


def caught(results: list[SimulationResult], intervals: int) -> tuple[float, float | None]:
    """Percent aborted by a guard within `intervals` looks, and the median abort minute."""
    hits = [
        r for r in results if r.aborted and r.guard != "min_requests" and len(r.looks) <= intervals
    ]
    minutes = [r.minute for r in results if r.aborted and r.minute is not None]
    return 100 * len(hits) / len(results), stats.median(minutes) if minutes else None


def _goal(met: bool) -> str:
    return "goal met" if met else "goal MISSED"


def _guards(by_guard: Counter[str]) -> str:
    return ", ".join(f"{g} {n}" for g, n in sorted(by_guard.items())) or "none"


def statistics(args: argparse.Namespace) -> None:
    """False aborts on identical arms; regressions caught; the candidate at the limits."""
    n = args.rollouts
    print(f"== statistics: {n:,} simulated rollouts per line, seeds 0..{n - 1} ==")
    print(f"guards {GUARDS}, steps {PLAN.steps}, interval 10m, alpha {PLAN.alpha}\n")

    print("identical arms: false aborts (goal <= 1%)")
    print(f"  {'traffic':<36} {'guards':>8} {'naive':>8}   aborts by guard (guards | naive)")
    small = Plan(GUARDS, steps=PLAN.steps, interval_s=600, min_requests=50, alpha=PLAN.alpha)
    for label, traffic, plan in (
        ("200 req/s, min_requests 200", Traffic(200), PLAN),
        ("10 req/s (300-call canary), min 200", Traffic(10), PLAN),
        ("2 req/s (60-call canary), min 50", Traffic(2), small),
    ):
        start = time.perf_counter()
        ours, by_ours = aborts(run(traffic, plan, n))
        naive, by_naive = aborts(run(traffic, plan, n, naive_judge))
        took = time.perf_counter() - start
        print(
            f"  {label:<36} {ours:>7.1f}% {naive:>7.1f}%   {_guards(by_ours)} | "
            f"{_guards(by_naive)}  ({_goal(ours <= GOAL_FALSE_ABORTS)}; {took:.1f} s)"
        )
    print()

    print("regressions: caught within two intervals (goal >= 95% at 200 req/s, min_requests 200)")
    print(f"  {'traffic':<50} {'<= 2':>7} {'at all':>7}  median abort   naive <= 2")
    for rps in (200, 10):
        for label, candidate in (
            ("errors 1% -> 6% (+5 points, limit 2)", STABLE.regressed(error_rate=0.06)),
            ("cost 1.3x (limit 1.2x)", STABLE.regressed(cost=1.3)),
            ("p95 latency 1.5x (limit 1.3x)", STABLE.regressed(latency=1.5)),
        ):
            traffic = Traffic(rps, STABLE, candidate)
            results = run(traffic, PLAN, n)
            within, median = caught(results, 2)
            ever, _ = caught(results, len(PLAN.steps) * (PLAN.max_waits + 1))
            naive, _ = caught(run(traffic, PLAN, n, naive_judge), 2)
            when = "never" if median is None else f"minute {median:g}"
            goal = f"  ({_goal(within >= GOAL_CAUGHT)})" if rps == 200 else ""
            print(
                f"  {f'{rps} req/s, {label}':<50} {within:>6.1f}% {ever:>6.1f}%  "
                f"{when:<14} {naive:>6.1f}%{goal}"
            )
    print()

    print("candidate exactly at every limit (aborts allowed: <= 3 judged steps x alpha = 3%)")
    edge = STABLE.regressed(error_rate=0.03, latency=1.3, cost=1.2)
    for label, traffic in (("200 req/s", Traffic(200, STABLE, edge)),):
        share, by_guard = aborts(run(traffic, PLAN, n))
        print(f"  {label:<38} {share:>6.1f}%  (by guard: {_guards(by_guard)})")


def live(args: argparse.Namespace) -> None:
    """A rollout against real servers: an abort under traffic; stats at 100 M events."""
    from rollout_live import live as run_live  # bench/ is on sys.path: this script's folder

    run_live(seed=args.seed)


SECTIONS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "statistics": statistics,
    "live": live,
}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections (all by default)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=1000, help="rollouts per line")
    parser.add_argument("--seed", type=int, default=1, help="seed of the live traffic")
    parser.add_argument(
        "--section", choices=sorted(SECTIONS), action="append", help="run only these sections"
    )
    args = parser.parse_args(argv)
    for name in args.section or list(SECTIONS):
        SECTIONS[name](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
