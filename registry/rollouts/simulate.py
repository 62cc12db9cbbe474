"""A rollout replayed on synthetic traffic: at which step and minute the guards would abort.

Behind `promptreg rollout simulate` (choose thresholds before trusting them) and
bench/rollout.py (how often the guards abort identical arms, how fast they catch a
regression). Each interval draws both arms' usage for `rps × interval` requests split by
the step's percent, then calls the same `judge` the controller calls, on the window since
the step began, exactly as the controller does: below min_requests it waits up to
`max_waits` more intervals, then aborts.

Drawing 100,000 requests one by one per interval would take seconds per rollout, so each
window is drawn as counts: the number of errors is binomial, and latency and cost are
multinomial counts over log-spaced buckets (latency on the rollup's own buckets, so
`percentile` reads them as it reads real rollups; cost on the same scale in micro-dollars,
from which the sums and sums of squares follow). Counts far from the tails use a normal
approximation of the binomial. Only stdlib `random`, seeded: a seed gives the same result
on any machine.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from registry.rollouts.guards import MAX_WAITS, ArmStats, GuardConfig, Verdict, judge
from registry.usage.latency import bucket_bounds, latency_bucket

Judge = Callable[..., Verdict]  # judge(stable, candidate, guards, *, min_requests, alpha)

_NORMAL_ABOVE = 50.0  # variance from which a count is drawn from the normal approximation
_TAIL_SIGMAS = 6.0  # buckets drawn around the median; the mass beyond goes to the ends
_MICRO_USD = 1e6
_TOKEN_SPREAD = 0.5  # per-call input tokens: standard deviation / mean
_COUNT_SPREAD = 0.02  # per-call real tokens around estimate × (1 + drift)


@dataclass(frozen=True)
class ArmProfile:
    """How one version behaves: error rate, lognormal latency and cost, token drift."""

    error_rate: float = 0.01  # share of calls that end in error, timeout or degraded
    latency_median_ms: float = 800.0
    latency_sigma: float = 0.6  # of log latency: p95 ≈ 2.7 × median
    cost_median_usd: float = 0.002
    cost_sigma: float = 1.0  # of log cost: prompts of very different lengths
    input_tokens: float = 1500.0  # mean estimated input tokens per call
    drift_pct: float = 0.0  # real input tokens above the estimate

    def regressed(
        self,
        *,
        error_rate: float | None = None,
        latency: float = 1.0,
        cost: float = 1.0,
        drift_pct: float | None = None,
    ) -> ArmProfile:
        """This profile with another error rate, latency and cost scaled, another drift."""
        return ArmProfile(
            error_rate=self.error_rate if error_rate is None else error_rate,
            latency_median_ms=self.latency_median_ms * latency,
            latency_sigma=self.latency_sigma,
            cost_median_usd=self.cost_median_usd * cost,
            cost_sigma=self.cost_sigma,
            input_tokens=self.input_tokens,
            drift_pct=self.drift_pct if drift_pct is None else drift_pct,
        )


@dataclass(frozen=True)
class Traffic:
    """Requests per second and both arms' behaviour (the candidate like stable by default)."""

    rps: float
    stable: ArmProfile = field(default_factory=ArmProfile)
    candidate: ArmProfile | None = None

    @property
    def candidate_profile(self) -> ArmProfile:
        """The candidate's behaviour."""
        return self.stable if self.candidate is None else self.candidate


@dataclass(frozen=True)
class Plan:
    """The policy's `rollout` section, as the controller follows it."""

    guards: GuardConfig
    steps: tuple[int, ...] = (5, 25, 50, 100)
    interval_s: float = 600.0
    min_requests: int = 200
    max_waits: int = MAX_WAITS  # intervals a step may wait for min_requests before aborting
    alpha: float = 0.01


@dataclass(frozen=True)
class Look:
    """One decision at the end of an interval."""

    minute: float  # since the rollout started
    step: int  # 1-based
    percent: int
    verdict: Verdict


