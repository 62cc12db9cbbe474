"""The `judge` assertion: a model grades an answer against a rubric, with the registry's prompt.

The judge prompt is a partial of the registry itself (`prompts/partials/judge.jinja`
unless an eval file names another in `judge_prompt`), so it is reviewed and versioned
like any prompt. It is a plain Jinja template with role lines and may include other
partials; it receives `rubric`, `answer`, `conversation` (the case's rendered messages,
`[{role, content}]`) and `feature`. A registry without it cannot use `judge`: `validate`
says so at the assertion's line, and `eval` refuses to run.

The judge runs through the same guarded call as the feature, under a small policy of
its own (`judge_policy`): one model from the catalog, temperature 0, a 300-token
answer, a budget as large as the model's context window. It answers a score from 1 to
5; `parse_score` reads it from JSON (`{"score": 4, "reason": …}`), from a labelled
`Score: 4/5`, or from a number that opens the answer, and rescales `N/10` to 1–5.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from registry.definitions.content import FeatureDefinition, Layout
from registry.definitions.evals import JUDGE_SCALE, EvalSuite
from registry.definitions.load import LoadedRegistry
from registry.definitions.policy import Policy
from registry.definitions.prompt import InputSpec, PromptFileError, PromptTemplate, decode
from registry.definitions.tree import Tree, TreeEscape, clean_path
from registry.errors import Problem
from registry.render import analyze

JUDGE_INPUTS = {
    "rubric": InputSpec(type="string"),
    "answer": InputSpec(type="string"),
    "conversation": InputSpec(type="list", default=[]),
    "feature": InputSpec(type="string", default=""),
}
JUDGE_MAX_OUTPUT_TOKENS = 300
JUDGE_TIMEOUT_S = 60.0
DEFAULT_CONTEXT = 128_000  # the judge's budget when the catalog has no context window


@dataclass(frozen=True)
class JudgePrompt:
    """A judge template, read and checked: its source and the partials it includes."""

    template: PromptTemplate
    partials: dict[str, str]


def read_judge_prompt(tree: Tree, layout: Layout, name: str) -> JudgePrompt | list[Problem]:
    """The judge template `name` (under the prompts folder), or the problems that stop it."""
    path = f"{layout.prompts_dir}/{name}"

    def fetch(template: str) -> str | None:
        try:
            return decode(tree.read(f"{layout.prompts_dir}/{clean_path(template)}"), template)
        except (FileNotFoundError, PromptFileError):
            return None

    try:
        source = fetch(name)
    except TreeEscape as exc:
        return [Problem(path, 1, f"judge prompt: {exc}")]
    if source is None:
        return [Problem(path, 1, f"judge prompt {path} not found")]
    template = PromptTemplate(
        path=path,
        name=clean_path(name),
        body=source,
        body_line=1,
        inputs=JUDGE_INPUTS,
        source=source,
    )
    analysis = analyze(template, fetch, file_of=lambda n: f"{layout.prompts_dir}/{n}")
    problems = list(analysis.problems)
    for var, (file, line) in analysis.variables.items():
        if var not in JUDGE_INPUTS:
            problems.append(
                Problem(
                    file,
                    line,
                    f"judge prompt uses {var!r}; a judge prompt receives only "
                    f"{', '.join(JUDGE_INPUTS)}",
                )
            )
    return problems or JudgePrompt(template, analysis.partials)


def check_judges(
    suite: EvalSuite, tree: Tree, loaded: LoadedRegistry, first_model: str
) -> list[Problem]:
    """Problems of a suite's `judge` assertions: the judge prompt, the judge model."""
    problems: list[Problem] = []
    prompt_checked = False
    for i, case in enumerate(suite.cases):
        for j, assertion in enumerate(case.expect):
            if assertion.judge is None:
                continue
            loc = ("cases", i, "expect", j, "judge")
            if not prompt_checked:
                prompt_checked = True
                found = read_judge_prompt(tree, loaded.layout, suite.spec.judge_prompt)
                if isinstance(found, list):
                    problems.append(
                        suite.problem(
                            loc,
                            f"{case.name}: judge needs the registry's judge prompt: "
                            + "; ".join(p.message for p in found)
                            + (
                                " (write one, or name another with `judge_prompt:`)"
                                if "not found" in found[0].message
                                else ""
                            ),
                        )
                    )
            model = assertion.judge.model or first_model
            if loaded.catalog.lookup(model) is None:
                problems.append(
                    suite.problem(
                        (*loc, "model"),
                        f"{case.name}: judge model {model!r} is not in the catalog; "
                        f"declare it in {loaded.layout.policies_dir}/_models.yaml",
                    )
                )
    return problems


