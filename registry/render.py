"""Rendering prompts: template analysis, role splitting, and compiled prompts.

Templates run in the sandbox of `registry.sandbox`, within its limits.

Roles are decided by the template *source*: before compiling, every role line
(`system:` …) becomes a call that emits a marker carrying a nonce drawn fresh for each
render. The output is split on those markers only, so no variable's value can open a
message, whatever text it holds. A `type: messages` input written alone on a line
becomes a marker too, replaced after the split by the messages themselves.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import (
    TemplateError,
    TemplateSyntaxError,
    nodes,
)
from jinja2 import meta as jinja_meta
from jinja2.exceptions import SecurityError

from registry.definitions.prompt import ROLES, PromptTemplate
from registry.definitions.tree import TreeEscape, clean_path
from registry.errors import InputError, Problem, RenderError
from registry.sandbox import (
    RENDERING,
    Limits,
    RenderState,
    TooSlow,
    new_environment,
)

PROMPTY_ROLES = ("system", "user", "assistant", "tool", "function", "developer")

_JINJA_ROLE = re.compile(r"^[ \t]*(system|user|assistant):[ \t]*$", re.MULTILINE)
_PROMPTY_ROLE = re.compile(
    r"^[ \t]*(?:#[ \t]*)?(system|user|assistant|tool|function|developer)"
    r"(\[[^\]\n]*\])?[ \t]*:[ \t]*$",
    re.MULTILINE | re.IGNORECASE,
)
_PROMPTY_TEMPLATED_ROLE = re.compile(
    r"^[ \t]*(?:#[ \t]*)?\{\{-?\s*([A-Za-z_][\w.]*)\s*-?\}\}[ \t]*:[ \t]*$", re.MULTILINE
)
# Prompty's thread-insertion marker (late v1): the conversation goes here, then a user turn.
PROMPTY_THREAD = re.compile(r"^[ \t]*!\[thread\][ \t]*$", re.MULTILINE)
_BARE_VARIABLE = re.compile(r"^[ \t]*\{\{-?\s*([A-Za-z_]\w*)\s*-?\}\}[ \t]*$", re.MULTILINE)
_ATTR = re.compile(r'(\w+)\s*=\s*"([^"]*)"')
_INTERNAL = frozenset({"__role__", "__messages__", "__loop__", "__concat__", "range"})
_MARKER = re.compile("\x00([0-9a-f]{16})\x01([RM]):([^\x00]*)\x00")


def preprocess(source: str, dialect: str, message_inputs: frozenset[str]) -> str:
    """Turn role lines and bare messages placeholders into marker calls (line count kept)."""

    def role(match: re.Match[str]) -> str:
        attrs = match.group(2) if match.lastindex and match.lastindex >= 2 else None
        return f"{{{{ __role__({match.group(1).lower()!r}, {attrs or ''!r}) }}}}"

    def templated(match: re.Match[str]) -> str:
        return f"{{{{ __role__({match.group(1)}, '') }}}}"

    def bare(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in message_inputs:
            return f"{{{{ __messages__({name!r}) }}}}"
        return match.group(0)

    if dialect == "prompty":
        source = _PROMPTY_ROLE.sub(role, source)
        source = _PROMPTY_TEMPLATED_ROLE.sub(templated, source)
        source = PROMPTY_THREAD.sub(
            "{{ __messages__('thread') }}{{ __role__('user', '') }}", source
        )
    else:
        source = _JINJA_ROLE.sub(role, source)
    return _BARE_VARIABLE.sub(bare, source)


@dataclass
class Analysis:
    """What a template needs: its included files, the variables it reads, its problems."""

    sources: dict[str, str] = field(default_factory=dict)  # name -> raw source, main first
    variables: dict[str, tuple[str, int]] = field(default_factory=dict)  # name -> (template, line)
    problems: list[Problem] = field(default_factory=list)

    @property
    def partials(self) -> dict[str, str]:
        """Included templates, without the main one."""
        return dict(list(self.sources.items())[1:])


def analyze(
    prompt: PromptTemplate,
    fetch: Callable[[str], str | None],
    *,
    file_of: Callable[[str], str],
    first_line_of: Callable[[str], int] = lambda name: 1,
) -> Analysis:
    """Parse a prompt and the closure of files it includes; find variables and problems.

    `fetch(name)` returns a template's source (None when absent) and may raise TreeEscape;
    `file_of(name)` gives the repository path used in messages, `first_line_of(name)` the
    file line where a template's body starts (after a Prompty file's frontmatter).
    """
    out = Analysis()
    env = new_environment({})
    queue: list[tuple[str, str, int]] = [(prompt.name, prompt.body, prompt.body_line)]
    out.sources[prompt.name] = prompt.body
    while queue:
        name, source, first_line = queue.pop(0)
        file = file_of(name)
        try:
            tree = env.parse(source, name=name)
        except TemplateSyntaxError as exc:
            line = (exc.lineno or 1) + first_line - 1
            out.problems.append(Problem(file, line, f"template syntax error: {exc.message}"))
            continue
        for var in sorted(jinja_meta.find_undeclared_variables(tree) - _INTERNAL):
            if var not in out.variables:
                out.variables[var] = (file, _first_use(tree, var) + first_line - 1)
        for node in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
            line = node.lineno + first_line - 1
            target = getattr(node, "template", None)  # all four node types have one
            if not isinstance(target, nodes.Const) or not isinstance(target.value, str):
                out.problems.append(
                    Problem(file, line, "include/import names must be literal strings")
                )
                continue
            raw = target.value
            try:
                clean_path(raw)
            except TreeEscape as exc:
                out.problems.append(Problem(file, line, f"include refused: {exc}"))
                continue
            try:
                resolved = _resolve(raw, name, fetch)
                if resolved in out.sources:
                    continue
                text = fetch(resolved)
            except TreeEscape as exc:
                out.problems.append(Problem(file, line, f"include refused: {exc}"))
                continue
            if text is None:
                out.problems.append(
                    Problem(file, line, f"included template {raw!r} not found under prompts/")
                )
                continue
            out.sources[resolved] = text
            queue.append((resolved, text, first_line_of(resolved)))
    return out


def _resolve(raw: str, parent: str, fetch: Callable[[str], str | None]) -> str:
    folder = parent.rsplit("/", 1)[0] if "/" in parent else ""
    if raw.startswith(("./", "../")) or not folder:
        return clean_path(f"{folder}/{raw}" if folder else raw)
    if fetch(raw) is None:
        try:
            beside = clean_path(f"{folder}/{raw}")
        except TreeEscape:
            return raw
        if fetch(beside) is not None:
            return beside
    return raw


def _first_use(tree: nodes.Template, var: str) -> int:
    lines = [n.lineno for n in tree.find_all(nodes.Name) if n.name == var and n.ctx == "load"]
    return min(lines) if lines else 1


@dataclass(frozen=True)
class Message:
    """One chat message."""

    role: str
    content: str
    name: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The wire form: {role, content} (and name when set)."""
        out = {"role": self.role, "content": self.content}
        if self.name:
            out["name"] = self.name
        return out


