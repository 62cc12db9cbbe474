"""Eval files and `promptreg validate` (SPEC §12): the strict schema, variables checked
against the prompt's inputs, render assertions run without a model, each problem as
`file:line: message`; eval files are not part of a feature's version."""

from __future__ import annotations

import json

import pytest

from registry.definitions.load import RegistryLoader
from registry.definitions.tree import DirTree

from .conftest import CASES, JUDGE, cli


def validate(repo, *args: str, code: int):
    result = cli("validate", repo.path, *args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result.stdout


def test_valid_cases_are_counted(repo):
    out = validate(repo, code=0)
    assert "1 feature(s) valid, 3 eval case(s) checked, ok" in out
    assert json.loads(validate(repo, "--format", "json", code=0))["problems"] == []


def test_a_failing_render_assertion_is_reported_with_file_line_and_case(repo):
    repo.write(
        {
            "evals/triage.yaml": CASES.replace(
                "{role: system, text: exactly one label}", "{role: user, text: exactly one label}"
            )
        }
    )
    out = validate(repo, code=1)
    assert (
        "evals/triage.yaml:8: refund is billing: contains: no user message contains "
        "'exactly one label'" in out
    )
    github = validate(repo, "--format", "github", code=1)
    assert "::error file=evals/triage.yaml,line=8,title=promptreg::refund is billing: " in github
    (problem,) = json.loads(validate(repo, "--format", "json", code=1))["problems"]
    assert problem["file"] == "evals/triage.yaml" and problem["line"] == 8
    assert problem["feature"] == "triage"
    assert problem["message"].startswith("refund is billing: contains: no user message")


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ("contains: {role: user, text: 'Channel: chat'}", None),
        ("not_contains: {role: system, text: Hello there}", None),  # the ticket stays in `user`
        ("not_contains: Hello", "not_contains: a message contains 'Hello'"),
        ("regex: '^Channel: (chat|email) \\|'", None),
        ("regex: {role: system, text: '^Channel'}", "regex: no system message matches /^Channel/"),
        ('equals: {role: user, text: "Channel: chat | Ticket\\nHello there"}', None),
        ("contains: {role: assistant, text: x}", "contains: there is no assistant message"),
        ("max_tokens: 1000", None),
        ("max_tokens: 5", "max_tokens: the request is"),
    ],
)
def test_render_assertions(repo, check, message):
    case = (
        "cases:\n  - name: c\n    vars: {message: Hello there, channel: chat}\n"
        f"    render:\n      - {check}\n"
    )
    repo.write({"evals/triage.yaml": case})
    out = validate(repo, code=0 if message is None else 1)
    if message is not None:
        assert f"evals/triage.yaml:5: c: {message}" in out


@pytest.mark.parametrize(
    ("typo", "problem"),
    [
        pytest.param(
            ("- equals: bug", "- equal: bug"),
            "evals/triage.yaml:12: cases.1.expect.0: unknown assertion key 'equal' (one of: "
            "equals, contains, not_contains, regex, one_of, json_schema, max_tokens, judge)",
            id="unknown-assertion-key",
        ),
        pytest.param(
            ("channel: chat}", "chanel: chat}"),
            "evals/triage.yaml:14: hello is other: variable 'chanel' is not a declared input of "
            "triage (inputs: message, channel)",
            id="undeclared-variable",
        ),
    ],
)
def test_a_typo_in_a_case_is_a_problem_at_its_line(repo, typo, problem):
    repo.write({"evals/triage.yaml": CASES.replace(*typo)})
    assert problem in validate(repo, code=1)


