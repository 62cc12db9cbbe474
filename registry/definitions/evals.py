"""Eval files: a feature's test cases, `evals/<feature path>.yaml` (SPEC §12).

```yaml
cases:
  - name: double charge goes to billing
    vars: {message: "I was charged twice this month", channel: email}
    expect:                        # on the model's answer
      - equals: billing
    render:                        # on the rendered messages, no model call
      - contains: {role: system, text: "exactly one label"}
threshold: 0.9                     # pass rate under this fails (default 1: every case)
judge_prompt: partials/judge.jinja # the registry's judge prompt (this is the default)
```

The schema is strict like a policy's: unknown keys and unknown assertions are errors
with `file:line`. An eval file is not part of its feature's version — `RegistryLoader`
never reads one, so adding cases changes no content hash; `validate` and `eval` load
them with `load_evals` and check the cases' variables against the feature's inputs
with `check_vars`. Running assertions is `registry.evals`' job.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from registry.definitions.policy import Strict, feature_name, is_policy_file
from registry.definitions.prompt import InputSpec, PromptFileError, decode, describe_error
from registry.definitions.tree import Tree, TreeEscape
from registry.definitions.yamlpos import Loc, Located, YamlProblem, load_yaml
from registry.errors import InputError, Problem

DEFAULT_JUDGE_PROMPT = "partials/judge.jinja"
JUDGE_SCALE = (1, 5)  # the judge answers a score in this range (SPEC §12 "judge")
Role = Literal["system", "user", "assistant"]


class TextIn(Strict):
    """Text looked for in the rendered messages of one role (of every role when unset)."""

    role: Role | None = None
    text: str


class JudgeSpec(Strict):
    """A rubric graded by a model; passes at or above `min_score` (on a 1–5 scale)."""

    rubric: str = Field(min_length=1)
    model: str | None = Field(default=None, min_length=1)  # default: the feature's first model
    min_score: float = Field(default=4, ge=JUDGE_SCALE[0], le=JUDGE_SCALE[1])


class Assertion(Strict):
    """One check: a mapping with exactly one of the assertion keys."""

    def only(self) -> tuple[str, Any]:
        """The assertion's key and value."""
        ((key, value),) = ((k, getattr(self, k)) for k in self.model_fields_set)
        return key, value

    @model_validator(mode="after")
    def _one_key(self) -> Assertion:
        keys = sorted(self.model_fields_set)
        if not keys:
            raise ValueError(f"empty assertion: write one of {', '.join(type(self).model_fields)}")
        if len(keys) > 1:
            raise ValueError(
                f"one assertion per list item, found {' and '.join(keys)}: write each as its "
                "own `- key: value` item"
            )
        if getattr(self, keys[0]) is None:
            raise ValueError(f"{keys[0]} needs a value")
        return self


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return value


