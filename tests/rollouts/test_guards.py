"""The guards: identical arms pass however often we look; regressions abort, naming both arms."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest

from registry.rollouts.guards import ArmStats, GuardConfig, judge
from registry.usage.rollup import latency_bucket, percentile

ALL = GuardConfig(error_rate_pp=2, p95_latency_ratio=1.3, cost_ratio=1.2, drift_pct=25)


def draw(
    rng: random.Random,
    requests: int,
    *,
    error_rate: float = 0.01,
    latency: float = 1.0,
    cost: float = 1.0,
    drift: float = 0.0,
) -> ArmStats:
    """One arm's usage, call by call: lognormal latency around 800 ms and cost around $0.002."""
    histogram: dict[int, int] = {}
    cost_sum = cost_sq_sum = 0.0
    errors = 0
    for _ in range(requests):
        bucket = latency_bucket(800 * latency * rng.lognormvariate(0, 0.6))
        histogram[bucket] = histogram.get(bucket, 0) + 1
        usd = 0.002 * cost * rng.lognormvariate(0, 1)
        cost_sum += usd
        cost_sq_sum += usd * usd
        errors += rng.random() < error_rate
    estimated = 1000 * (requests - errors)
    return ArmStats(
        requests=requests,
        errors=errors,
        latency=histogram,
        cost_sum=cost_sum,
        cost_sq_sum=cost_sq_sum,
        cost_n=requests,
        drift_input_tokens=round(estimated * (1 + drift)),
        drift_estimated_tokens=estimated,
    )


def fixed(requests: int, *, errors: int = 0, ms: float = 800, usd: float = 0.002) -> ArmStats:
    """An arm where every call took `ms` and cost `usd`, with no drift."""
    return ArmStats(
        requests=requests,
        errors=errors,
        latency={latency_bucket(ms): requests},
        cost_sum=usd * requests,
        cost_sq_sum=usd * usd * requests,
        cost_n=requests,
        drift_input_tokens=1000 * requests,
        drift_estimated_tokens=1000 * requests,
    )


def test_identical_arms_pass_however_often_we_look() -> None:
    rng = random.Random(20240611)
    aborts = looks = 0
    for _ in range(40):  # rollouts, each looked at 25 times as its window grows
        stable = candidate = ArmStats(requests=0, errors=0)
        for _ in range(25):
            stable += draw(rng, 200)
            candidate += draw(rng, 20)
            verdict = judge(stable, candidate, ALL, min_requests=50)
            looks += verdict.decision != "wait"
            if verdict.decision == "abort":
                aborts += 1
                break
    assert looks > 800
    assert aborts == 0


def test_a_clear_error_regression_aborts_and_names_the_guard_and_both_arms() -> None:
    stable, candidate = fixed(57_210, errors=572), fixed(3_012, errors=184)
    verdict = judge(stable, candidate, ALL, min_requests=200)
    assert (verdict.decision, verdict.guard) == ("abort", "error_rate_pp")
    assert verdict.reason.startswith("error_rate_pp: candidate 6.1% (3,012 requests)")
    assert "stable 1.0% (57,210)" in verdict.reason
    assert "> 2" in verdict.reason
    bound = verdict.numbers["guards"]["error_rate_pp"]["bound"]
    assert 2 < bound < 5.1  # a lower bound: above the limit, below the estimate


def test_a_small_excess_on_a_small_canary_is_not_enough_to_abort() -> None:
    # 3.5 points over stable on 200 calls: over the limit by the estimate, not by the bound.
    verdict = judge(fixed(4_000, errors=40), fixed(200, errors=9), ALL, min_requests=200)
    assert verdict.decision == "pass"
    assert verdict.numbers["guards"]["error_rate_pp"]["estimate"] == pytest.approx(3.5)


@pytest.mark.parametrize(("stable", "candidate"), [(5_000, 199), (199, 5_000), (0, 0)])
def test_too_few_requests_on_either_arm_waits(stable: int, candidate: int) -> None:
    verdict = judge(fixed(stable), fixed(candidate, errors=candidate), ALL, min_requests=200)
    assert (verdict.decision, verdict.guard) == ("wait", None)
    assert "200" in verdict.reason


def test_exactly_min_requests_is_judged() -> None:
    verdict = judge(fixed(200), fixed(200), ALL, min_requests=200)
    assert verdict.decision == "pass"
    assert verdict.reason.startswith("every guard holds")


def broken_on(guard: str) -> ArmStats:
    """A candidate far past the one guard's limit, within every other one."""
    base = fixed(5_000)
    if guard == "error_rate_pp":
        return replace(base, errors=1_000)
    if guard == "p95_latency_ratio":
        return fixed(5_000, ms=2_000)
    if guard == "cost_ratio":
        return fixed(5_000, usd=0.004)
    return replace(base, drift_input_tokens=base.drift_estimated_tokens * 2)


@pytest.mark.parametrize("guard", ALL.active())
def test_each_guard_aborts_alone_and_is_off_when_none(guard: str) -> None:
    stable, candidate = fixed(50_000), broken_on(guard)
    only = GuardConfig(**{guard: getattr(ALL, guard)})
    verdict = judge(stable, candidate, only, min_requests=200)
    assert (verdict.decision, verdict.guard) == ("abort", guard)
    assert verdict.reason.startswith(f"{guard}: ")
    assert "5,000" in verdict.reason and "50,000" in verdict.reason

    others = replace(ALL, **{guard: None})
    verdict = judge(stable, candidate, others, min_requests=200)
    assert verdict.decision == "pass"
    assert guard not in verdict.numbers["guards"]


