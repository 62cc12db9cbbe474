"""Policy files: strict schema, the `_defaults.yaml` merge, feature names, models (SPEC §1.2).

Each bad input is checked through `RegistryLoader` and through `promptreg validate`
(text, github and json formats), naming the file and line of the problem.
"""

from __future__ import annotations

import os

import pytest
from support.features import BASE_POLICY as POLICY

# Lines of POLICY: 1 models, 2 "- model", 3 max_output_tokens, 4 budget,
# 5 max_request_tokens, 6 degraded_message; text appended starts at line 7.
ASK = "policies/demo/ask.yaml"

PRIVATE_MODELS = """\
models:
  acme-llm-7b:
    input_usd_per_mtok: 1.0
    output_usd_per_mtok: 2.0
    context_window: 8000
    tokenizer: gpt-4o
"""


# -- the file itself ----------------------------------------------------------------


def test_base_registry_is_valid(registry, check):
    checked = check(registry())
    assert sorted(checked.loaded.features) == ["demo.ask"]
    assert checked.loaded.problems == []
    assert checked.exit_codes == (0, 0, 0)
    assert checked.report == {"ok": True, "features": ["demo.ask"], "problems": []}


def test_malformed_yaml(registry, check):
    checked = check(registry({ASK: POLICY + "params: {temperature: [0.2,\n"}))
    checked.has(ASK, 8, "invalid YAML")
    assert checked.loaded.features == {}


def test_policy_that_is_not_a_mapping(registry, check):
    checked = check(registry({ASK: "- gpt-4o\n- claude-haiku-4-5\n"}))
    checked.has(ASK, 1, "must be a YAML mapping")


def test_unknown_top_level_key(registry, check):
    checked = check(registry({ASK: POLICY + "colour: red\n"}))
    checked.has(ASK, 7, "unknown key 'colour'")
    assert "demo.ask" not in checked.loaded.features


def test_unknown_nested_key_names_the_dotted_path(registry, check):
    text = POLICY.replace(
        "  max_request_tokens: 4000\n", "  max_request_tokens: 4000\n  tokns: 9\n"
    )
    checked = check(registry({ASK: text}))
    checked.has(ASK, 6, "unknown key 'budget.tokns'")


def test_wrong_type(registry, check):
    checked = check(
        registry({ASK: POLICY.replace("max_output_tokens: 200", "max_output_tokens: lots")})
    )
    checked.has(ASK, 3, "max_output_tokens: Input should be a valid integer")


def test_wrong_type_in_a_model_entry(registry, check):
    text = POLICY.replace("  - model: gpt-4o\n", "  - model: gpt-4o\n    timeout_s: soon\n")
    checked = check(registry({ASK: text}))
    checked.has(ASK, 3, "models.0.timeout_s: Input should be a valid number")


def test_boolean_is_not_an_integer(registry, load):
    root = registry({ASK: POLICY.replace("max_output_tokens: 200", "max_output_tokens: true")})
    assert [str(p) for p in load(root).problems] == [
        f"{ASK}:3: max_output_tokens: Input should be a valid integer"
    ]


def test_string_is_not_a_boolean(registry, load):
    loaded = load(registry({ASK: POLICY + "stream: 'yes'\n"}))
    assert "demo.ask" not in loaded.features


def test_empty_models_list(registry, check):
    text = POLICY.replace("models:\n  - model: gpt-4o\n", "models: []\n")
    checked = check(registry({ASK: text}))
    checked.has(ASK, 1, "models: List should have at least 1 item")


def test_model_shorthand_is_accepted(registry, load):
    text = POLICY.replace("  - model: gpt-4o\n", "  - gpt-4o\n  - claude-haiku-4-5\n")
    loaded = load(registry({ASK: text}))
    assert loaded.problems == []
    assert [m.model for m in loaded.features["demo.ask"].policy.models] == [
        "gpt-4o",
        "claude-haiku-4-5",
    ]


def test_invalid_utf8(registry, check):
    checked = check(registry({ASK: POLICY.encode() + b"description: caf\xe9\n"}))
    checked.has(ASK, 7, "not valid UTF-8 (byte 0xe9)")


@pytest.mark.parametrize("content", ["", "\n   \n"], ids=["empty", "blank"])
def test_empty_file(registry, check, content):
    checked = check(registry({ASK: content}))
    checked.has(ASK, 1, "empty file")


# -- required fields and the _defaults.yaml merge -----------------------------------


@pytest.mark.parametrize(
    ("removed", "field", "line"),
    [
        ("degraded_message: Unavailable right now.\n", "degraded_message", 1),
        ("max_output_tokens: 200\n", "max_output_tokens", 1),
        ("models:\n  - model: gpt-4o\n", "models", 1),
        ("budget:\n  max_request_tokens: 4000\n", "budget", 1),
    ],
)
def test_missing_required_field(registry, check, removed, field, line):
    checked = check(registry({ASK: POLICY.replace(removed, "")}))
    checked.has(ASK, line, f"missing required field {field!r}")
    checked.has(ASK, line, "nor in any _defaults.yaml above it")


