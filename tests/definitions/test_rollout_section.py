"""A policy's `rollout` section: strict schema, defaults merge, nonsense named (SPEC §10)."""

from __future__ import annotations

import pytest

POLICY = """\
models:
  - model: gpt-4o
max_output_tokens: 200
budget:
  max_request_tokens: 4000
degraded_message: Unavailable right now.
"""
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


# -- the catalog's names (a typo is an unknown model, not a near match) ----------------------


def test_a_model_name_that_only_starts_like_a_catalog_model_is_unknown(registry, check):
    root = registry({ASK: POLICY.replace("model: gpt-4o", "model: claude-haiku-4-5-fake")})
    check(root).has(ASK, 2, "unknown model 'claude-haiku-4-5-fake'")


def test_dated_and_prefixed_names_of_a_catalog_model_are_known(registry, check):
    dated = POLICY.replace("model: gpt-4o", "model: azure/gpt-4o-2024-08-06")
    assert check(registry({ASK: dated})).exit_codes == (0, 0, 0)


def test_a_tokenizer_typo_in_models_file_is_named_with_its_line(registry, check):
    models = "models:\n  acme-7b:\n    context_window: 8000\n    tokenizer: gpt-4oo\n"
    root = registry({"policies/_models.yaml": models})
    check(root).has("policies/_models.yaml", 4, "models.acme-7b.tokenizer: 'gpt-4oo' is neither")