class CompiledPrompt:
    """A prompt compiled once and rendered many times."""

    def __init__(
        self,
        prompt: PromptTemplate,
        partials: Mapping[str, str],
        *,
        feature: str | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.prompt = prompt
        self.feature = feature or prompt.name
        self.limits = limits or Limits()
        message_inputs = frozenset(n for n, s in prompt.inputs.items() if s.type == "messages")
        dialect = prompt.dialect
        sources = {prompt.name: preprocess(prompt.body, dialect, message_inputs)}
        for name, text in partials.items():
            sources[name] = preprocess(text, dialect, message_inputs)
        self.env = new_environment(sources)
        self.default_role = "system" if dialect == "prompty" else "user"
        self.roles = PROMPTY_ROLES if dialect == "prompty" else ROLES
        try:
            self.template = self.env.get_template(prompt.name)
        except TemplateError as exc:
            raise RenderError(f"{self.feature}: template error: {exc}") from None

    def render(self, variables: Mapping[str, Any], *, validate: bool = True) -> list[Message]:
        """Validate inputs, render within the limits, and split into messages."""
        try:
            values = self.prompt.apply_inputs(dict(variables)) if validate else dict(variables)
        except InputError as exc:
            raise InputError(f"{self.feature}: {exc}") from None
        nonce = secrets.token_hex(8)
        limits = self.limits
        state = RenderState(
            self.feature, nonce, self.roles, limits, time.perf_counter() + limits.max_seconds
        )
        token = RENDERING.set(state)
        try:
            text = self._generate(values, state)
        finally:
            RENDERING.reset(token)
        return self._split(text, nonce, values)

    def _generate(self, context: dict[str, Any], state: RenderState) -> str:
        limits = self.limits
        size = 0
        parts: list[str] = []
        chunks: Iterator[str] = self.template.generate(context)
        feature = self.feature
        try:
            for chunk in chunks:
                parts.append(chunk)
                size += len(chunk)
                if size > limits.max_output_chars:
                    raise RenderError(
                        f"{feature}: render output exceeds {limits.max_output_chars} characters"
                    )
                state.check_time()
        except RenderError:
            raise
        except TooSlow as exc:
            raise RenderError(f"{feature}: {exc}") from None
        except SecurityError as exc:
            raise RenderError(f"{feature}: refused by the sandbox: {exc}") from None
        except TemplateError as exc:
            raise RenderError(f"{feature}: {exc.__class__.__name__}: {exc}") from None
        except RecursionError:
            raise RenderError(f"{feature}: the template recurses too deeply") from None
        except MemoryError:
            raise RenderError(f"{feature}: the render ran out of memory") from None
        except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError) as exc:
            raise RenderError(f"{feature}: {exc.__class__.__name__}: {exc}") from None
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return "".join(parts)

    def _split(self, text: str, nonce: str, values: Mapping[str, Any]) -> list[Message]:
        out: list[Message] = []
        role, name = self.default_role, None
        pos = 0

        def flush(chunk: str) -> None:
            content = chunk.strip()
            if content:
                out.append(Message(role, content, name))

        for match in _MARKER.finditer(text):
            if match.group(1) != nonce:
                continue
            flush(text[pos : match.start()])
            pos = match.end()
            kind, arg = match.group(2), match.group(3)
            if kind == "R":
                role, attrs = arg.split(":", 1)
                found = dict(_ATTR.findall(attrs))
                name = found.get("name")
            else:
                for msg in values.get(arg) or []:
                    out.append(Message(str(msg["role"]), str(msg["content"]), msg.get("name")))
        flush(text[pos:])
        return out


_CACHE: dict[tuple[Any, ...], CompiledPrompt] = {}
_CACHE_MAX = 4096


def compile_prompt(
    prompt: PromptTemplate,
    partials: Mapping[str, str],
    *,
    feature: str | None = None,
    limits: Limits | None = None,
) -> CompiledPrompt:
    """A compiled prompt, from the process-wide cache when the same sources were seen."""
    key = (
        feature,
        prompt.name,
        prompt.body,
        prompt.dialect,
        tuple((n, s.model_dump_json()) for n, s in sorted(prompt.inputs.items())),
        tuple(sorted(partials.items())),
        limits,
    )
    hit = _CACHE.get(key)
    if hit is None:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        hit = _CACHE[key] = CompiledPrompt(prompt, partials, feature=feature, limits=limits)
    return hit
