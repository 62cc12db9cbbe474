"""Token counts, prices and budget verdicts over the catalog (SPEC §1.2, §9).

The oracle for counts is tiktoken's own encoding constructor (`tiktoken_ext.openai_public`,
with its own patterns, special tokens and hash check) reading the files promptreg ships;
the oracle for prices is genai-prices' own `calc_price`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest
import tiktoken
import tiktoken.load
from tiktoken_ext import openai_public

from registry.definitions.catalog import parse_models_file
from registry.definitions.policy import Policy
from registry.errors import CatalogError
from registry.tokens import Catalog, Estimate, budget_verdict, encodings

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
  acme-by-encoding:
    context_window: 8000
    tokenizer: o200k_base
  acme-undeclared:
    context_window: 8000
  acme-retired:
    tokenizer: text-davinci-003
  gpt-4o:
    input_usd_per_mtok: 1.0
    max_output_tokens: 4096
"""

# Every model the demo registry and the test suite name, with the encoding that counts it.
MODELS = {
    "gpt-4o": "o200k_base",
    "gpt-4o-mini": "o200k_base",
    "gpt-4.1-mini": "o200k_base",
    "o3-mini": "o200k_base",
    "gpt-4": "cl100k_base",
    "claude-haiku-4-5": "cl100k_base",  # the proxy
    "claude-sonnet-4-5": "cl100k_base",  # the proxy
}


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
def official(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tiktoken.Encoding]:
    """tiktoken's own encodings, built by its own code from the files promptreg ships."""
    shipped = {p.name: p for p in encodings.FILES.glob("*.tiktoken")}
    read_file, cache = tiktoken.load.read_file, os.environ.get("TIKTOKEN_CACHE_DIR")

    def local(blobpath: str) -> bytes:
        # Serve tiktoken's download from the shipped file of the same name, never the network.
        return shipped[blobpath.rsplit("/", 1)[-1]].read_bytes()

    tiktoken.load.read_file = local
    # An empty cache, so that tiktoken "downloads" each file and checks its sha256 itself.
    os.environ["TIKTOKEN_CACHE_DIR"] = str(tmp_path_factory.mktemp("tiktoken-cache"))
    try:
        return {
            name: tiktoken.Encoding(**getattr(openai_public, name)())
            for name in ("o200k_base", "cl100k_base")
        }
    finally:
        tiktoken.load.read_file = read_file
        if cache is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = cache


def chat_tokens(enc: tiktoken.Encoding, messages: list[dict[str, str]]) -> int:
    """OpenAI's cookbook formula: 3 per message + its strings (+1 for a name), 3 for the reply."""
    total = 3
    for message in messages:
        total += 3 + sum(len(enc.encode(v)) for v in message.values()) + ("name" in message)
    return total


@pytest.fixture
def overrides_catalog() -> Catalog:
    return Catalog(parse_models_file(MODELS_FILE, "policies/_models.yaml"))


# -- counts -------------------------------------------------------------------------


def test_fixed_strings_have_their_known_token_counts(official):
    o200k, cl100k = official["o200k_base"], official["cl100k_base"]
    assert len(o200k.encode("hello world")) == 2
    assert len(cl100k.encode("hello world")) == 2
    assert Catalog().count("gpt-4o", user("hello world")) == 9  # 3 + 3 + "user" + 2 words
    assert len(o200k.encode(LONG_TEXT)) == 2161
    assert len(cl100k.encode(LONG_TEXT)) == 2601
    assert Catalog().count("gpt-4o", user(LONG_TEXT)) == 2161 + 7
    assert Catalog().count("gpt-4", user(LONG_TEXT)) == 2601 + 7


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_model_counts_with_its_encoding(model, official):
    enc = official[MODELS[model]]
    messages = [
        {"role": "system", "content": "You are terse.\n\nAnswer in French."},
        {"role": "user", "content": LONG_TEXT, "name": "ada"},
        {"role": "assistant", "content": "D'accord."},
    ]
    assert encodings.encoding_for(model) == MODELS[model]
    assert Catalog().count(model, messages) == chat_tokens(enc, messages)


def test_counts_are_not_a_characters_over_four_guess():
    assert Catalog().count("gpt-4o", user(LONG_TEXT)) != len(LONG_TEXT) // 4 + 7


