"""The sandbox templates run in, and the limits of one render.

Templates come from pull requests: `ImmutableSandboxedEnvironment` with
`StrictUndefined`, over a loader that knows only validated names (never a raw path).
Every loop and every `~` is routed through a step budget and a deadline (an AST
transform at parse time); `*`, `+`, `%`, `**` and the filters that grow strings are
bounded. The state of the render in progress lives in a ContextVar, read by the
helpers the compiled templates call (`__role__`, `__messages__`, `__loop__`…).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, TemplateNotFound, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from registry.definitions.tree import TreeEscape, clean_path
from registry.errors import RenderError

MAX_OUTPUT_CHARS = 200_000
MAX_RENDER_SECONDS = 1.0
MAX_LOOP_ITERATIONS = 100_000


@dataclass(frozen=True)
class Limits:
    """What one render may cost."""

    max_output_chars: int = MAX_OUTPUT_CHARS
    max_seconds: float = MAX_RENDER_SECONDS
    max_loop_iterations: int = MAX_LOOP_ITERATIONS


@dataclass
class RenderState:
    """The limits and nonce of the render in progress (one per render, in a ContextVar)."""

    feature: str
    nonce: str
    roles: tuple[str, ...]
    limits: Limits
    deadline: float
    steps: int = 0

    def tick(self, count: int = 1) -> None:
        self.steps += count
        if self.steps > self.limits.max_loop_iterations:
            raise SecurityError(f"loops exceed {self.limits.max_loop_iterations} iterations")
        if self.steps & 0xFF == 0 or count > 1:
            self.check_time()

    def check_time(self) -> None:
        if time.perf_counter() > self.deadline:
            raise TooSlow(f"render took longer than {self.limits.max_seconds:g} s")

    def check_size(self, value: Any) -> Any:
        if isinstance(value, str | list | tuple) and len(value) > self.limits.max_output_chars:
            raise SecurityError(
                f"a value of {len(value)} items exceeds the {self.limits.max_output_chars} limit"
            )
        return value


class TooSlow(Exception):
    """The render's time limit passed."""


RENDERING: ContextVar[RenderState | None] = ContextVar("promptreg_render", default=None)


def _state() -> RenderState:
    state = RENDERING.get()
    if state is None:
        raise SecurityError("render helpers are only available during a render")
    return state


def _role(value: Any, attrs: str = "") -> str:
    state = _state()
    name = str(value).strip().lower()
    if name not in state.roles:
        raise RenderError(f"{state.feature}: {value!r} is not a message role")
    return f"\x00{state.nonce}\x01R:{name}:{attrs}\x00"


def _messages(name: str) -> str:
    return f"\x00{_state().nonce}\x01M:{name}\x00"


def _loop(iterable: Any) -> Iterator[Any]:
    state = _state()
    for item in iterable:
        state.tick()
        yield item


def _range(*args: int) -> range:
    rng = range(*args)
    _state().tick(len(rng))
    return rng


def _concat(*parts: Any) -> str:
    state = _state()
    total = sum(len(p) if isinstance(p, str) else 0 for p in parts)
    if total > state.limits.max_output_chars:
        raise SecurityError("string concatenation too large in a template")
    return state.check_size("".join(str(p) for p in parts))  # type: ignore[no-any-return]


def _bounded_filter(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a string filter so its arguments and result stay within the size limit."""
    skip = 1 if getattr(original, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(original)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        state = _state()
        given = args[skip:]
        for value in [*given[1:], *kwargs.values()]:
            if isinstance(value, int) and value > state.limits.max_output_chars:
                raise SecurityError(f"|{name} argument too large in a template")
        if name == "replace" and len(given) >= 3:
            text, old, new = (str(a) for a in given[:3])
            grow = text.count(old) * max(0, len(new) - len(old)) if old else len(new) * len(text)
            if len(text) + grow > state.limits.max_output_chars:
                raise SecurityError("|replace result too large in a template")
        return state.check_size(original(*args, **kwargs))

    return bounded


def _call(name: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
    call = nodes.Call(nodes.Name(name, "load"), args, [], None, None)
    call.set_lineno(lineno)
    return call


class _Guard(NodeTransformer):
    """Route every loop and `~` through the render's step and size limits."""

    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802 - jinja2 visitor name
        self.generic_visit(node)
        node.iter = _call("__loop__", [node.iter], node.lineno)  # type: ignore[list-item]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        return _call("__concat__", list(node.nodes), node.lineno)


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with arithmetic on sequences and every loop bounded."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        guarded: nodes.Template = _Guard().visit(tree)
        return guarded

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        state = _state()
        limit = state.limits.max_output_chars
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > 64:
                raise SecurityError("exponent too large in a template (the limit is 64)")
            return left**right
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                is_seq = isinstance(seq, str | list | tuple) and isinstance(count, int)
                if is_seq and len(seq) * count > limit:
                    raise SecurityError("sequence repetition too large in a template")
            return left * right
        if operator == "+":
            sized = isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple)
            if sized and len(left) + len(right) > limit:
                raise SecurityError("concatenation too large in a template")
            return left + right
        return state.check_size(left % right)


class _Loader(BaseLoader):
    """Serves only the templates it was given, by name."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        self.sources = sources

    def get_source(self, environment: Any, template: str) -> tuple[str, str, Callable[[], bool]]:
        if template not in self.sources:
            raise TemplateNotFound(template)
        return self.sources[template], template, lambda: True


def new_environment(sources: Mapping[str, str]) -> _Sandbox:
    env = _Sandbox(
        loader=_Loader(sources),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        auto_reload=False,
        cache_size=-1,
    )
    env.join_path = lambda template, parent: _join(template, parent, sources)  # type: ignore[method-assign]
    env.globals.update(
        __role__=_role, __messages__=_messages, __loop__=_loop, __concat__=_concat, range=_range
    )
    for name in ("center", "indent", "replace", "format", "wordwrap", "truncate", "join"):
        env.filters[name] = _bounded_filter(name, env.filters[name])
    return env


def _join(template: str, parent: str, names: Mapping[str, str] | set[str]) -> str:
    """Resolve an include name: root-relative, or relative to the including file's folder."""
    folder = parent.rsplit("/", 1)[0] if "/" in parent else ""
    relative = template.startswith(("./", "../"))
    try:
        beside = clean_path(f"{folder}/{template}" if folder else template)
    except TreeEscape:
        return template
    if relative or (template not in names and beside in names):
        return beside
    return template