@pytest.mark.parametrize(
    ("vars_", "message"),
    [
        ("{channel: chat}", "c: missing required input(s) 'message' of triage"),
        ("{message: 42}", "c: input 'message' must be of type string, got integer"),
    ],
)
def test_case_variables_must_fit_the_declared_inputs(repo, vars_, message):
    repo.write({"evals/triage.yaml": f"cases:\n  - name: c\n    vars: {vars_}\n"})
    assert f"evals/triage.yaml:3: {message}" in validate(repo, code=1)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("cases: []\n", 1, "cases: List should have at least 1 item"),
        ("cases:\n  - name: a\nthreshold: 2\n", 3, "threshold: Input should be less than or"),
        ("cases:\n  - name: a\nthreshhold: 1\n", 3, "unknown key 'threshhold'"),
        ("cases:\n  - name: a\n    expect: [{equals: a, contains: b}]\n", 3, "one assertion per"),
        ("cases:\n  - name: a\n    expect:\n      - regex: '('\n", 4, "invalid regular expression"),
        (
            "cases:\n  - name: a\n    expect:\n      - json_schema: {type: 3}\n",
            4,
            "not a valid JSON",
        ),
        (
            "cases:\n  - name: a\n    render:\n      - judge: x\n",
            4,
            "unknown assertion key 'judge'",
        ),
        ("cases:\n  - name: a\n  - name: a\n", 3, "case name 'a' is used twice"),
        ("cases:\n  - name: a\n    vars: {message: [\n", 4, "invalid YAML"),
        ("- just a list\n", 1, "must be a YAML mapping with `cases`"),
    ],
)
def test_schema_problems_carry_file_and_line(repo, text, line, message):
    repo.write({"evals/triage.yaml": text})
    out = validate(repo, code=1)
    assert f"evals/triage.yaml:{line}: " in out and message in out, out


def test_cases_for_a_feature_that_does_not_exist(repo):
    repo.write({"evals/nope.yaml": "cases:\n  - name: a\n"})
    out = validate(repo, code=1)
    assert (
        "evals/nope.yaml:1: no feature 'nope' for these cases: expected a policy at "
        "policies/nope.yaml" in out
    )


def test_other_files_in_the_evals_folder_are_ignored(repo):
    repo.write({"evals/README.md": "# cases", "evals/_shared.yaml": "anything: 1"})
    validate(repo, code=0)


def test_the_evals_folder_is_configurable(repo, monkeypatch):
    repo.write({"evals/triage.yaml": None, "tests/prompt-cases/triage.yaml": CASES})
    assert "eval case(s)" not in validate(repo, code=0)
    assert "3 eval case(s) checked" in validate(repo, "--evals-dir", "tests/prompt-cases", code=0)
    monkeypatch.setenv("PROMPTREG_EVALS_DIR", "tests/prompt-cases")
    assert "3 eval case(s) checked" in validate(repo, code=0)


def test_eval_files_are_not_part_of_a_feature_version(repo):
    before = RegistryLoader(DirTree(repo.path)).load().features["triage"].content_hash
    repo.write({"evals/triage.yaml": CASES.replace("refund is billing", "refunds")})
    after = RegistryLoader(DirTree(repo.path)).load().features["triage"].content_hash
    assert before == after
    diff = cli("diff", "--base", "main", "--repo", repo.path)
    assert "0 feature(s) differ, 1 unchanged" in diff.stdout


JUDGED = """\
cases:
  - name: judged
    vars: {message: I want a refund}
    expect:
      - judge: {rubric: 'Says "billing"', model: gpt-4o-mini, min_score: 4}
"""


def test_a_judge_needs_the_registry_judge_prompt(repo):
    repo.write({"evals/triage.yaml": JUDGED})
    validate(repo, code=0)
    repo.write({"prompts/partials/judge.jinja": None})
    out = validate(repo, code=1)
    assert (
        "evals/triage.yaml:5: judged: judge needs the registry's judge prompt: judge prompt "
        "prompts/partials/judge.jinja not found (write one, or name another with "
        "`judge_prompt:`)" in out
    )
    repo.write(
        {
            "prompts/strict-judge.jinja": JUDGE,
            "evals/triage.yaml": JUDGED + "judge_prompt: strict-judge.jinja\n",
        }
    )
    validate(repo, code=0)


def test_a_judge_prompt_receives_only_its_inputs_and_a_judge_model_is_in_the_catalog(repo):
    repo.write({"prompts/partials/judge.jinja": JUDGE + "{{ secret }}\n"})
    repo.write({"evals/triage.yaml": JUDGED.replace("gpt-4o-mini", "no-such-model")})
    out = validate(repo, code=1)
    assert "judge prompt uses 'secret'; a judge prompt receives only rubric, answer" in out
    assert "evals/triage.yaml:5: judged: judge model 'no-such-model' is not in the catalog" in out