def test_no_guard_set_passes() -> None:
    verdict = judge(fixed(5_000), broken_on("cost_ratio"), GuardConfig(), min_requests=200)
    assert (verdict.decision, verdict.reason) == ("pass", "no guard is set")


def test_the_first_broken_guard_in_fixed_order_is_reported() -> None:
    candidate = replace(fixed(5_000, usd=0.004), drift_input_tokens=10_000_000)
    verdict = judge(fixed(50_000), candidate, ALL, min_requests=200)
    assert verdict.guard == "cost_ratio"
    assert verdict.numbers["guards"]["drift_pct"]["bound"] == pytest.approx(100.0)


def test_p95_comes_from_the_histograms() -> None:
    rng = random.Random(7)
    stable = draw(rng, 20_000)
    assert stable.p95_ms == percentile(stable.latency, 95)
    verdict = judge(stable, stable, ALL, min_requests=200)
    assert verdict.numbers["stable"]["p95_ms"] == pytest.approx(stable.p95_ms, abs=0.1)

    def shifted(buckets: int) -> ArmStats:  # every call slower by 2^(buckets/8)
        histogram = {bucket + buckets: count for bucket, count in stable.latency.items()}
        return replace(stable, latency=histogram)

    slower = judge(stable, shifted(4), ALL, min_requests=200)  # 1.41×: over 1.3
    assert (slower.decision, slower.guard) == ("abort", "p95_latency_ratio")
    assert "1.41×" in slower.reason
    assert slower.numbers["guards"]["p95_latency_ratio"]["bound"] > 5
    assert judge(stable, shifted(2), ALL, min_requests=200).decision == "pass"  # 1.19×


def test_cost_with_zero_variance_is_judged_by_its_value() -> None:
    stable = fixed(1_000, usd=0.002)
    over = judge(stable, fixed(300, usd=0.003), ALL, min_requests=200)
    assert (over.decision, over.guard) == ("abort", "cost_ratio")
    assert over.numbers["guards"]["cost_ratio"]["bound"] == pytest.approx(1.5)
    assert "$0.003 per request" in over.reason and "$0.002" in over.reason
    assert judge(stable, fixed(300, usd=0.0023), ALL, min_requests=200).decision == "pass"
    assert judge(stable, stable, ALL, min_requests=200).decision == "pass"


def test_cost_without_its_sum_of_squares_is_not_judged() -> None:
    candidate = replace(fixed(300, usd=0.004), cost_sq_sum=0.0)
    verdict = judge(fixed(1_000), candidate, ALL, min_requests=200)
    assert verdict.decision == "pass"
    assert "cost_ratio: not judged" in verdict.reason
    assert verdict.numbers["guards"]["cost_ratio"]["bound"] is None


def test_noisy_cost_needs_more_than_its_estimate_to_abort() -> None:
    rng = random.Random(11)
    stable, candidate = draw(rng, 20_000), draw(rng, 300, cost=1.3)
    verdict = judge(stable, candidate, ALL, min_requests=200)
    numbers = verdict.numbers["guards"]["cost_ratio"]
    assert numbers["bound"] < numbers["estimate"]
    clear = judge(stable, draw(rng, 20_000, cost=2.0), ALL, min_requests=200)
    assert clear.guard == "cost_ratio"


def test_drift_is_the_candidates_own_real_tokens_over_its_estimate() -> None:
    stable = fixed(5_000)
    over = replace(fixed(5_000), drift_input_tokens=6_500_000)  # +30%
    verdict = judge(stable, over, ALL, min_requests=200)
    assert (verdict.decision, verdict.guard) == ("abort", "drift_pct")
    assert "+30.0%" in verdict.reason and "> 25%" in verdict.reason
    under = replace(fixed(5_000), drift_input_tokens=6_000_000)  # +20%
    assert judge(stable, under, ALL, min_requests=200).decision == "pass"
    unknown = replace(fixed(5_000), drift_input_tokens=0, drift_estimated_tokens=0)
    verdict = judge(stable, unknown, ALL, min_requests=200)
    assert verdict.decision == "pass"
    assert verdict.numbers["guards"]["drift_pct"]["bound"] is None


def test_numbers_are_json_with_both_arms_and_each_guards_bound() -> None:
    rng = random.Random(3)
    verdict = judge(draw(rng, 5_000), draw(rng, 500), ALL, min_requests=200)
    numbers = json.loads(json.dumps(verdict.numbers, allow_nan=False))
    for arm in ("stable", "candidate"):
        assert set(numbers[arm]) >= {"requests", "error_pct", "p95_ms", "mean_cost_usd"}
        assert "drift_pct" in numbers[arm]
    assert set(numbers["guards"]) == set(ALL.active())
    assert all("bound" in guard for guard in numbers["guards"].values())


def test_an_arm_from_outcome_counts_leaves_out_rejections() -> None:
    arm = ArmStats.from_outcomes(
        {"ok": 90, "fallback": 4, "error": 3, "timeout": 2, "degraded": 1, "rejected": 50}
    )
    assert (arm.requests, arm.errors, arm.error_pct) == (100, 6, 6.0)


def test_windows_add_up() -> None:
    one, two = fixed(100, errors=1, ms=500), fixed(300, errors=2, ms=500)
    both = one + two
    assert (both.requests, both.errors, both.cost_n) == (400, 3, 400)
    assert both.latency == {latency_bucket(500): 400}
    assert both.mean_cost == pytest.approx(0.002)


def test_alpha_must_be_a_small_probability() -> None:
    with pytest.raises(ValueError, match="alpha"):
        judge(fixed(500), fixed(500), ALL, min_requests=200, alpha=0.7)