@dataclass(frozen=True)
class SimulationResult:
    """Where the rollout would abort, or that it completes, with every look on the way."""

    plan: Plan
    traffic: Traffic
    seed: int
    outcome: Literal["completed", "aborted"]
    guard: str | None  # the broken guard, or "min_requests" after too many waits
    reason: str
    looks: tuple[Look, ...]

    @property
    def aborted(self) -> bool:
        """Whether the rollout stopped before the last step."""
        return self.outcome == "aborted"

    @property
    def step(self) -> int | None:
        """The 1-based step it aborted at."""
        return self.looks[-1].step if self.aborted else None

    @property
    def percent(self) -> int | None:
        """The percent of the step it aborted at."""
        return self.looks[-1].percent if self.aborted else None

    @property
    def minute(self) -> float | None:
        """Minutes from the start to the abort."""
        return self.looks[-1].minute if self.aborted else None

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON data (`rollout simulate --json`)."""
        return {
            "outcome": self.outcome,
            "guard": self.guard,
            "reason": self.reason,
            "step": self.step,
            "percent": self.percent,
            "minute": self.minute,
            "seed": self.seed,
            "looks": [
                {
                    "minute": look.minute,
                    "step": look.step,
                    "percent": look.percent,
                    "decision": look.verdict.decision,
                    "guard": look.verdict.guard,
                    "reason": look.verdict.reason,
                }
                for look in self.looks
            ],
        }

    def describe(self) -> str:
        """One paragraph: the traffic, the plan, and what the guards did."""
        plan, stable, cand = self.plan, self.traffic.stable, self.traffic.candidate_profile
        steps = " → ".join(str(p) for p in plan.steps)
        drift = f", drift {cand.drift_pct:+g}%" if cand.drift_pct != stable.drift_pct else ""
        setting = (
            f"At {self.traffic.rps:,g} requests/s with the candidate at "
            f"{100 * cand.error_rate:.3g}% errors (stable {100 * stable.error_rate:.3g}%), "
            f"{cand.latency_median_ms / stable.latency_median_ms:.3g}× latency and "
            f"{cand.cost_median_usd / stable.cost_median_usd:.3g}× cost{drift}, "
            f"steps {steps}% every {_duration(plan.interval_s)} (min_requests "
            f"{plan.min_requests:,}, seed {self.seed})"
        )
        waits = sum(1 for look in self.looks if look.verdict.decision == "wait")
        spent = f"{len(self.looks)} interval{'s' * (len(self.looks) != 1)}, {waits} waiting"
        if not self.aborted:
            held = ", ".join(
                f"{look.percent}%" for look in self.looks if look.verdict.decision == "pass"
            )
            return (
                f"{setting}, the rollout completes after "
                f"{_duration(len(self.looks) * plan.interval_s)}: every guard held at "
                f"{held or 'no step'} ({spent})."
            )
        assert self.minute is not None
        return (
            f"{setting}, the rollout aborts at step {self.step} ({self.percent}%) after "
            f"{_duration(self.minute * 60)} ({spent}): {self.reason}"
        )


def simulate(plan: Plan, traffic: Traffic, seed: int, *, judge: Judge = judge) -> SimulationResult:
    """Replay the plan's steps on synthetic traffic through `judge` (the guards by default)."""
    if any(not 0 < percent <= 100 for percent in plan.steps):
        raise ValueError(f"steps {plan.steps} must be percents in 1..100")
    rng = random.Random(seed)
    looks: list[Look] = []

    def ended(
        outcome: Literal["completed", "aborted"], guard: str | None, reason: str
    ) -> SimulationResult:
        return SimulationResult(plan, traffic, seed, outcome, guard, reason, tuple(looks))

    for step, percent in enumerate(plan.steps, 1):
        if percent == 100:
            break  # the candidate takes every request: the rollout is complete
        stable = candidate = ArmStats(requests=0, errors=0)
        for _ in range(plan.max_waits + 1):
            total = _poisson(rng, traffic.rps * plan.interval_s)
            on_candidate = _binomial(rng, total, percent / 100)
            candidate += _window(rng, traffic.candidate_profile, on_candidate)
            stable += _window(rng, traffic.stable, total - on_candidate)
            verdict = judge(
                stable, candidate, plan.guards, min_requests=plan.min_requests, alpha=plan.alpha
            )
            minute = (len(looks) + 1) * plan.interval_s / 60
            looks.append(Look(minute, step, percent, verdict))
            if verdict.decision == "abort":
                return ended("aborted", verdict.guard, verdict.reason)
            if verdict.decision == "pass":
                break
        else:
            return ended(
                "aborted",
                "min_requests",
                f"min_requests: after {plan.max_waits + 1} intervals at {percent}% the candidate "
                f"has {candidate.requests:,} requests and stable {stable.requests:,}; each arm "
                f"needs {plan.min_requests:,}",
            )
    return ended("completed", None, "every guard held at every step")


