"""The guards of a rollout: candidate against stable in the same window → pass, wait or abort.

The controller calls `judge` at the end of every interval with both arms' usage since the
step began, so each step's window is one growing sample looked at again and again. Each
guard therefore aborts only when an always-valid lower bound (sequential.py) says it is
broken, never on a point estimate: identical arms rarely abort however often we look,
and a real regression still shows within an interval or two.

Method per guard (a one-sided test of "the candidate is worse than the guard allows"):

error_rate_pp      the difference of error rates, candidate minus stable, in points, with
                   a confidence sequence on it (Waudby-Smith et al.'s asymptotic CS);
                   broken when its lower bound exceeds the limit. The variance uses each
                   arm's rate with one error and one success added (Agresti & Caffo 2000),
                   so an arm with no errors yet does not claim certainty.
p95_latency_ratio  a proportion test, not a ratio of two noisy percentiles: limit = ratio ×
                   stable's p95; broken when the lower bound of the share of candidate
                   calls slower than the limit is above 5%, i.e. the candidate's p95 is
                   above the limit. Stable's p95 is
                   itself estimated: by the delta method its noise adds 0.05·0.95/n_stable
                   to the variance of the share (exactly so when the candidate is the
                   stable distribution scaled by the ratio, the case on the boundary).
cost_ratio         the difference mean_c - ratio·mean_s with variances from each arm's sum
                   of squares; broken when its lower bound is above zero. Equivalently the
                   ratio's lower bound (Fieller) is above the limit, which is what the
                   reason shows. Zero variance (a fixed price) makes the bound the estimate.
drift_pct          a point estimate, checked once the arm has min_requests: drift comes
                   from the prompt and the tokenizer, not from chance, and the window's
                   token sums over hundreds of calls leave little noise to test for.

The alpha given to `judge` is split evenly over the active tested guards (Bonferroni), so
at each step the chance that any of them ever aborts a candidate that meets every limit
is at most alpha (asymptotically: variances are estimated from the window). Steps use
disjoint windows: a rollout of k judged steps aborts a compliant candidate with
probability at most k·alpha (pass alpha/k for a rollout-wide figure); identical arms sit
far inside every limit and abort much more rarely still (bench/rollout.py measures both).

Every bound is tightest when the smaller arm reaches min_requests, the first moment a
decision is allowed: low-traffic features get the sharpest test, high-traffic ones have
samples to spare. Statistics shared with `promptreg stats` come from the same functions:
errors are ERROR_OUTCOMES, p95 is `percentile` over the rollup's latency buckets.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from registry.outcomes import ERROR_OUTCOMES, NO_CALL
from registry.rollouts.sequential import boundary, tuned_time
from registry.usage.latency import bucket_bounds, percentile

GUARDS = ("error_rate_pp", "p95_latency_ratio", "cost_ratio", "drift_pct")  # report order
TESTED = GUARDS[:3]  # the guards that share alpha; drift is a point estimate
SLOW_SHARE = 0.05  # the share of calls above the 95th percentile
MAX_WAITS = 3  # intervals an arm may lack its minimum requests before the rollout aborts


@dataclass(frozen=True)
class ArmStats:
    """One arm's usage in the window."""

    requests: int  # calls reported (any outcome but "rejected": no call was made)
    errors: int  # outcomes error, timeout, degraded
    latency: Mapping[int, int] = field(default_factory=dict)  # rollup bucket -> count
    cost_sum: float = 0.0  # USD over the requests that have a cost
    cost_sq_sum: float = 0.0  # sum of squared per-request cost
    cost_n: int = 0
    drift_input_tokens: int = 0  # real input tokens of answered calls that had an estimate
    drift_estimated_tokens: int = 0  # their estimates

    @classmethod
    def from_outcomes(cls, outcomes: Mapping[str, int], **sums: Any) -> ArmStats:
        """An arm from counts per outcome (as rollups keep them) and the other sums."""
        requests = sum(n for outcome, n in outcomes.items() if outcome != NO_CALL)
        errors = sum(outcomes.get(outcome, 0) for outcome in ERROR_OUTCOMES)
        return cls(requests=requests, errors=errors, **sums)

    def __add__(self, other: ArmStats) -> ArmStats:
        """Both windows' usage, as one window."""
        return ArmStats(
            requests=self.requests + other.requests,
            errors=self.errors + other.errors,
            latency=dict(Counter(self.latency) + Counter(other.latency)),
            cost_sum=self.cost_sum + other.cost_sum,
            cost_sq_sum=self.cost_sq_sum + other.cost_sq_sum,
            cost_n=self.cost_n + other.cost_n,
            drift_input_tokens=self.drift_input_tokens + other.drift_input_tokens,
            drift_estimated_tokens=self.drift_estimated_tokens + other.drift_estimated_tokens,
        )

    @property
    def error_pct(self) -> float | None:
        """Errors per request, in percent."""
        return 100 * self.errors / self.requests if self.requests > 0 else None

    @property
    def p95_ms(self) -> float | None:
        """The 95th percentile latency, read from the histogram as `stats` reads it."""
        return percentile(self.latency, 95)

    @property
    def mean_cost(self) -> float | None:
        """Mean USD per request that has a cost."""
        return self.cost_sum / self.cost_n if self.cost_n > 0 else None

    @property
    def drift_pct(self) -> float | None:
        """How far real input tokens exceed the estimate (negative: below it), in percent."""
        estimated = self.drift_estimated_tokens
        diff = self.drift_input_tokens - estimated
        return 100 * diff / estimated if estimated > 0 else None

    def cost_variance(self) -> float:
        """The sample variance of the per-request cost (0 below two costs)."""
        n = self.cost_n
        if n < 2:
            return 0.0
        return max(0.0, (self.cost_sq_sum - self.cost_sum**2 / n) / (n - 1))

    def as_dict(self) -> dict[str, Any]:
        """The figures a verdict reports for this arm."""
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_pct": _round(self.error_pct, 3),
            "p95_ms": _round(self.p95_ms, 1),
            "mean_cost_usd": _round(self.mean_cost, 8),
            "drift_pct": _round(self.drift_pct, 2),
        }


