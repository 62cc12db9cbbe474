"""A policy's `rollout` section: strict schema, defaults merge, nonsense named (SPEC §10)."""

from __future__ import annotations

import pytest
from support.features import BASE_POLICY as POLICY

# The rollout section appended to POLICY starts at line 7.
ASK = "policies/demo/ask.yaml"

FULL = """\
rollout:
  steps: [5, 25, 50, 100]
  interval: 10m
  min_requests: 200
  guards:
    error_rate_pp: 2
    p95_latency_ratio: 1.3
    cost_ratio: 1.2
    drift_pct: 25
"""


def test_a_full_rollout_section_loads(registry, check):
    checked = check(registry({ASK: POLICY + FULL}))
    assert checked.exit_codes == (0, 0, 0), checked.text
    plan = checked.loaded.features["demo.ask"].policy.rollout
    assert plan is not None
    assert (plan.steps, plan.interval_s, plan.min_requests) == ([5, 25, 50, 100], 600.0, 200)
    assert plan.guards.drift_pct == 25 and plan.guards.cost_ratio == 1.2


def test_without_a_section_there_is_no_rollout(registry, load):
    assert load(registry({ASK: POLICY})).features["demo.ask"].policy.rollout is None


def test_an_empty_section_takes_the_defaults(registry, load):
    plan = load(registry({ASK: POLICY + "rollout: {}\n"})).features["demo.ask"].policy.rollout
    assert plan is not None
    assert (plan.steps, plan.interval, plan.min_requests) == ([5, 25, 50, 100], "10m", 200)
    assert (plan.guards.error_rate_pp, plan.guards.drift_pct) == (2.0, None)


def test_defaults_merge_into_the_section_key_by_key(registry, load):
    root = registry(
        {
            "policies/_defaults.yaml": "rollout:\n  interval: 2s\n  guards: {cost_ratio: 1.5}\n",
            ASK: POLICY + "rollout:\n  steps: [50, 100]\n  guards: {drift_pct: 10}\n",
        }
    )
    plan = load(root).features["demo.ask"].policy.rollout
    assert plan is not None
    assert (plan.steps, plan.interval_s) == ([50, 100], 2.0)
    assert (plan.guards.cost_ratio, plan.guards.drift_pct) == (1.5, 10)


@pytest.mark.parametrize(
    ("section", "line", "message"),
    [
        ("rollout:\n  steps: [5, 25, 25, 100]\n", 8, "rollout.steps: steps must increase"),
        ("rollout:\n  steps: [10, 50]\n", 8, "rollout.steps: the last step must be 100"),
        ("rollout:\n  steps: [0, 100]\n", 8, "rollout.steps: every step is a percent from 1"),
        ("rollout:\n  steps: []\n", 8, "rollout.steps"),
        ("rollout:\n  interval: ten minutes\n", 8, "'ten minutes' is not a duration like"),
        ("rollout:\n  interval: 0s\n", 8, "'0s' is not a duration"),
        ("rollout:\n  min_requests: 0\n", 8, "rollout.min_requests"),
        ("rollout:\n  guards:\n    error_rate: 2\n", 9, "unknown key 'rollout.guards.error_rate'"),
        ("rollout:\n  guards:\n    cost_ratio: -1\n", 9, "rollout.guards.cost_ratio"),
        ("rollout:\n  speed: fast\n", 8, "unknown key 'rollout.speed'"),
    ],
)
def test_nonsense_is_named_with_file_and_line(registry, check, section, line, message):
    checked = check(registry({ASK: POLICY + section}))
    checked.has(ASK, line, message)
    assert checked.exit_codes == (1, 1, 1)
