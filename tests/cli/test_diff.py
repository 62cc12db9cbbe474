"""`promptreg diff --base REF` (SPEC §5, §8) and the example GitHub workflow that runs it."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main
from ruamel.yaml import YAML
from support.cli import invoke
from support.git import GitRepo
from usage_helpers import prompt, registry_files

from registry.cli import app
from registry.errors import RepoError

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "prompts.yml"
LONGER = (
    "You draft support replies. Greet the customer by name, restate the problem in one "
    "sentence, give numbered next steps, and sign with the team name."
)


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    """The usage test registry committed on main; tests then edit the working tree."""
    builder = GitRepo(tmp_path / "repo")
    builder.commit("Three features", registry_files())
    return builder


def diff_json(repo: GitRepo, base: str = "main") -> dict[str, Any]:
    result = invoke("diff", "--base", base, "--repo", repo.path, "--format", "json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in data["features"]}


def test_nothing_changed(repo):
    data = diff_json(repo)
    assert data["features"] == [] and data["unchanged"] == 3
    assert data["base"] == "main" and data["base_commit"] == repo.head
    text = invoke("diff", "--base", "main", "--repo", repo.path)
    assert "0 feature(s) differ, 3 unchanged" in text.stdout


def test_a_longer_prompt_shows_its_token_and_cost_delta(repo):
    repo.write(registry_files(LONGER))
    change = by_name(diff_json(repo))["support.reply"]
    assert change["status"] == "changed"
    delta = change["token_delta"]
    assert isinstance(delta, int) and delta > 0
    assert delta == change["tokens_to"] - change["tokens_from"]
    assert change["model"] == "gpt-4o"
    # gpt-4o input at $2.50 per million tokens, times 1,000 requests
    assert change["cost_per_1k_delta"] == pytest.approx(delta * 2.5e-6 * 1000)
    assert change["cost_per_1k_to"] > change["cost_per_1k_from"] > 0
    assert "+" + LONGER in change["prompt_diff"]
    assert change["policy_diff"] == ""

    text = invoke("diff", "--base", "main", "--repo", repo.path).stdout
    assert f"~ support.reply (changed): input tokens {change['tokens_from']} → " in text
    assert f"(+{delta}) on gpt-4o" in text
    assert "--- support.reply@main" in text and "+++ support.reply@working tree" in text
    assert "1 feature(s) differ, 2 unchanged" in text


def test_added_removed_and_policy_changes(repo):
    files: dict[str, str | None] = dict(registry_files())
    files["policies/kb/answer.yaml"] = None
    files["prompts/kb/answer.jinja"] = None
    files["policies/new/thing.yaml"] = files["policies/tight/reply.yaml"]
    files["prompts/new/thing.jinja"] = prompt("Something new.")
    files["policies/tight/reply.yaml"] = (
        str(files["policies/tight/reply.yaml"])
        .replace("max_output_tokens: 100", "max_output_tokens: 120")
        .replace("max_request_tokens: 150", "max_request_tokens: 200")
    )
    repo.write(files)
    changes = by_name(diff_json(repo))
    assert {name: c["status"] for name, c in changes.items()} == {
        "kb.answer": "removed",
        "new.thing": "added",
        "tight.reply": "changed",
    }
    removed, added, policy = changes["kb.answer"], changes["new.thing"], changes["tight.reply"]
    assert removed["tokens_to"] == 0 and removed["token_delta"] == -removed["tokens_from"]
    assert added["tokens_from"] == 0 and added["token_delta"] == added["tokens_to"] > 0
    assert policy["token_delta"] == 0
    # 20 more output tokens allowed at $10 per million, per 1,000 requests
    assert policy["cost_per_1k_delta"] == pytest.approx(20 * 10e-6 * 1000)
    assert '-  "max_output_tokens": 100,' in policy["policy_diff"]
    assert '+  "max_output_tokens": 120,' in policy["policy_diff"]
    text = invoke("diff", "--base", "main", "--repo", repo.path).stdout
    tokens = policy["tokens_from"]
    assert f"~ tight.reply (changed): input tokens {tokens} → {tokens} (+0) on gpt-4o" in text
    assert f"- kb.answer (removed): input tokens {removed['tokens_from']} → 0 (-" in text
    assert "+ new.thing (added): input tokens 0 → " in text


def test_a_changed_partial_changes_the_features_that_include_it(repo):
    files = dict(registry_files())
    files["prompts/partials/sign.jinja"] = "Sign as the ACME team."
    files["prompts/kb/answer.jinja"] = prompt("Answer.\n{% include 'partials/sign.jinja' %}")
    repo.commit("Sign kb answers", files)
    repo.write({"prompts/partials/sign.jinja": "Sign as the ACME support team, with a smile."})
    [change] = diff_json(repo)["features"]
    assert change["name"] == "kb.answer"
    assert change["token_delta"] > 0
    assert change["prompt_diff"] == ""
    assert "+Sign as the ACME support team, with a smile." in change["partials_diff"]


def test_a_feature_without_sample_has_no_token_delta(repo):
    no_sample = "---\ninputs:\n  question: {type: string}\n---\nuser:\n{{ question }} please\n"
    repo.write({"prompts/kb/answer.jinja": no_sample})
    change = by_name(diff_json(repo))["kb.answer"]
    assert change["tokens_to"] is None and change["token_delta"] is None
    text = invoke("diff", "--base", "main", "--repo", repo.path).stdout
    assert "(n/a) on gpt-4o" in text


def test_an_invalid_feature_in_the_working_tree_is_reported(repo):
    repo.write({"policies/kb/answer.yaml": "models: [gpt-4o]\nsurprise: 1\n"})
    change = by_name(diff_json(repo))["kb.answer"]
    assert change["status"] == "invalid"
    assert change["policy_path"] == "policies/kb/answer.yaml"
    assert any("policies/kb/answer.yaml:2" in p and "surprise" in p for p in change["problems"])
    github = invoke("diff", "--base", "main", "--repo", repo.path, "--format", "github").stdout
    assert "::error file=policies/kb/answer.yaml,title=promptreg diff::" in github


def test_markdown_is_a_pull_request_comment(repo):
    repo.write(registry_files(LONGER + "\n```\nnot a fence\n```"))
    delta = by_name(diff_json(repo))["support.reply"]["token_delta"]
    text = invoke("diff", "--base", "main", "--repo", repo.path, "--format", "markdown").stdout
    assert text.startswith("### promptreg: prompt and policy changes against `main`")
    assert "| changed | `support.reply` |" in text and f"**+{delta}**" in text
    assert "<details><summary><code>support.reply</code> (changed)</summary>" in text
    assert "````diff" in text  # a longer fence than the backticks inside the prompt
    assert "2 feature(s) unchanged." in text


def test_github_format_annotates_and_writes_the_job_summary(repo, tmp_path):
    repo.write(registry_files(LONGER))
    summary = tmp_path / "summary.md"
    result = invoke(
        "diff",
        "--base",
        "main",
        "--repo",
        repo.path,
        "--format",
        "github",
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert result.exit_code == 0, result.output
    line = result.stdout.splitlines()[0]
    assert line.startswith("::notice file=policies/support/reply.yaml,title=promptreg diff::")
    assert "support.reply (changed): input tokens" in line
    assert "| changed | `support.reply` |" in summary.read_text()


def test_the_base_may_be_a_sha_or_a_branch_of_an_older_commit(repo):
    first = repo.head
    repo.commit("Lengthen", registry_files(LONGER))
    assert diff_json(repo, first)["features"][0]["name"] == "support.reply"
    assert diff_json(repo, "main")["features"] == []


def test_an_unknown_base_is_a_clear_error(repo):
    with pytest.raises(RepoError, match="'origin/nope' does not exist"):
        invoke("diff", "--base", "origin/nope", "--repo", repo.path)


def test_bad_format_and_missing_registry(repo, tmp_path):
    assert invoke("diff", "--base", "main", "--repo", repo.path, "--format", "xml").exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("diff", "--base", "main", "--repo", empty)
    assert result.exit_code == 1 and "no policies/ folder" in result.output


# -- the example workflow -------------------------------------------------------------------


def _commands() -> dict[str, Any]:
    group: Any = typer.main.get_command(app)
    out: dict[str, Any] = {}
    for name, command in group.commands.items():
        out[name] = command
        for sub, child in getattr(command, "commands", {}).items():
            out[f"{name} {sub}"] = child
    return out


def _promptreg_calls(script: str) -> list[list[str]]:
    calls = []
    joined = script.replace("\\\n", " ")
    for line in joined.splitlines():
        for part in line.split("||"):
            words = shlex.split(part.split(">")[0])
            if words and words[0] == "promptreg":
                calls.append(words[1:])
    return calls


def test_the_workflow_parses_and_calls_only_commands_that_exist():
    workflow = YAML(typ="safe").load(WORKFLOW.read_text())
    assert "pull_request" in workflow["on"]
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    checkout = next(s for s in steps if str(s.get("uses", "")).startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0  # diff needs the base branch's history
    calls = [call for s in steps if "run" in s for call in _promptreg_calls(s["run"])]
    assert {call[0] for call in calls} == {"validate", "diff", "eval"}
    commands = _commands()
    for call in calls:
        command = commands[call[0]]
        options = {opt for param in command.params for opt in param.opts}
        for word in call[1:]:
            if word.startswith("--"):
                assert word in options, f"promptreg {call[0]} has no option {word}"
        if "--format" in call:
            formats = ("text", "markdown", "json", "github", "junit")
            assert call[call.index("--format") + 1] in formats