@dataclass(frozen=True)
class GuardConfig:
    """The policy's `rollout.guards`; None turns a guard off."""

    error_rate_pp: float | None = None
    p95_latency_ratio: float | None = None
    cost_ratio: float | None = None
    drift_pct: float | None = None

    def active(self) -> tuple[str, ...]:
        """The guards that are on, in report order."""
        return tuple(name for name in GUARDS if getattr(self, name) is not None)


@dataclass(frozen=True)
class Verdict:
    """What the guards decide about one window."""

    decision: Literal["pass", "wait", "abort"]
    guard: str | None  # the guard that broke, for an abort
    reason: str  # one sentence: both arms' requests and guarded values
    numbers: dict[str, Any]  # JSON-able: per-arm figures and each guard's bound


@dataclass(frozen=True)
class _Check:
    name: str
    broken: bool
    sentence: str  # "<guard>: <both arms>; <bound> > or <= <limit>"
    numbers: dict[str, Any]


_Guard = Callable[[ArmStats, ArmStats, float, float, float], _Check | None]


def judge(
    stable: ArmStats,
    candidate: ArmStats,
    guards: GuardConfig,
    *,
    min_requests: int,
    alpha: float = 0.01,
) -> Verdict:
    """Pass, wait (an arm under min_requests) or abort (the first broken guard, in order)."""
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha {alpha} must be between 0 and 0.5")
    need = max(min_requests, 1)
    numbers: dict[str, Any] = {
        "stable": stable.as_dict(),
        "candidate": candidate.as_dict(),
        "min_requests": min_requests,
        "alpha": alpha,
        "guards": {},
    }
    if candidate.requests < need or stable.requests < need:
        reason = (
            f"waiting for data: candidate {candidate.requests:,} requests, stable "
            f"{stable.requests:,}; each arm needs {need:,}"
        )
        return Verdict("wait", None, reason, numbers)

    active = guards.active()
    tested = [name for name in active if name in TESTED]
    share = alpha / max(len(tested), 1)
    numbers["alpha_per_guard"] = share
    checks = []
    for name in active:
        check = _GUARDS[name](stable, candidate, getattr(guards, name), share, need)
        if check is None:
            numbers["guards"][name] = {"limit": getattr(guards, name), "bound": None}
            continue
        numbers["guards"][name] = check.numbers
        checks.append(check)
    for check in checks:
        if check.broken:
            return Verdict("abort", check.name, check.sentence, numbers)
    if not active:
        return Verdict("pass", None, "no guard is set", numbers)
    held = "; ".join(check.sentence for check in checks) or "no guard had data to judge"
    return Verdict("pass", None, f"every guard holds: {held}", numbers)


