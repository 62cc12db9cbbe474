"""Assertions: what a case expects of the answer, and of the rendered messages (SPEC §12).

Each check gives None when it holds, else one line saying what was expected and what
was found. `equals` is exact after trimming whitespace, `one_of` is `equals` for any of
a list, `contains`/`not_contains` are substrings, `regex` searches, `json_schema` parses
the (trimmed) answer as JSON and validates it, `max_tokens` counts the answer with the
first model's tokenizer. A render assertion with a `role` looks at that role's messages
only. `judge` needs a model: the caller passes the grading function.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from registry.definitions.evals import Expect, JudgeSpec, RenderCheck, TextIn

SHOWN = 80  # characters of an answer quoted in a failure message


def shown(text: str, limit: int = SHOWN) -> str:
    """`text` quoted for a one-line message, cut to `limit` characters."""
    one_line = " ".join(text.split())
    return repr(one_line if len(one_line) <= limit else one_line[: limit - 1] + "…")


def check_answer(
    assertion: Expect,
    answer: str,
    *,
    count: Callable[[str], int],
    judge: Callable[[JudgeSpec], str | None],
) -> str | None:
    """Check one `expect` assertion; `count(text)` gives tokens on the first model."""
    key, value = assertion.only()
    if key == "equals":
        return (
            None
            if answer.strip() == value.strip()
            else f"equals: expected {shown(value)}, got {shown(answer)}"
        )
    if key == "one_of":
        if answer.strip() in [v.strip() for v in value]:
            return None
        options = ", ".join(shown(v, 30) for v in value)
        return f"one_of: got {shown(answer)}, expected one of {options}"
    if key == "contains":
        return (
            None
            if value in answer
            else f"contains: {shown(value)} not in the answer {shown(answer)}"
        )
    if key == "not_contains":
        return f"not_contains: {shown(value)} found in the answer" if value in answer else None
    if key == "regex":
        found = re.search(value, answer)
        return None if found else f"regex: /{value}/ does not match the answer {shown(answer)}"
    if key == "json_schema":
        return _json_schema(value, answer)
    if key == "max_tokens":
        tokens = count(answer)
        return (
            None if tokens <= value else f"max_tokens: the answer is {tokens} tokens, over {value}"
        )
    if key == "judge":
        return judge(value)
    raise AssertionError(f"unhandled assertion {key}")  # the schema allows no other key


def _json_schema(schema: dict[str, Any], answer: str) -> str | None:
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for

    try:
        data = json.loads(answer.strip())
    except ValueError as exc:
        return f"json_schema: the answer is not JSON ({exc}): {shown(answer)}"
    error = best_match(validator_for(schema)(schema).iter_errors(data))
    if error is None:
        return None
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"json_schema: ${where}: {error.message}"


def check_render(
    assertion: RenderCheck,
    messages: Sequence[dict[str, str]],
    *,
    count: Callable[[], int],
) -> str | None:
    """Check one `render` assertion on the rendered messages; `count()` gives their tokens."""
    key, value = assertion.only()
    if key == "max_tokens":
        tokens = count()
        return (
            None
            if tokens <= value
            else f"max_tokens: the request is {tokens} input tokens, over {value}"
        )
    assert isinstance(value, TextIn)
    role = value.role
    texts = [m["content"] for m in messages if role is None or m["role"] == role]
    where = f"{role} message" if role else "message"
    if not texts and key != "not_contains":
        return f"{key}: there is no {where}"
    needle = value.text
    if key == "contains":
        return (
            None
            if any(needle in t for t in texts)
            else f"contains: no {where} contains {shown(needle)}"
        )
    if key == "not_contains":
        return (
            f"not_contains: a {where} contains {shown(needle)}"
            if any(needle in t for t in texts)
            else None
        )
    if key == "equals":
        wanted = needle.strip()
        return (
            None
            if any(t.strip() == wanted for t in texts)
            else f"equals: no {where} equals {shown(needle)}"
        )
    if key == "regex":
        return (
            None
            if any(re.search(needle, t) for t in texts)
            else f"regex: no {where} matches /{needle}/"
        )
    raise AssertionError(f"unhandled render assertion {key}")
