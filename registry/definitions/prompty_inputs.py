"""Prompty input declarations: v1 maps (specs or sample values) and v2 lists, as InputSpecs.

Prompty has grown several ways to declare an input: a v1 `inputs` map whose values are
either specs or sample values, a v2 `inputs` list of named entries with `kind`, and
Prompt flow's extra keys. Each becomes the one `InputSpec` promptreg checks values against.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from registry.definitions.prompt import InputSpec, InputType, file_error

_KINDS: dict[str, InputType] = {
    "string": "string", "str": "string", "integer": "integer", "int": "integer",
    "number": "number", "float": "number", "boolean": "boolean", "bool": "boolean",
    "list": "list", "array": "list", "object": "object", "dict": "object",
    "thread": "messages", "messages": "messages",
}  # fmt: skip
_SPEC_KEYS = frozenset(
    {"type", "kind", "default", "sample", "description", "name", "required", "enum",
     "enumValues", "is_chat_input", "is_chat_history", "json_schema", "strict"}
)  # fmt: skip
_VALUE_TYPES: dict[type, InputType] = {
    bool: "boolean", int: "integer", float: "number", list: "list", dict: "object"
}  # fmt: skip
NO_SAMPLE: Any = object()


def declare(
    name: str, raw: Any, path: str, line: int | None, *, spec: bool = False
) -> tuple[InputSpec, Any]:
    """One input's declaration and its sample value (or NO_SAMPLE)."""
    keys = set(raw) if isinstance(raw, dict) else set()
    if not (spec or keys & {"type", "kind", "sample", "default"} or (keys and keys <= _SPEC_KEYS)):
        return inferred(raw), (NO_SAMPLE if raw is None else raw)  # late v1: a sample value
    kind = raw.get("type", raw.get("kind"))
    sample = raw.get("sample", NO_SAMPLE)
    sample = NO_SAMPLE if sample is None else sample
    if kind is None:
        probe = raw.get("default", sample)
        input_type = _type_of(probe) if probe is not NO_SAMPLE else "string"
    elif str(kind).lower() in _KINDS:
        input_type = _KINDS[str(kind).lower()]
    else:
        known = "string, integer, number, boolean, list (array), object, thread"
        message = f"input {name!r} has kind {kind!r}, which promptreg cannot check: use {known}"
        raise file_error(path, line, message)
    fields: dict[str, Any] = {"type": input_type}
    if "default" in raw:
        fields["default"] = raw["default"]
    if isinstance(raw.get("description"), str):
        fields["description"] = raw["description"]
    enum = raw.get("enum", raw.get("enumValues"))
    if enum is not None:
        fields["enum"] = enum
    try:
        declared = InputSpec.model_validate(fields)
    except ValidationError as exc:
        messages = [str(e["msg"]).removeprefix("Value error, ") for e in exc.errors()]
        unfit = [m.removeprefix("the default ") for m in messages if m.startswith("the default ")]
        if unfit:
            raise file_error(path, line, f"default of input {name!r} {unfit[0]}") from None
        raise file_error(path, line, f"input {name!r}: {'; '.join(messages)}") from None
    return declared, sample


def inferred(value: Any) -> InputSpec:
    """The declaration of an input known only by its sample value (required; see above)."""
    if value is None:
        return InputSpec(type="string", default=None)
    return InputSpec(type=_type_of(value))


def _type_of(value: Any) -> InputType:
    return _VALUE_TYPES.get(type(value), "string")