def _error_rate(
    stable: ArmStats, candidate: ArmStats, limit: float, alpha: float, n_opt: float
) -> _Check | None:
    def adjusted_variance(arm: ArmStats) -> float:
        rate = (arm.errors + 1) / (arm.requests + 2)
        return rate * (1 - rate) / arm.requests

    rate_c, rate_s = candidate.errors / candidate.requests, stable.errors / stable.requests
    diff = 100 * (rate_c - rate_s)
    std_error = 100 * math.sqrt(adjusted_variance(candidate) + adjusted_variance(stable))
    r = tuned_time(min(candidate.requests, stable.requests), n_opt, alpha)
    bound = diff - boundary(r, alpha) * std_error
    broken = bound > limit
    sentence = (
        f"error_rate_pp: candidate {100 * rate_c:.1f}% ({candidate.requests:,} requests) vs "
        f"stable {100 * rate_s:.1f}% ({stable.requests:,}); lower bound of the difference "
        f"{bound:.2f} points {'>' if broken else '<='} {limit:g}"
    )
    return _Check(
        "error_rate_pp",
        broken,
        sentence,
        {"limit": limit, "estimate": _round(diff, 4), "bound": _round(bound, 4)},
    )


def _p95_latency(
    stable: ArmStats, candidate: ArmStats, ratio: float, alpha: float, n_opt: float
) -> _Check | None:
    p95_s, p95_c = stable.p95_ms, candidate.p95_ms
    n_s, n_c = sum(stable.latency.values()), sum(candidate.latency.values())
    if p95_s is None or p95_c is None or n_s <= 0 or n_c <= 0:
        return None
    limit_ms = ratio * p95_s
    slower = _count_above(candidate.latency, limit_ms)
    adjusted = (slower + 1) / (n_c + 2)
    std_error = math.sqrt(adjusted * (1 - adjusted) / n_c + SLOW_SHARE * (1 - SLOW_SHARE) / n_s)
    r = tuned_time(min(n_c, n_s), n_opt, alpha)
    bound = slower / n_c - boundary(r, alpha) * std_error
    broken = bound > SLOW_SHARE
    sentence = (
        f"p95_latency_ratio: candidate p95 {p95_c:,.0f} ms ({candidate.requests:,} requests) "
        f"vs stable {p95_s:,.0f} ms ({stable.requests:,}), {p95_c / p95_s:.2f}×; lower bound "
        f"of the share of candidate calls slower than {ratio:g} × stable's p95 "
        f"({limit_ms:,.0f} ms) {100 * bound:.1f}% {'>' if broken else '<='} 5%"
    )
    return _Check(
        "p95_latency_ratio",
        broken,
        sentence,
        {
            "limit": ratio,
            "estimate": _round(p95_c / p95_s, 4),
            "limit_ms": _round(limit_ms, 1),
            "slower_pct": _round(100 * slower / n_c, 3),
            "bound": _round(100 * bound, 3),
        },
    )


