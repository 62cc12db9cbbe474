"""Token counts, prices and budget verdicts over the catalog (SPEC §1.2)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from registry.definitions.catalog import parse_models_file
from registry.definitions.policy import Policy
from registry.errors import CatalogError
from registry.tokens import Catalog, Estimate, _litellm, budget_verdict

LONG_TEXT = (
    "The quick brown fox jumps over the lazy dog near the riverbank at dawn. "
    "Invoices overdue by thirty days incur a late fee of 1.5% per month. "
    "Ελληνικά, 日本語のテキスト, and emoji 🎉 stress multilingual tokenizers. "
) * 40

MODELS_FILE = """\
models:
  acme-private:
    input_usd_per_mtok: 0.6
    output_usd_per_mtok: 0.8
    context_window: 32768
    tokenizer: claude-haiku-4-5
  gpt-4o:
    input_usd_per_mtok: 1.0
"""


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def policy(**budget: float) -> Policy:
    return Policy.model_validate(
        {
            "models": ["gpt-4o", "claude-haiku-4-5"],
            "max_output_tokens": 100,
            "budget": {"max_request_tokens": 1000, **budget},
            "degraded_message": "Unavailable.",
        }
    )


@pytest.fixture(scope="module")
def litellm():
    return _litellm()


@pytest.fixture
def overrides_catalog() -> Catalog:
    return Catalog(parse_models_file(MODELS_FILE, "policies/_models.yaml"))


def test_gpt_4o_counts_are_the_real_tokenizer_counts(litellm):
    catalog = Catalog()
    for text in ("hello world", LONG_TEXT):
        expected = litellm.token_counter(model="gpt-4o", messages=user(text))
        assert catalog.count("gpt-4o", user(text)) == expected
    assert catalog.count("gpt-4o", user("hello world")) < 20


def test_counts_are_not_a_characters_over_four_guess():
    assert Catalog().count("gpt-4o", user(LONG_TEXT)) != len(LONG_TEXT) // 4


def test_claude_uses_its_own_tokenizer(litellm):
    catalog = Catalog()
    gpt = catalog.count("gpt-4o", user(LONG_TEXT))
    claude = catalog.count("claude-haiku-4-5", user(LONG_TEXT))
    assert claude != gpt
    assert claude == litellm.token_counter(model="claude-haiku-4-5", messages=user(LONG_TEXT))


def test_private_model_counts_with_its_declared_tokenizer(overrides_catalog):
    info = overrides_catalog.require("acme-private")
    assert info.tokenizer == "claude-haiku-4-5"
    assert info.source == "_models.yaml"
    assert overrides_catalog.count("acme-private", user(LONG_TEXT)) == Catalog().count(
        "claude-haiku-4-5", user(LONG_TEXT)
    )
    assert overrides_catalog.count("acme-private", user(LONG_TEXT)) != Catalog().count(
        "gpt-4o", user(LONG_TEXT)
    )


def test_private_model_prices_and_window(overrides_catalog):
    info = overrides_catalog.require("acme-private")
    assert info.input_usd_per_token == pytest.approx(0.6e-6)
    assert info.output_usd_per_token == pytest.approx(0.8e-6)
    assert info.context_window == 32768


def test_price_override_applies_and_the_rest_comes_from_the_catalog(litellm, overrides_catalog):
    listed = litellm.model_cost["gpt-4o"]
    info = overrides_catalog.require("gpt-4o")
    assert info.source == "catalog+_models.yaml"
    assert info.input_usd_per_token == pytest.approx(1.0e-6)
    assert info.input_usd_per_token != listed["input_cost_per_token"]
    assert info.output_usd_per_token == listed["output_cost_per_token"]
    assert info.context_window == listed["max_input_tokens"]

    estimate = overrides_catalog.estimate(policy(), user(LONG_TEXT))[0]
    tokens = estimate.input_tokens
    assert estimate.cost_usd == pytest.approx(tokens * 1.0e-6 + 100 * info.output_usd_per_token)
    plain = Catalog().estimate(policy(), user(LONG_TEXT))[0]
    assert plain.input_tokens == tokens
    assert plain.cost_usd == pytest.approx(
        tokens * listed["input_cost_per_token"] + 100 * listed["output_cost_per_token"]
    )


def test_estimate_covers_every_model_of_the_chain():
    estimates = Catalog().estimate(policy(), user(LONG_TEXT))
    assert [e.model for e in estimates] == ["gpt-4o", "claude-haiku-4-5"]
    assert all(e.max_output_tokens == 100 for e in estimates)
    assert estimates[0].total_tokens == estimates[0].input_tokens + 100


def test_unknown_model_raises_catalog_error():
    catalog = Catalog()
    assert catalog.lookup("no-such-model-xyz") is None
    with pytest.raises(CatalogError, match="unknown model 'no-such-model-xyz'"):
        catalog.require("no-such-model-xyz")
    with pytest.raises(CatalogError, match="unknown model 'no-such-model-xyz'"):
        catalog.count("no-such-model-xyz", user("hi"))
    with pytest.raises(CatalogError, match="_models.yaml"):
        catalog.estimate(_policy_on("no-such-model-xyz"), user("hi"))


def _policy_on(model: str) -> Policy:
    return Policy.model_validate(
        {
            "models": [model],
            "max_output_tokens": 1,
            "budget": {"max_request_tokens": 10},
            "degraded_message": "x",
        }
    )


def test_budget_verdict_over_tokens_names_the_numbers():
    estimate = Estimate("gpt-4o", input_tokens=950, max_output_tokens=100, cost_usd=0.0034)
    verdict = budget_verdict(policy(), estimate)
    assert not verdict.allowed
    assert verdict.reason == (
        "estimated request of 1050 tokens (950 input + 100 max output) exceeds "
        "budget.max_request_tokens of 1000"
    )


def test_budget_verdict_over_cost_names_the_numbers():
    estimate = Estimate("gpt-4o", input_tokens=500, max_output_tokens=100, cost_usd=0.0125)
    verdict = budget_verdict(policy(max_request_usd=0.01), estimate)
    assert not verdict.allowed
    assert "$0.012500" in verdict.reason
    assert "gpt-4o" in verdict.reason
    assert "budget.max_request_usd of $0.01" in verdict.reason


def test_budget_verdict_allowed_says_how_much_is_used():
    estimate = Estimate("gpt-4o", input_tokens=500, max_output_tokens=100, cost_usd=0.002)
    verdict = budget_verdict(policy(max_request_usd=0.01), estimate)
    assert verdict.allowed
    assert verdict.reason == "600 of 1000 tokens, $0.002000"


def test_exactly_at_the_limit_is_allowed():
    estimate = Estimate("gpt-4o", input_tokens=900, max_output_tokens=100, cost_usd=None)
    assert budget_verdict(policy(), estimate).allowed


def test_importing_the_cli_does_not_import_litellm():
    code = (
        "import sys, registry.cli, registry.definitions.load, registry.render, registry.request; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('litellm', 'tiktoken')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
