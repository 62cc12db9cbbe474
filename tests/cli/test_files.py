"""Working-tree commands: `promptreg init`, `validate` and `render` (SPEC §5)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support.cli import invoke


@pytest.fixture
def starter(tmp_path: Path) -> Path:
    """A registry made by `promptreg init`."""
    root = tmp_path / "reg"
    result = invoke("init", root)
    assert result.exit_code == 0, result.output
    return root


def test_help_lists_the_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("init", "validate", "render"):
        assert command in result.stdout


def test_help_names_the_variables_behind_the_shared_options(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one line per option
    out = invoke("rollout", "start", "--help").stdout
    for variable in (
        "PROMPTREG_LABEL",
        "PROMPTREG_DATABASE_URL",
        "PROMPTREG_URL",
        "PROMPTREG_TOKEN",
    ):
        assert f"(default: {variable}" in out, out


# -- init ---------------------------------------------------------------------------


def test_init_creates_a_registry_that_validates_and_renders(starter):
    assert (starter / "policies" / "assistant" / "answer.yaml").is_file()
    assert (starter / "prompts" / "assistant" / "answer.jinja").is_file()

    validated = invoke("validate", starter)
    assert validated.exit_code == 0, validated.output
    assert "1 feature(s) valid, ok" in validated.stdout

    rendered = invoke("render", "assistant.answer", "--sample", "--repo", starter)
    assert rendered.exit_code == 0, rendered.output
    assert "How do I reset my password?" in rendered.stdout
    assert "budget: allowed" in rendered.stdout


def test_init_render_json(starter):
    result = invoke("render", "assistant.answer", "--sample", "--json", "--repo", starter)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"messages", "tokens", "cost_usd_estimate", "budget", "degraded_message"} <= set(data)
    assert data["feature"] == "assistant.answer"
    assert [m["role"] for m in data["messages"]] == ["system", "user"]
    assert data["messages"][1]["content"] == "How do I reset my password?"
    tokens = data["tokens"]
    assert tokens["total"] == tokens["input"] + tokens["max_output"]
    assert tokens["input"] > 0
    assert data["budget"]["allowed"] is True
    assert data["cost_usd_estimate"] > 0
    assert re.fullmatch(r"[0-9a-f]{64}", data["content_hash"])


def test_init_into_the_current_folder(tmp_path):
    # tests/conftest.py makes tmp_path the working directory
    result = invoke("init")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "policies" / "assistant" / "answer.yaml").is_file()


@pytest.mark.parametrize("existing", ["prompts", "policies"])
def test_init_refuses_an_existing_registry(tmp_path, existing):
    root = tmp_path / "app"
    (root / existing).mkdir(parents=True)
    mine = root / existing / "mine.txt"
    mine.write_text("keep me")
    result = invoke("init", root)
    assert result.exit_code == 1
    assert f"{root / existing} already exists" in result.stderr
    assert mine.read_text() == "keep me"
    assert sorted(p.name for p in root.iterdir()) == [existing]  # nothing else created
    assert [p.name for p in (root / existing).iterdir()] == ["mine.txt"]


# -- validate -----------------------------------------------------------------------

BAD_POLICY = "models: [gpt-4o]\nmax_output_tokens: 10\nbudget: {max_request_tokens: 100}\n"


def test_validate_text_format(starter):
    (starter / "policies" / "assistant" / "broken.yaml").write_text(BAD_POLICY + "colour: 1\n")
    result = invoke("validate", starter)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert "policies/assistant/broken.yaml:4: unknown key 'colour'" in lines
    assert lines[-1] == "1 feature(s) valid, 1 problem(s)"


def test_validate_github_format(starter):
    (starter / "policies" / "assistant" / "broken.yaml").write_text(BAD_POLICY)
    (starter / "prompts" / "assistant" / "broken.jinja").write_text("100% {{ x }}\n")
    result = invoke("validate", starter, "--format", "github")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "::error file=prompts/assistant/broken.jinja,line=1,title=promptreg::"
        "variable 'x' is used but not declared in inputs",
        "1 feature(s) valid, 1 problem(s)",
    ]


def test_github_annotation_encodes_percent_and_newlines():
    from registry.cli.files import _github
    from registry.errors import Problem

    assert _github(Problem("p.yaml", 3, "50% off\nsecond line")) == (
        "::error file=p.yaml,line=3,title=promptreg::50%25 off%0Asecond line"
    )
    assert _github(Problem("p.yaml", None, "whole file")) == (
        "::error file=p.yaml,line=1,title=promptreg::whole file"
    )


def test_validate_json_format(starter):
    (starter / "policies" / "assistant" / "broken.yaml").write_text(BAD_POLICY + "colour: 1\n")
    result = invoke("validate", starter, "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert data["features"] == ["assistant.answer"]
    assert {
        "file": "policies/assistant/broken.yaml",
        "line": 4,
        "feature": "assistant.broken",
        "message": "unknown key 'colour'",
    } in data["problems"]


def test_validate_rejects_an_unknown_format(starter):
    result = invoke("validate", starter, "--format", "xml")
    assert result.exit_code == 2
    assert "--format must be text, github or json" in result.stderr


def test_validate_a_folder_without_a_registry(tmp_path):
    result = invoke("validate", tmp_path)
    assert result.exit_code == 1
    assert "no policies/ folder here" in result.stderr
    assert "promptreg init" in result.stderr


# -- render -------------------------------------------------------------------------


def test_render_with_var(starter):
    result = invoke(
        "render", "assistant.answer", "--repo", starter, "--json",
        "--var", "question=Where is the export button?", "--var", "product=Acme",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    messages = json.loads(result.stdout)["messages"]
    assert messages[0]["content"].startswith("You answer questions about Acme.")
    assert messages[1]["content"] == "Where is the export button?"


def test_render_var_overrides_the_sample(starter):
    result = invoke(
        "render",
        "assistant.answer",
        "--sample",
        "--var",
        "question=42",
        "--json",
        "--repo",
        starter,
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["messages"][1]["content"] == "42"  # a string input stays text


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("vars.json", '{"question": "From JSON?", "product": "Zed"}'),
        ("vars.yaml", "question: From YAML?\nproduct: Zed\n"),
        ("vars.yml", "question: From YAML?\nproduct: Zed\n"),
    ],
)
def test_render_with_vars_file(starter, tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    result = invoke("render", "assistant.answer", "--vars-file", path, "--json", "--repo", starter)
    assert result.exit_code == 0, result.output
    messages = json.loads(result.stdout)["messages"]
    assert "Zed" in messages[0]["content"]
    assert messages[1]["content"].startswith("From ")


def test_render_with_a_broken_vars_file(starter, tmp_path):
    path = tmp_path / "vars.json"
    path.write_text('{"question": \n')
    result = invoke("render", "assistant.answer", "--vars-file", path, "--repo", starter)
    assert result.exit_code == 1
    assert f"{path}:2: invalid JSON" in result.stderr


def test_render_typed_var_is_parsed(starter):
    (starter / "policies" / "assistant" / "count.yaml").write_text(
        "models: [gpt-4o]\nmax_output_tokens: 10\n"
    )
    (starter / "prompts" / "assistant" / "count.jinja").write_text(
        "---\ninputs:\n  n: {type: integer}\n  loud: {type: boolean, default: false}\n---\n"
        "{{ n + 1 }}{% if loud %}!{% endif %}\n"
    )
    result = invoke(
        "render",
        "assistant.count",
        "--var",
        "n=41",
        "--var",
        "loud=true",
        "--json",
        "--repo",
        starter,
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["messages"] == [{"role": "user", "content": "42!"}]
    bad = invoke("render", "assistant.count", "--var", "n=many", "--repo", starter)
    assert bad.exit_code == 1
    assert "input 'n' must be of type integer, got string" in bad.stderr


def test_render_missing_required_input_is_one_line(starter):
    result = invoke("render", "assistant.answer", "--repo", starter)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: assistant.answer: missing required input 'question'"
    ]


def test_render_unknown_feature_lists_the_features(starter):
    result = invoke("render", "assistant.nope", "--repo", starter)
    assert result.exit_code == 1
    assert "unknown feature 'assistant.nope' (features: assistant.answer)" in result.stderr


def test_render_invalid_feature_shows_its_problems(starter):
    policy = starter / "policies" / "assistant" / "answer.yaml"
    policy.write_text(policy.read_text() + "colour: red\n")
    result = invoke("render", "assistant.answer", "--sample", "--repo", starter)
    assert result.exit_code == 1
    assert "feature 'assistant.answer' is invalid" in result.stderr
    assert "policies/assistant/answer.yaml:" in result.stderr
    assert "unknown key 'colour'" in result.stderr


def test_render_over_budget_is_refused_with_the_degraded_message(starter):
    policy = starter / "policies" / "assistant" / "answer.yaml"
    policy.write_text(
        policy.read_text().replace("budget:\n", "budget:\n  max_request_tokens: 320\n")
    )
    result = invoke("render", "assistant.answer", "--sample", "--repo", starter)
    assert result.exit_code == 0, result.output
    assert "refused" in result.stdout
    assert "exceeds budget.max_request_tokens of 320" in result.stdout
    assert "This feature is unavailable right now." in result.stdout

    as_json = invoke("render", "assistant.answer", "--sample", "--json", "--repo", starter)
    data = json.loads(as_json.stdout)
    assert data["budget"]["allowed"] is False
    assert f"estimated request of {data['tokens']['total']} tokens" in data["budget"]["reason"]
    assert data["degraded_message"].startswith("This feature is unavailable right now.")


def test_render_needs_no_valid_sample(starter):
    # render loads without rendering samples: one broken sample must not block the others
    prompt = starter / "prompts" / "assistant" / "answer.jinja"
    prompt.write_text(prompt.read_text().replace("question: How do I", "questio: How do I"))
    result = invoke(
        "render", "assistant.answer", "--var", "question=Hi", "--json", "--repo", starter
    )
    assert result.exit_code == 0, result.output