def _window(rng: random.Random, arm: ArmProfile, requests: int) -> ArmStats:
    """One arm's usage for `requests` calls in one interval."""
    if requests <= 0:
        return ArmStats(requests=0, errors=0)
    errors = _binomial(rng, requests, arm.error_rate)
    buckets, probabilities = _lognormal_buckets(arm.latency_median_ms, arm.latency_sigma)
    latency = _multinomial(rng, requests, buckets, probabilities)
    # Cost on the same log scale in micro-dollars; each bucket's calls cost its midpoint.
    buckets, probabilities = _lognormal_buckets(arm.cost_median_usd * _MICRO_USD, arm.cost_sigma)
    cost_sum = cost_sq_sum = 0.0
    for bucket, count in _multinomial(rng, requests, buckets, probabilities).items():
        low, high = bucket_bounds(bucket)
        usd = math.sqrt(max(low, 0.5) * high) / _MICRO_USD
        cost_sum += count * usd
        cost_sq_sum += count * usd * usd
    answered = requests - errors
    estimated = answered * arm.input_tokens
    spread = math.sqrt(answered) * arm.input_tokens
    estimated = max(0.0, rng.gauss(estimated, _TOKEN_SPREAD * spread))
    real = max(0.0, rng.gauss(estimated * (1 + arm.drift_pct / 100), _COUNT_SPREAD * spread))
    return ArmStats(
        requests=requests,
        errors=errors,
        latency=latency,
        cost_sum=cost_sum,
        cost_sq_sum=cost_sq_sum,
        cost_n=requests,
        drift_input_tokens=round(real),
        drift_estimated_tokens=round(estimated),
    )


@lru_cache(maxsize=256)
def _lognormal_buckets(median: float, sigma: float) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The rollup buckets within ±6σ of a lognormal's median, and each one's probability."""
    first = latency_bucket(median * math.exp(-_TAIL_SIGMAS * sigma))
    last = latency_bucket(median * math.exp(_TAIL_SIGMAS * sigma))
    buckets = tuple(range(first, last + 1))
    log_median = math.log(median)

    def below(ms: float) -> float:
        if ms <= 0:
            return 0.0
        return 0.5 * math.erfc(-(math.log(ms) - log_median) / (sigma * math.sqrt(2)))

    edges = [0.0] + [bucket_bounds(b)[1] for b in buckets[:-1]] + [math.inf]
    cdf = [below(edge) if math.isfinite(edge) else 1.0 for edge in edges]
    return buckets, tuple(cdf[i + 1] - cdf[i] for i in range(len(buckets)))


def _multinomial(
    rng: random.Random, n: int, buckets: tuple[int, ...], probabilities: tuple[float, ...]
) -> dict[int, int]:
    """n draws over buckets, as a chain of binomials on what is left."""
    counts: dict[int, int] = {}
    left, mass = n, 1.0
    for bucket, p in zip(buckets, probabilities, strict=True):
        if left <= 0:
            break
        drawn = left if mass <= p else _binomial(rng, left, p / mass)
        if drawn:
            counts[bucket] = drawn
        left -= drawn
        mass -= p
    return counts


def _binomial(rng: random.Random, n: int, p: float) -> int:
    """A Binomial(n, p) count: by inversion when small, from the normal approximation else."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - _binomial(rng, n, 1.0 - p)
    mean, variance = n * p, n * p * (1.0 - p)
    if variance > _NORMAL_ABOVE:
        return min(n, max(0, round(rng.gauss(mean, math.sqrt(variance)))))
    ratio = p / (1.0 - p)
    prob = math.exp(n * math.log1p(-p))
    u, k, cdf = rng.random(), 0, prob
    while u > cdf and k < n:
        prob *= ratio * (n - k) / (k + 1)
        k += 1
        cdf += prob
    return k


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson(mean) count: by inversion when small, from the normal approximation else."""
    if mean <= 0.0:
        return 0
    if mean > _NORMAL_ABOVE:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    prob = math.exp(-mean)
    u, k, cdf = rng.random(), 0, prob
    while u > cdf:
        k += 1
        prob *= mean / k
        cdf += prob
    return k


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:.3g} h"