def _cost(
    stable: ArmStats, candidate: ArmStats, ratio: float, alpha: float, n_opt: float
) -> _Check | None:
    mean_s, mean_c = stable.mean_cost, candidate.mean_cost
    if mean_s is None or mean_c is None or stable.cost_n < 2 or candidate.cost_n < 2:
        return None
    # A sum of squares below sum²/n is impossible (Cauchy-Schwarz): the window lacks it,
    # and judging without a variance would be the naive threshold this module avoids.
    if not (_has_squares(stable) and _has_squares(candidate)):
        sentence = "cost_ratio: not judged, the window has no sum of squared costs"
        return _Check("cost_ratio", False, sentence, {"limit": ratio, "bound": None})
    var_c = candidate.cost_variance() / candidate.cost_n
    var_s = stable.cost_variance() / stable.cost_n
    z = boundary(tuned_time(min(candidate.cost_n, stable.cost_n), n_opt, alpha), alpha)
    diff_bound = mean_c - ratio * mean_s - z * math.sqrt(var_c + ratio**2 * var_s)
    broken = diff_bound > 0
    # The same test read as a ratio (Fieller): the root k of mean_c - k·mean_s =
    # z·sqrt(var_c + k²·var_s); defined when stable's mean is clearly above zero.
    denominator = mean_s**2 - z**2 * var_s
    ratio_bound = None
    if denominator > 0:
        spread = mean_c**2 * var_s + mean_s**2 * var_c - z**2 * var_c * var_s
        ratio_bound = (mean_c * mean_s - z * math.sqrt(max(spread, 0.0))) / denominator
    if ratio_bound is not None:
        shown = f"lower bound of the ratio {ratio_bound:.3f}"
        against = f"{ratio:g}"
    else:
        shown = f"lower bound of candidate - {ratio:g} × stable {_usd(diff_bound)}"
        against = "0"
    estimate = mean_c / mean_s if mean_s > 0 else None
    sentence = (
        f"cost_ratio: candidate {_usd(mean_c)} per request ({candidate.cost_n:,} requests) vs "
        f"stable {_usd(mean_s)} ({stable.cost_n:,})"
        + (f", {estimate:.2f}×" if estimate is not None else "")
        + f"; {shown} {'>' if broken else '<='} {against}"
    )
    return _Check(
        "cost_ratio",
        broken,
        sentence,
        {
            "limit": ratio,
            "estimate": _round(estimate, 4),
            "bound": _round(ratio_bound, 4),
            "difference_bound_usd": _round(diff_bound, 8),
        },
    )


def _has_squares(arm: ArmStats) -> bool:
    return arm.cost_sq_sum >= arm.cost_sum**2 / arm.cost_n * (1 - 1e-9)


def _drift(
    stable: ArmStats, candidate: ArmStats, limit: float, alpha: float, n_opt: float
) -> _Check | None:
    drift = candidate.drift_pct
    if drift is None:
        return None
    broken = drift > limit
    on_stable = stable.drift_pct
    stable_text = "no estimate" if on_stable is None else f"{_signed(on_stable)}%"
    sentence = (
        f"drift_pct: candidate input tokens {_signed(drift)}% against its own estimate "
        f"({candidate.requests:,} requests; stable {stable_text}, {stable.requests:,}) "
        f"{'>' if broken else '<='} {limit:g}%"
    )
    return _Check("drift_pct", broken, sentence, {"limit": limit, "bound": _round(drift, 3)})


_GUARDS: dict[str, _Guard] = {
    "error_rate_pp": _error_rate,
    "p95_latency_ratio": _p95_latency,
    "cost_ratio": _cost,
    "drift_pct": _drift,
}


def _count_above(histogram: Mapping[int, int], limit_ms: float) -> float:
    """Calls slower than `limit_ms`, spreading each bucket evenly as `percentile` does."""
    above = 0.0
    for bucket, count in histogram.items():
        low, high = bucket_bounds(bucket)
        if low >= limit_ms:
            above += count
        elif high > limit_ms:
            above += count * (high - limit_ms) / (high - low)
    return above


def _round(value: float | None, digits: int) -> float | None:
    """A JSON-able figure: rounded, None when undefined or not finite."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def _signed(value: float) -> str:
    return f"{round(value, 1) or 0.0:+.1f}"  # never "-0.0"


def _usd(value: float) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):.4g}"