class Expect(Assertion):
    """An assertion on the model's answer."""

    equals: str | None = None  # exact, after trimming whitespace
    contains: str | None = None
    not_contains: str | None = None
    regex: str | None = None  # re.search
    one_of: list[str] | None = Field(default=None, min_length=1)
    json_schema: dict[str, Any] | None = None  # the answer parses as JSON and validates
    max_tokens: int | None = Field(default=None, gt=0)  # on the first model's tokenizer
    judge: JudgeSpec | None = None

    @field_validator("regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return None if value is None else _check_regex(value)

    @field_validator("judge", mode="before")
    @classmethod
    def _judge_shorthand(cls, value: Any) -> Any:
        """`judge: RUBRIC` is short for `judge: {rubric: RUBRIC}`."""
        return {"rubric": value} if isinstance(value, str) else value

    @field_validator("json_schema")
    @classmethod
    def _schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            # Imported here: only files that use the assertion pay for the library.
            from jsonschema.exceptions import SchemaError
            from jsonschema.validators import validator_for

            try:
                validator_for(value).check_schema(value)
            except SchemaError as exc:
                raise ValueError(f"not a valid JSON schema: {exc.message}") from None
        return value


class RenderCheck(Assertion):
    """An assertion on the rendered messages (`text`, or `{role, text}` for one role)."""

    equals: TextIn | None = None  # some message equals the text, after trimming
    contains: TextIn | None = None  # some message contains the text
    not_contains: TextIn | None = None  # no message contains the text
    regex: TextIn | None = None  # some message matches
    max_tokens: int | None = Field(default=None, gt=0)  # input tokens on the first model

    @field_validator("equals", "contains", "not_contains", "regex", mode="before")
    @classmethod
    def _text_shorthand(cls, value: Any) -> Any:
        """A plain string looks in every message."""
        return {"text": value} if isinstance(value, str) else value

    @field_validator("regex")
    @classmethod
    def _regex(cls, value: TextIn | None) -> TextIn | None:
        if value is not None:
            _check_regex(value.text)
        return value


class Case(Strict):
    """One test case: variables for the prompt, and what must hold."""

    name: str = Field(min_length=1)
    description: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    expect: list[Expect] = Field(default_factory=list)
    render: list[RenderCheck] = Field(default_factory=list)


class EvalFile(Strict):
    """The whole eval file of one feature."""

    cases: list[Case] = Field(min_length=1)
    threshold: float = Field(default=1.0, ge=0, le=1)
    judge_prompt: str = Field(default=DEFAULT_JUDGE_PROMPT, min_length=1)


@dataclass(frozen=True)
class EvalSuite:
    """A feature's parsed eval file, with the line of every key for messages."""

    feature: str
    path: str
    spec: EvalFile
    located: Located

    @property
    def cases(self) -> list[Case]:
        """The cases, in file order."""
        return self.spec.cases

    def line(self, *loc: str | int) -> int | None:
        """The file line of a key path, e.g. `line("cases", 0, "vars", "message")`."""
        return self.located.line_of(loc)

    def problem(self, loc: Loc, message: str) -> Problem:
        """A problem at `loc` of this file."""
        return Problem(self.path, self.line(*loc), message, self.feature)


_ASSERTION_LISTS: dict[str, type[Assertion]] = {"expect": Expect, "render": RenderCheck}


def _describe(err: Any) -> str:
    """A pydantic error of an eval file as a sentence; unknown assertions name the valid ones."""
    loc = tuple(err["loc"])
    if (
        err["type"] == "extra_forbidden"
        and len(loc) == 5
        and loc[0] == "cases"
        and loc[2] in _ASSERTION_LISTS
    ):
        allowed = ", ".join(_ASSERTION_LISTS[str(loc[2])].model_fields)
        where = ".".join(str(p) for p in loc[:4])
        return f"{where}: unknown assertion key {loc[4]!r} (one of: {allowed})"
    message = describe_error(err)
    return message.replace(": Value error, ", ": ")


def parse_eval_file(data: bytes, path: str, feature: str) -> EvalSuite:
    """Parse one eval file; raises PromptFileError carrying every problem with its line."""
    text = decode(data, path)
    if not text.strip():
        raise PromptFileError([Problem(path, 1, "empty eval file", feature)])
    try:
        located = load_yaml(text, path)
    except YamlProblem as exc:
        raise PromptFileError([exc.problem]) from None
    if not isinstance(located.data, dict):
        raise PromptFileError([Problem(path, 1, "must be a YAML mapping with `cases`", feature)])
    try:
        spec = EvalFile.model_validate(located.data)
    except ValidationError as exc:
        raise PromptFileError(
            [
                Problem(path, located.line_of(tuple(err["loc"])), _describe(err), feature)
                for err in exc.errors()
            ]
        ) from None
    suite = EvalSuite(feature, path, spec, located)
    seen: dict[str, int] = {}
    problems = []
    for i, case in enumerate(spec.cases):
        if case.name in seen:
            problems.append(
                suite.problem(
                    ("cases", i, "name"),
                    f"case name {case.name!r} is used twice (also case {seen[case.name] + 1})",
                )
            )
        seen.setdefault(case.name, i)
    if problems:
        raise PromptFileError(problems)
    return suite


def load_evals(
    tree: Tree, evals_dir: str, features: Collection[str], *, policies_dir: str = "policies"
) -> tuple[dict[str, EvalSuite], list[Problem]]:
    """Every eval file under `evals_dir`: suites by feature name, and the problems found.

    `features` are the names the registry defines (valid or not); a file for any other
    name is a problem. Files whose name starts with `_`, and non-YAML files, are ignored.
    """
    suites: dict[str, EvalSuite] = {}
    problems: list[Problem] = []
    for path in tree.walk(evals_dir):
        rel = path[len(evals_dir) + 1 :]
        if not is_policy_file(rel):
            continue
        name = feature_name(rel)
        assert name is not None
        if name not in features:
            problems.append(
                Problem(
                    path,
                    1,
                    f"no feature {name!r} for these cases: expected a policy at "
                    f"{policies_dir}/{rel}",
                )
            )
            continue
        if name in suites:
            problems.append(
                Problem(path, 1, f"cases for {name!r} again (also {suites[name].path})", name)
            )
            continue
        try:
            suites[name] = parse_eval_file(tree.read(path), path, name)
        except PromptFileError as exc:
            problems.extend(exc.problems)
        except TreeEscape as exc:
            problems.append(Problem(path, 1, str(exc), name))
    return suites, problems


def check_vars(suite: EvalSuite, inputs: Mapping[str, InputSpec]) -> list[Problem]:
    """Problems of every case's variables against the prompt's declared `inputs`."""
    return [p for i in range(len(suite.cases)) for p in check_case_vars(suite, i, inputs)]


def check_case_vars(suite: EvalSuite, index: int, inputs: Mapping[str, InputSpec]) -> list[Problem]:
    """Problems of case `index`'s variables: names the prompt does not declare, required
    inputs it lacks, values that fail their declaration (type, enum, max_length)."""
    case = suite.cases[index]
    problems: list[Problem] = []
    declared = ", ".join(inputs) or "none"
    for var, value in case.vars.items():
        loc = ("cases", index, "vars", var)
        spec = inputs.get(var)
        if spec is None:
            problems.append(
                suite.problem(
                    loc,
                    f"{case.name}: variable {var!r} is not a declared input of "
                    f"{suite.feature} (inputs: {declared})",
                )
            )
            continue
        try:
            spec.check(var, value)
        except InputError as exc:
            problems.append(suite.problem(loc, f"{case.name}: {exc}"))
    missing = [n for n, spec in inputs.items() if spec.required and n not in case.vars]
    if missing:
        problems.append(
            suite.problem(
                ("cases", index, "vars"),  # the case's own line when it has no vars
                f"{case.name}: missing required input(s) {', '.join(map(repr, missing))} "
                f"of {suite.feature}",
            )
        )
    return problems
