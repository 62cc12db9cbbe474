"""Prompt files: YAML frontmatter between `---` lines, then a Jinja body (SPEC §1.1).

This module owns the file format of a prompt and the declared inputs: their schema,
their defaults, and the check of a value against its declaration. Rendering lives in
`registry.render`; Prompty's dialects are translated in `registry.definitions.prompty`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from registry.definitions.yamlpos import Located, YamlProblem, load_yaml
from registry.errors import InputError, Problem

PROMPT_SUFFIXES = (".jinja", ".prompty")
InputType = Literal["string", "integer", "number", "boolean", "list", "object", "messages"]
ROLES = ("system", "user", "assistant")
M = TypeVar("M", bound=BaseModel)


class InputSpec(BaseModel):
    """The declaration of one template input."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)

    type: InputType = "string"
    default: Any = None
    enum: list[Any] | None = None
    max_length: int | None = Field(default=None, gt=0)
    description: str | None = None

    @property
    def required(self) -> bool:
        """An input is optional exactly when it declares a default."""
        return "default" not in self.model_fields_set

    @model_validator(mode="after")
    def _default_fits(self) -> InputSpec:
        """A default must be a value the input itself accepts (its type, enum, max_length)."""
        if not self.required and self.default is not None:
            problem = self.problem(self.default)
            if problem is not None:
                raise ValueError(f"the default {problem}")
        return self

    def check(self, name: str, value: Any) -> Any:
        """Return `value` if it fits this declaration, else raise InputError naming `name`."""
        problem = self.problem(value)
        if problem is not None:
            raise InputError(f"input {name!r} {problem}")
        return value

    def problem(self, value: Any) -> str | None:
        """Why `value` does not fit this declaration (`must be ...`), or None when it does."""
        if not _TYPE_CHECKS[self.type](value):
            return f"must be of type {self.type}, got {_type_name(value)}"
        if self.type == "messages":
            for i, msg in enumerate(value):
                if set(msg) - {"role", "content", "name"} or msg.get("role") not in ROLES:
                    return (
                        f"item {i}: a message is {{role, content}} with role "
                        f"one of {', '.join(ROLES)}"
                    )
                if not isinstance(msg.get("content"), str):
                    return f"item {i}: content must be a string"
        if self.enum is not None and value not in self.enum:
            allowed = ", ".join(repr(v) for v in self.enum)
            return f"must be one of {allowed}, got {value!r}"
        if (
            self.max_length is not None
            and hasattr(value, "__len__")
            and len(value) > self.max_length
        ):
            return f"is {len(value)} long, over its max_length of {self.max_length}"
        return None


def _type_name(value: Any) -> str:
    return {
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
        list: "list",
        dict: "object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


_TYPE_CHECKS: dict[str, Any] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "messages": lambda v: isinstance(v, list) and all(isinstance(m, dict) for m in v),
}


class Frontmatter(BaseModel):
    """The frontmatter keys of a `.jinja` prompt file."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)

    description: str | None = None
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    sample: dict[str, Any] | None = None


@dataclass(frozen=True)
class PromptTemplate:
    """A parsed prompt file: declared inputs, sample and the Jinja body."""

    path: str  # repository-relative path of the file
    name: str  # template name under the prompts folder, e.g. "support/reply.jinja"
    body: str
    body_line: int  # 1-based line of the file where the body starts
    description: str | None = None
    inputs: dict[str, InputSpec] = field(default_factory=dict)
    sample: dict[str, Any] | None = None
    dialect: Literal["jinja", "prompty"] = "jinja"
    model: dict[str, Any] | None = None  # a Prompty file's own model section, for display
    source: str = ""  # everything read to build this prompt (hashed into versions)
    sample_line: int | None = None

    def apply_inputs(self, variables: dict[str, Any]) -> dict[str, Any]:
        """Validate `variables` against the inputs and fill in defaults."""
        out: dict[str, Any] = {}
        for name, spec in self.inputs.items():
            if name in variables:
                out[name] = spec.check(name, variables[name])
            elif spec.required:
                raise InputError(f"missing required input {name!r}")
            else:
                out[name] = spec.default
        undeclared = sorted(set(variables) - set(self.inputs))
        if undeclared:
            raise InputError(f"unknown input(s) {', '.join(map(repr, undeclared))}")
        return out


def split_frontmatter(text: str, file: str) -> tuple[str | None, int, str, int]:
    """Split `text` into (frontmatter, its first line, body, body's first line)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n").rstrip() != "---":
        return None, 0, text, 1
    for i in range(1, len(lines)):
        if lines[i].rstrip("\r\n").rstrip() == "---":
            return "".join(lines[1:i]), 2, "".join(lines[i + 1 :]), i + 2
    raise file_error(file, 1, "frontmatter opened with '---' on line 1 is never closed")


class PromptFileError(Exception):
    """A prompt file is invalid; carries its problems."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(map(str, problems)))


def file_error(file: str, line: int | None, message: str) -> PromptFileError:
    """A problem in a prompt file, as the error its parser raises."""
    return PromptFileError([Problem(file, line, message)])


def decode(data: bytes, file: str) -> str:
    """Decode a file as UTF-8 (a BOM is allowed), or raise naming the bad line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise file_error(file, line, f"not valid UTF-8 (byte 0x{data[exc.start]:02x})") from None


def parse_jinja_prompt(data: bytes, path: str, name: str) -> PromptTemplate:
    """Parse a `.jinja` prompt file."""
    text = decode(data, path).replace("\r\n", "\n")
    if not text.strip():
        raise file_error(path, 1, "empty prompt file")
    front, front_line, body, body_line = split_frontmatter(text, path)
    meta = Frontmatter()
    located = None
    if front is not None and front.strip():
        try:
            located = load_yaml(front, path, line_offset=front_line - 1)
        except YamlProblem as exc:
            raise PromptFileError([exc.problem]) from None
        if not isinstance(located.data, dict):
            raise file_error(path, front_line, "frontmatter must be a mapping")
        meta = validate_model(Frontmatter, located)
    if not body.strip():
        raise file_error(path, body_line, "the prompt body is empty")
    return PromptTemplate(
        path=path,
        name=name,
        body=body,
        body_line=body_line,
        description=meta.description,
        inputs=dict(meta.inputs),
        sample=meta.sample,
        source=text,
        sample_line=located.lines.get(("sample",)) if located is not None else None,
    )


def validate_model(model: type[M], located: Located) -> M:
    """Validate located YAML data against a strict model; problems carry file:line."""
    try:
        return model.model_validate(located.data)
    except ValidationError as exc:
        raise PromptFileError(
            [
                Problem(located.file, located.line_of(tuple(err["loc"])), describe_error(err))
                for err in exc.errors()
            ]
        ) from None


def describe_error(err: Any) -> str:
    """One pydantic error as a sentence naming the dotted field."""
    field_path = ".".join(str(p) for p in err["loc"]) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown key {field_path!r}"
    if kind == "missing":
        return f"missing required field {field_path!r}"
    return f"{field_path}: {str(err['msg']).removeprefix('Value error, ')}"