def test_claude_counts_with_the_documented_proxy(official):
    assert encodings.PROXY == "cl100k_base"
    catalog = Catalog()
    claude = catalog.count("claude-haiku-4-5", user(LONG_TEXT))
    assert claude == chat_tokens(official["cl100k_base"], user(LONG_TEXT))
    assert claude != catalog.count("gpt-4o", user(LONG_TEXT))
    # Any model without a shipped tokenizer takes the same proxy, whether or not it is listed.
    assert encodings.encoding_for("gemini-2.5-flash") == encodings.PROXY
    assert encodings.encoding_for("acme-undeclared") == encodings.PROXY


@pytest.mark.parametrize(
    ("name", "encoding"),
    [
        ("o200k_base", "o200k_base"),
        ("cl100k_base", "cl100k_base"),
        ("azure/gpt-4o", "o200k_base"),
        ("openrouter/openai/gpt-4o-mini", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base"),
        ("gpt-oss-120b", "o200k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("anthropic/claude-sonnet-4-5", encodings.PROXY),
    ],
)
def test_model_names_resolve_to_their_encoding(name, encoding):
    assert encodings.encoding_for(name) == encoding


def test_messages_are_counted_by_the_per_message_formula(official):
    o200k = official["o200k_base"]
    one = Catalog().count("gpt-4o", user("hi"))
    two = Catalog().count("gpt-4o", [*user("hi"), *user("hi")])
    assert one == 3 + 3 + len(o200k.encode("user")) + len(o200k.encode("hi"))
    assert two - one == 3 + len(o200k.encode("user")) + len(o200k.encode("hi"))
    named = Catalog().count("gpt-4o", [{"role": "user", "content": "hi", "name": "ada"}])
    assert named - one == len(o200k.encode("ada")) + 1
    assert Catalog().count("gpt-4o", []) == 0


def test_special_token_text_is_counted_as_text(official):
    text = "ignore this <|endoftext|> and <|endofprompt|>"
    expected = len(official["o200k_base"].encode_ordinary(text)) + 7
    assert Catalog().count("gpt-4o", user(text)) == expected


def test_long_texts_count_as_one_piece(official):
    text = LONG_TEXT * 30  # several chunks, cut between words
    assert len(text) > 2 * encodings.CHUNK_CHARS
    enc = encodings.encoding("o200k_base")
    assert encodings.text_tokens(enc, text) == len(official["o200k_base"].encode(text))


def test_a_huge_run_of_whitespace_is_counted_not_a_crash(official):
    # Unchunked, tiktoken's regex overflows its stack on this (a Rust panic).
    enc = encodings.encoding("o200k_base")
    piece = " " * encodings.CHUNK_CHARS
    assert encodings.text_tokens(enc, " " * 1_000_000) == 20 * len(
        official["o200k_base"].encode(piece)
    )


def test_a_damaged_tokenizer_file_is_refused(tmp_path: Path):
    bad = tmp_path / "o200k_base.tiktoken"
    bad.write_bytes(encodings.FILES.joinpath("o200k_base.tiktoken").read_bytes()[:-10])
    with pytest.raises(CatalogError, match="damaged"):
        encodings._ranks(bad, encodings.SPECS["o200k_base"].sha256)


@pytest.mark.parametrize("name", sorted(encodings.SPECS))
def test_shipped_ranks_are_the_files_own_numbers(name: str):
    # `_ranks` counts lines instead of parsing the rank column: it must be the same map.
    path = encodings.FILES / f"{name}.tiktoken"
    fields = path.read_bytes().split()
    written = {
        base64.b64decode(token): int(rank)
        for token, rank in zip(fields[0::2], fields[1::2], strict=True)
    }
    assert encodings._ranks(path, encodings.SPECS[name].sha256) == written


def test_shipped_files_match_tiktoken_hashes_and_the_notice():
    notice = encodings.FILES.joinpath("NOTICE").read_text()
    assert "MIT License" in notice
    for name, spec in encodings.SPECS.items():
        data = encodings.FILES.joinpath(f"{name}.tiktoken").read_bytes()
        assert hashlib.sha256(data).hexdigest() == spec.sha256
        assert spec.sha256 in notice
        assert f'expected_hash="{spec.sha256}"' in Path(openai_public.__file__).read_text()


# -- prices and context windows -------------------------------------------------------


@pytest.mark.parametrize("model", sorted(MODELS))
def test_prices_and_windows_are_genai_prices_numbers(model):
    # 1,000 tokens each way: below every tier, so the base price (the one promptreg records).
    usage = genai_prices.Usage(input_tokens=1000, output_tokens=1000)
    listed = genai_prices.calc_price(usage, model)
    info = Catalog().require(model)
    assert info.source == "catalog"
    assert Decimal(repr(info.input_usd_per_token)) * 1000 == listed.input_price
    assert Decimal(repr(info.output_usd_per_token)) * 1000 == listed.output_price
    assert info.context_window == listed.model.context_window
    assert info.max_output_tokens is None  # genai-prices lists none; _models.yaml may add it
    assert info.tokenizer == model


def test_provider_prefixed_names_find_their_provider():
    catalog = Catalog()
    assert catalog.require("azure/gpt-4o").input_usd_per_token == pytest.approx(2.5e-6)
    assert catalog.require("anthropic/claude-haiku-4-5").context_window == 200_000


def test_private_model_counts_with_its_declared_tokenizer(overrides_catalog):
    info = overrides_catalog.require("acme-private")
    assert info.tokenizer == "claude-haiku-4-5"
    assert info.source == "_models.yaml"
    assert overrides_catalog.count("acme-private", user(LONG_TEXT)) == Catalog().count(
        "claude-haiku-4-5", user(LONG_TEXT)
    )


def test_a_declared_tokenizer_may_be_an_encoding(overrides_catalog):
    assert overrides_catalog.count("acme-by-encoding", user(LONG_TEXT)) == Catalog().count(
        "gpt-4o", user(LONG_TEXT)
    )
    # A private model that declares no tokenizer is counted by the proxy.
    assert overrides_catalog.count("acme-undeclared", user(LONG_TEXT)) == Catalog().count(
        "claude-haiku-4-5", user(LONG_TEXT)
    )


def test_a_tokenizer_promptreg_does_not_ship_is_a_clear_error(overrides_catalog):
    with pytest.raises(CatalogError, match="p50k_base.*does not ship.*tokenizer"):
        overrides_catalog.count("acme-retired", user("hi"))


def test_private_model_prices_and_window(overrides_catalog):
    info = overrides_catalog.require("acme-private")
    assert info.input_usd_per_token == pytest.approx(0.6e-6)
    assert info.output_usd_per_token == pytest.approx(0.8e-6)
    assert info.context_window == 32768
    assert info.max_output_tokens is None


def test_price_override_applies_and_the_rest_comes_from_the_catalog(overrides_catalog):
    listed = Catalog().require("gpt-4o")
    info = overrides_catalog.require("gpt-4o")
    assert info.source == "catalog+_models.yaml"
    assert info.input_usd_per_token == pytest.approx(1.0e-6)
    assert listed.input_usd_per_token == pytest.approx(2.5e-6)
    assert info.output_usd_per_token == listed.output_usd_per_token
    assert info.context_window == listed.context_window == 128_000
    assert info.max_output_tokens == 4096

    estimate = overrides_catalog.estimate(policy(), user(LONG_TEXT))[0]
    tokens = estimate.input_tokens
    assert estimate.cost_usd == pytest.approx(tokens * 1.0e-6 + 100 * info.output_usd_per_token)
    plain = Catalog().estimate(policy(), user(LONG_TEXT))[0]
    assert plain.input_tokens == tokens
    assert plain.cost_usd == pytest.approx(tokens * 2.5e-6 + 100 * 10e-6)


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


# -- catalogs rebuilt from stored versions ---------------------------------------------


# As versions stored by earlier releases recorded them (litellm's catalog and model names).
OLD_SNAPSHOT: dict[str, dict[str, Any]] = {
    "gpt-4o": {
        "model": "gpt-4o",
        "input_usd_per_token": 2.5e-06,
        "output_usd_per_token": 1e-05,
        "context_window": 128000,
        "max_output_tokens": 16384,
        "tokenizer": "gpt-4o",
    },
    "claude-haiku-4-5": {
        "model": "claude-haiku-4-5",
        "input_usd_per_token": 1e-06,
        "output_usd_per_token": 5e-06,
        "context_window": 200000,
        "max_output_tokens": 64000,
        "tokenizer": "claude-haiku-4-5",
    },
    "acme-llama-3-70b": {
        "model": "acme-llama-3-70b",
        "input_usd_per_token": 6e-07,
        "output_usd_per_token": 8e-07,
        "context_window": 32768,
        "max_output_tokens": 4096,
        "tokenizer": "gpt-4o",
    },
}


def test_an_old_snapshot_counts_and_prices_as_it_recorded():
    pinned = Catalog.from_snapshot(json.loads(json.dumps(OLD_SNAPSHOT)))
    library = Catalog()
    for name, recorded in OLD_SNAPSHOT.items():
        info = pinned.require(name)
        assert info.as_dict() == recorded
        assert info.source == "snapshot"
    for model in ("gpt-4o", "claude-haiku-4-5"):
        assert pinned.count(model, user(LONG_TEXT)) == library.count(model, user(LONG_TEXT))
    assert pinned.count("acme-llama-3-70b", user(LONG_TEXT)) == library.count(
        "gpt-4o", user(LONG_TEXT)
    )


def test_a_snapshot_catalog_knows_only_what_the_version_recorded():
    pinned = Catalog.from_snapshot(OLD_SNAPSHOT)
    assert pinned.lookup("gpt-4o-mini") is None
    with pytest.raises(CatalogError, match="unknown model 'gpt-4o-mini'"):
        pinned.count("gpt-4o-mini", user("hi"))


def test_as_dict_round_trips_through_a_snapshot(overrides_catalog):
    recorded = {m: overrides_catalog.require(m).as_dict() for m in ("gpt-4o", "acme-private")}
    pinned = Catalog.from_snapshot(recorded)
    assert {m: pinned.require(m).as_dict() for m in recorded} == recorded


# -- budget verdicts ---------------------------------------------------------------------


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


# -- loading: lazy, once, offline ---------------------------------------------------------

HEAVY = ("litellm", "tiktoken", "genai_prices")


def run_python(code: str, **env: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, **env},
    )
    return out.stdout.strip()


def test_importing_the_cli_does_not_import_tokenizers_or_catalogs():
    out = run_python(
        f"""
        import sys, registry.cli, registry.definitions.load, registry.render, registry.request
        print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))
        """
    )
    assert out == "[]"


def test_tokenizer_and_catalog_load_on_first_count_and_never_litellm():
    out = run_python(
        f"""
        import sys
        def heavy():
            return sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))
        import registry.tokens
        print(heavy())
        registry.tokens.Catalog().count("gpt-4o", [{{"role": "user", "content": "hi"}}])
        print(heavy())
        """
    )
    assert out.splitlines() == ["[]", "['genai_prices', 'tiktoken']"]


def test_counting_works_with_the_network_off_and_writes_no_cache(tmp_path: Path):
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    out = run_python(
        """
        import socket
        def refuse(*args, **kwargs):
            raise OSError("network disabled in this test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse

        from registry.tokens import Catalog, warm_up
        warm_up()
        catalog = Catalog()
        hi = [{"role": "user", "content": "hello world"}]
        print(catalog.count("gpt-4o", hi), catalog.count("claude-haiku-4-5", hi))
        print(catalog.require("claude-sonnet-4-5").input_usd_per_token)
        """,
        TIKTOKEN_CACHE_DIR=str(cache),
        DATA_GYM_CACHE_DIR=str(cache),
    )
    assert out.splitlines() == ["9 9", "3e-06"]
    assert list(cache.iterdir()) == []


def test_first_counts_from_many_threads_build_each_encoding_once():
    out = run_python(
        """
        import threading
        from registry.tokens import Catalog, encodings
        start = threading.Barrier(8)
        results, built = [], []
        def first_count():
            start.wait()
            results.append(Catalog().count("gpt-4o", [{"role": "user", "content": "hi there"}]))
            built.append(id(encodings.encoding("o200k_base")))
        threads = [threading.Thread(target=first_count) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(len(results), len(set(results)), len(set(built)))
        """
    )
    assert out == "8 1 1"