def test_missing_nested_required_field_points_at_its_parent(registry, check):
    text = POLICY.replace("  max_request_tokens: 4000\n", "  daily_usd: 5\n")
    checked = check(registry({ASK: text}))
    checked.has(ASK, 4, "missing required field 'budget.max_request_tokens'")


def test_required_field_present_via_defaults(registry, check):
    root = registry(
        {
            ASK: POLICY.replace("degraded_message: Unavailable right now.\n", ""),
            "policies/_defaults.yaml": "degraded_message: From the root defaults.\n",
        }
    )
    checked = check(root)
    assert checked.loaded.problems == []
    assert checked.exit_codes == (0, 0, 0)
    policy = checked.loaded.features["demo.ask"].policy
    assert policy.degraded_message == "From the root defaults."


def test_closer_defaults_win_and_merge_key_by_key(registry, load):
    root = registry(
        {
            ASK: POLICY.replace(
                "budget:\n  max_request_tokens: 4000\n", "budget:\n  daily_usd: 7\n"
            ),
            "policies/_defaults.yaml": (
                "owner: root-team\nbudget:\n  max_request_tokens: 1000\n  drift_alarm_pct: 10\n"
            ),
            "policies/demo/_defaults.yaml": (
                "owner: demo-team\nbudget:\n  max_request_tokens: 3000\n"
            ),
        }
    )
    loaded = load(root)
    assert loaded.problems == []
    policy = loaded.features["demo.ask"].policy
    assert policy.owner == "demo-team"
    assert policy.budget.max_request_tokens == 3000  # sub-folder beats root
    assert policy.budget.drift_alarm_pct == 10  # root value kept: mappings merge
    assert policy.budget.daily_usd == 7  # the policy's own key


def test_policy_beats_defaults_and_lists_are_replaced(registry, load):
    root = registry(
        {
            "policies/_defaults.yaml": (
                "models: [gpt-4o, claude-haiku-4-5]\nmax_output_tokens: 50\n"
            ),
            ASK: POLICY.replace("model: gpt-4o", "model: gpt-4o-mini"),
        }
    )
    policy = load(root).features["demo.ask"].policy
    assert [m.model for m in policy.models] == ["gpt-4o-mini"]
    assert policy.max_output_tokens == 200


def test_defaults_in_another_folder_do_not_apply(registry, check):
    root = registry(
        {
            ASK: POLICY.replace("degraded_message: Unavailable right now.\n", ""),
            "policies/other/_defaults.yaml": "degraded_message: Not for demo.\n",
        }
    )
    check(root).has(ASK, 1, "missing required field 'degraded_message'")


@pytest.mark.parametrize(
    ("own", "defaults", "message"),
    [
        pytest.param(
            "max_output_tokens: 200\n",
            "# shared\nmax_output_tokens: many\n",
            "max_output_tokens: Input should be a valid",
            id="bad-value",
        ),
        pytest.param(
            "budget:\n  max_request_tokens: 4000\n",
            "budget:\n  max_request_tokens: 500000\n",
            "exceeds the context window of gpt-4o",
            id="over-window-limit",
        ),
    ],
)
def test_a_bad_value_in_defaults_names_the_defaults_file(registry, check, own, defaults, message):
    """The policy leaves `own` to the defaults, whose line 2 sets it badly."""
    root = registry({ASK: POLICY.replace(own, ""), "policies/_defaults.yaml": defaults})
    check(root).has("policies/_defaults.yaml", 2, message)


def test_unknown_key_in_defaults_names_the_defaults_file(registry, check):
    root = registry({"policies/demo/_defaults.yaml": "owner: x\ncolour: red\n"})
    check(root).has("policies/demo/_defaults.yaml", 2, "unknown key 'colour'")


@pytest.mark.parametrize("content", ["", "owner: [unclosed\n"], ids=["empty", "bad-yaml"])
def test_broken_defaults_file_is_a_problem_not_a_crash(registry, load, content):
    loaded = load(registry({"policies/_defaults.yaml": content}))
    assert [p.file for p in loaded.problems] == ["policies/_defaults.yaml"]


# -- feature names ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("policies/demo/Ask.yaml", "demo.Ask"),
        ("policies/demo/ask me.yaml", "demo.ask me"),
        ("policies/Demo/ask.yaml", "Demo.ask"),
        ("policies/demo/-ask.yaml", "demo.-ask"),
        ("policies/demo/ask$.yaml", "demo.ask$"),
    ],
)
def test_feature_name_with_bad_characters(registry, check, path, name):
    checked = check(registry({path: POLICY}))
    checked.has(path, 1, f"feature name {name!r} is invalid")
    assert sorted(checked.loaded.features) == ["demo.ask"]  # the good one still loads