def judge_policy(model: str, context_window: int | None) -> dict[str, Any]:
    """The judge's own policy: one model, deterministic, short answer, context-sized budget."""
    return {
        "description": "grades eval answers against a rubric",
        "models": [{"model": model, "timeout_s": JUDGE_TIMEOUT_S, "max_retries": 1}],
        "params": {"temperature": 0},
        "max_output_tokens": JUDGE_MAX_OUTPUT_TOKENS,
        "stream": False,
        "deadline_s": 2 * JUDGE_TIMEOUT_S,
        "budget": {"max_request_tokens": context_window or DEFAULT_CONTEXT},
        "degraded_message": "(no grade: the judge is unavailable)",
    }


def judge_feature(prompt: JudgePrompt, loaded: LoadedRegistry, model: str) -> FeatureDefinition:
    """The judge as a feature the client library can run (named `judge:<model>:<prompt>`)."""
    info = loaded.catalog.require(model)
    data = judge_policy(model, info.context_window)
    return FeatureDefinition(
        name=judge_name(model, prompt.template.name),
        policy_path=prompt.template.path,
        policy=Policy.model_validate(data),
        policy_data=data,
        prompt=prompt.template,
        partials=prompt.partials,
        models={model: info.as_dict()},
        layout=loaded.layout,
    )


def judge_name(model: str, prompt_name: str) -> str:
    """The client-side name of a judge (never a feature name: it has a colon)."""
    return f"judge:{model}:{prompt_name}"


@dataclass(frozen=True)
class Grade:
    """A judge's answer, read."""

    score: float
    reason: str


_NUMBER = r"(\d+(?:\.\d+)?)"
_OUT_OF = rf"(?:\s*(?:/|out\s+of)\s*{_NUMBER})?"
_LABELLED = re.compile(rf"(?i)\bscore\b(?:\s+(?:is|of))?[\s*_:=\"'-]*{_NUMBER}{_OUT_OF}")
_BARE = re.compile(rf"^[\s*]*{_NUMBER}{_OUT_OF}[\s*.]*$")
_LEADING = re.compile(rf"^[\s*]*{_NUMBER}{_OUT_OF}[\s*.]*(?:$|[-–—:,;(]|\s)")


def parse_score(text: str) -> Grade | None:
    """The score (on 1–5) and reason in a judge's answer; None when it holds no usable score."""
    found = _from_json(text)
    if found is None:
        labelled = list(_LABELLED.finditer(text))
        match = labelled[-1] if labelled else None
        if match is None:
            match = _LEADING.match(text.strip())  # `4`, `3/5 - misses the menu path`
        if match is None:
            return None
        value = float(match.group(1))
        if match.group(2) is not None:
            value = _rescale(value, float(match.group(2)))
        found = (value, text.strip())
    score, reason = found
    if score is None or not 0 <= score <= JUDGE_SCALE[1]:
        return None
    return Grade(score, " ".join(reason.split()))


def _from_json(text: str) -> tuple[float | None, str] | None:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(text[start : end + 1])
    except ValueError:
        return None
    if not isinstance(data, dict) or "score" not in data:
        return None
    raw = data["score"]
    score: float | None = None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        score = float(raw)
    elif isinstance(raw, str):
        match = _BARE.match(raw)
        if match:
            score = float(match.group(1))
            if match.group(2) is not None:
                score = _rescale(score, float(match.group(2)))
    reason = data.get("reason") or data.get("explanation") or ""
    return score, str(reason)


def _rescale(value: float, out_of: float) -> float:
    """`value / out_of` on the judge's 1–5 scale (`8/10` → 4.0)."""
    top = JUDGE_SCALE[1]
    return value if out_of in (0, top) else value / out_of * top
