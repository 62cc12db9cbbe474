"""Fixtures of the eval tests: the rule-based provider, a small registry in git, the CLI.

The registry has one feature, `triage`, a classifier the provider answers by keywords
(`rules.classify`), with a two-model chain; tests edit its prompt, policy and cases in
the working tree and compare with what is committed on `main`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.cli import invoke
from support.git import GitRepo
from typer.testing import Result

from .provider import RuleProvider

LABELS = """\
billing: payments, refunds, invoices
bug: crashes, errors, broken pages
other: anything else
"""

PROMPT = """\
---
inputs:
  message: {{type: string}}
  channel: {{type: string, default: email}}
sample: {{message: I need a refund}}
---
system:
Answer with exactly one label, nothing else:
{labels}
user:
Channel: {{{{ channel }}}} | Ticket
{{{{ message }}}}
"""

POLICY = """\
models:
  - {model: gpt-4o-mini, timeout_s: 5}
  - {model: gpt-4.1-mini, timeout_s: 5}
max_output_tokens: 5
budget: {max_request_tokens: 400}
degraded_message: other
"""

CASES = """\
threshold: 1
cases:
  - name: refund is billing
    vars: {message: I want a refund for the second payment}
    expect:
      - equals: billing
    render:
      - contains: {role: system, text: exactly one label}
  - name: crash is a bug
    vars: {message: The app crashes on start}
    expect:
      - equals: bug
  - name: hello is other
    vars: {message: Hello there, channel: chat}
    expect:
      - one_of: [other, billing]
"""

JUDGE = """\
system:
You grade an answer against a rubric. Reply {"score": 1-5, "reason": "..."}.
user:
Rubric:
{{ rubric }}

Answer to grade:
<answer>
{{ answer }}
</answer>
"""


def prompt(labels: str = LABELS) -> str:
    """The triage prompt with these label lines."""
    return PROMPT.format(labels=labels)


def files(
    *, labels: str = LABELS, policy: str = POLICY, cases: str = CASES
) -> dict[str, str | None]:
    """The registry's files."""
    return {
        "prompts/triage.jinja": prompt(labels),
        "prompts/partials/judge.jinja": JUDGE,
        "policies/triage.yaml": policy,
        "evals/triage.yaml": cases,
    }


@pytest.fixture(autouse=True)
def _eval_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer cache in tmp_path; no provider settings leak in from the caller."""
    monkeypatch.setenv("PROMPTREG_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def provider() -> Iterator[RuleProvider]:
    """The rule-based OpenAI-compatible provider on 127.0.0.1."""
    with RuleProvider() as running:
        yield running


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    """The triage registry committed on `main`; tests then edit the working tree."""
    builder = GitRepo(tmp_path / "repo")
    builder.commit("triage", files())
    return builder


cli = invoke  # `promptreg ARGS` in-process; an unexpected exception fails the test loudly


def run_eval(repo: GitRepo, provider: RuleProvider, *args: str, code: int | None = None) -> Result:
    """`promptreg eval` on the repository against the provider."""
    result = cli("eval", "--repo", repo.path, "--provider", provider.base_url, *args)
    if code is not None:
        assert result.exit_code == code, (result.stdout, result.stderr)
    return result


def eval_json(
    repo: GitRepo, provider: RuleProvider, *args: str, code: int | None = None
) -> dict[str, Any]:
    """`promptreg eval --format json`, parsed."""
    result = run_eval(repo, provider, "--format", "json", *args, code=code)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def cases_of(data: dict[str, Any], feature: str = "triage") -> dict[str, dict[str, Any]]:
    """A feature's cases in a JSON report, by name."""
    (entry,) = [f for f in data["features"] if f["feature"] == feature]
    return {c["name"]: c for c in entry["cases"]}
