"""The simulator: seeded traffic through the guards, step by step, waiting and aborting as the
controller does."""

from __future__ import annotations

from typing import Any

import pytest

from registry.rollouts.guards import ArmStats, GuardConfig, Verdict
from registry.rollouts.simulate import ArmProfile, Plan, Traffic, simulate

GUARDS = GuardConfig(error_rate_pp=2, p95_latency_ratio=1.3, cost_ratio=1.2, drift_pct=25)
PLAN = Plan(GUARDS, steps=(5, 25, 50, 100), interval_s=600, min_requests=200)
STABLE = ArmProfile()


def test_the_same_seed_gives_the_same_result_and_another_seed_other_traffic() -> None:
    traffic = Traffic(200, STABLE, STABLE.regressed(error_rate=0.04))
    first, again = simulate(PLAN, traffic, seed=42), simulate(PLAN, traffic, seed=42)
    assert first == again
    assert first.describe() == again.describe()
    other = simulate(PLAN, traffic, seed=43)
    assert other.looks[0].verdict.numbers != first.looks[0].verdict.numbers


def test_identical_arms_complete_after_every_step_below_100() -> None:
    result = simulate(PLAN, Traffic(200), seed=1)
    assert (result.outcome, result.guard, result.step, result.minute) == (
        "completed",
        None,
        None,
        None,
    )
    assert [(look.percent, look.minute) for look in result.looks] == [(5, 10), (25, 20), (50, 30)]
    assert "completes after 30 min" in result.describe()


def test_an_error_regression_aborts_at_the_first_step_with_the_guards_reason() -> None:
    result = simulate(PLAN, Traffic(200, STABLE, STABLE.regressed(error_rate=0.06)), seed=1)
    assert (result.outcome, result.guard) == ("aborted", "error_rate_pp")
    assert (result.step, result.percent, result.minute) == (1, 5, 10)
    assert result.reason == result.looks[-1].verdict.reason
    text = result.describe()
    assert "aborts at step 1 (5%) after 10 min" in text
    assert "6% errors (stable 1%)" in text and "error_rate_pp: candidate 6." in text


@pytest.mark.parametrize(
    ("candidate", "guard"),
    [
        (STABLE.regressed(latency=1.8), "p95_latency_ratio"),
        (STABLE.regressed(cost=1.6), "cost_ratio"),
        (STABLE.regressed(drift_pct=40), "drift_pct"),
    ],
)
def test_each_kind_of_regression_is_caught_by_its_guard(candidate: ArmProfile, guard: str) -> None:
    result = simulate(PLAN, Traffic(200, STABLE, candidate), seed=2)
    assert (result.guard, result.step) == (guard, 1)


def test_a_window_grows_while_it_waits_then_is_judged() -> None:
    # 0.6 requests/s: about 18 candidate calls per 10 minutes at 5%; min_requests 40.
    plan = Plan(GUARDS, steps=(5, 100), interval_s=600, min_requests=40)
    result = simulate(plan, Traffic(0.6), seed=3)
    decisions = [look.verdict.decision for look in result.looks]
    assert decisions[0] == "wait" and decisions[-1] == "pass"
    seen = [look.verdict.numbers["candidate"]["requests"] for look in result.looks]
    assert seen == sorted(seen) and seen[-1] >= 40
    assert result.outcome == "completed"


def test_too_little_traffic_aborts_on_min_requests_after_the_last_wait() -> None:
    result = simulate(PLAN, Traffic(0.05), seed=4)
    assert (result.outcome, result.guard, result.step) == ("aborted", "min_requests", 1)
    assert len(result.looks) == PLAN.max_waits + 1
    assert result.minute == 40
    assert result.reason.startswith("min_requests: after 4 intervals at 5%")


def test_steps_without_100_complete_after_the_last() -> None:
    result = simulate(Plan(GUARDS, steps=(10, 30)), Traffic(200), seed=5)
    assert result.outcome == "completed"
    assert [look.percent for look in result.looks] == [10, 30]


def test_the_windows_look_like_the_traffic() -> None:
    result = simulate(Plan(GUARDS, steps=(50, 100), interval_s=600), Traffic(200), seed=6)
    numbers = result.looks[0].verdict.numbers
    for arm in ("stable", "candidate"):
        assert numbers[arm]["requests"] == pytest.approx(60_000, rel=0.02)
        assert numbers[arm]["error_pct"] == pytest.approx(1.0, abs=0.15)
        assert numbers[arm]["p95_ms"] == pytest.approx(2_148, rel=0.05)  # 800·e^(1.645·0.6)
        assert numbers[arm]["mean_cost_usd"] == pytest.approx(0.0033, rel=0.05)  # 0.002·e^0.5
        assert numbers[arm]["drift_pct"] == pytest.approx(0.0, abs=0.5)


def test_another_judge_can_be_replayed_on_the_same_traffic() -> None:
    seen: list[int] = []

    def always_abort(stable: ArmStats, candidate: ArmStats, guards: Any, **_: Any) -> Verdict:
        seen.append(candidate.requests)
        return Verdict("abort", "error_rate_pp", "stop", {})

    result = simulate(PLAN, Traffic(200), seed=7, judge=always_abort)
    assert (result.guard, result.reason, result.minute) == ("error_rate_pp", "stop", 10)
    assert seen == [
        simulate(PLAN, Traffic(200), seed=7).looks[0].verdict.numbers["candidate"]["requests"]
    ]


def test_steps_must_be_percents() -> None:
    with pytest.raises(ValueError, match="steps"):
        simulate(Plan(GUARDS, steps=(0, 50)), Traffic(200), seed=1)