def test_file_level_problems_still_print_a_line(registry, check):
    checked = check(registry({"policies/demo/Ask.yaml": POLICY}))
    assert checked.text.splitlines()[0].startswith("policies/demo/Ask.yaml:1: ")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("policies/demo/ask.yaml", "policies/demo/ask.yml"),
        ("policies/demo.ask.yaml", "policies/demo/ask.yaml"),
    ],
)
def test_two_files_with_the_same_name(registry, check, first, second):
    checked = check(registry({first: POLICY, second: POLICY}))
    checked.has(second, 1, f"defines feature 'demo.ask' again (also {first})")
    assert "demo.ask" not in checked.loaded.features


def test_underscore_files_are_never_features(registry, load):
    root = registry({"policies/demo/_notes.yaml": "anything: 1\n", "policies/README.md": "hi"})
    loaded = load(root)
    assert sorted(loaded.features) == ["demo.ask"]
    assert loaded.problems == []


# -- the prompt a policy points at --------------------------------------------------


def test_policy_pointing_at_a_missing_prompt(registry, check):
    checked = check(registry({ASK: POLICY + "prompt: demo/nope\n"}))
    checked.has(
        ASK, 7, "prompt file not found: prompts/demo/nope.jinja or prompts/demo/nope.prompty"
    )


def test_policy_whose_own_prompt_is_missing(registry, check):
    checked = check(registry({"policies/demo/other.yaml": POLICY}))
    checked.has("policies/demo/other.yaml", 1, "prompt file not found: prompts/demo/other.jinja")
    assert sorted(checked.loaded.features) == ["demo.ask"]


def test_policy_can_point_at_another_prompt(registry, load):
    loaded = load(registry({"policies/demo/again.yaml": POLICY + "prompt: demo/ask\n"}))
    assert sorted(loaded.features) == ["demo.again", "demo.ask"]
    assert loaded.features["demo.again"].prompt_path == "prompts/demo/ask.jinja"


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ("../../etc/hostname", "'../../etc/hostname' leaves the repository"),
        ("/etc/hostname", "'/etc/hostname' is an absolute path"),
    ],
)
def test_prompt_reference_outside_prompts(registry, check, ref, fragment):
    checked = check(registry({ASK: POLICY + f"prompt: {ref}\n"}))
    checked.has(ASK, 7, fragment)


# -- models and the catalog ---------------------------------------------------------


def test_unknown_model(registry, check):
    checked = check(registry({ASK: POLICY.replace("gpt-4o", "acme-llm-7b")}))
    checked.has(ASK, 2, "unknown model 'acme-llm-7b'")
    checked.has(ASK, 2, "policies/_models.yaml")


def test_unknown_model_later_in_the_chain(registry, check):
    text = POLICY.replace("  - model: gpt-4o\n", "  - model: gpt-4o\n  - model: no-such-model\n")
    check(registry({ASK: text})).has(ASK, 3, "unknown model 'no-such-model'")


def test_model_declared_in_models_file_is_accepted(registry, check):
    root = registry(
        {ASK: POLICY.replace("gpt-4o", "acme-llm-7b"), "policies/_models.yaml": PRIVATE_MODELS}
    )
    checked = check(root)
    assert checked.loaded.problems == []
    assert checked.exit_codes == (0, 0, 0)
    feature = checked.loaded.features["demo.ask"]
    assert feature.models["acme-llm-7b"]["context_window"] == 8000
    assert feature.models["acme-llm-7b"]["tokenizer"] == "gpt-4o"


def test_max_request_tokens_over_the_catalog_context_window(registry, check):
    checked = check(registry({ASK: POLICY.replace("4000", "200000")}))
    checked.has(
        ASK,
        5,
        "budget.max_request_tokens 200000 exceeds the context window of gpt-4o (128000 tokens)",
    )


def test_max_request_tokens_over_a_private_context_window(registry, check):
    root = registry(
        {
            ASK: POLICY.replace("gpt-4o", "acme-llm-7b").replace("4000", "9000"),
            "policies/_models.yaml": PRIVATE_MODELS,
        }
    )
    check(root).has(ASK, 5, "9000 exceeds the context window of acme-llm-7b (8000 tokens)")


def test_models_file_with_an_unknown_key(registry, check):
    root = registry({"policies/_models.yaml": "models:\n  gpt-4o:\n    colour: 1\n"})
    check(root).has("policies/_models.yaml", 3, "unknown key 'models.gpt-4o.colour'")


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


# -- symlinks (a policy file symlinked out: test_load.py, beside the prompt file) ----


def test_policy_folder_symlinked_out_of_the_repo(registry, check, outside):
    root = registry()
    os.symlink(outside, root / "policies" / "ext")
    checked = check(root)
    checked.has("policies/ext", 1, "points outside the repository")
    assert sorted(checked.loaded.features) == ["demo.ask"]


def test_symlink_inside_the_repo_is_followed(registry, load):
    root = registry()
    os.symlink(root / ASK, root / "policies" / "demo" / "alias.yaml")
    (root / "prompts" / "demo" / "alias.jinja").symlink_to("ask.jinja")
    loaded = load(root)
    assert loaded.problems == []
    assert sorted(loaded.features) == ["demo.alias", "demo.ask"]
