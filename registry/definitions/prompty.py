"""Prompty files (`.prompty`): Prompty's frontmatter dialects translated into a PromptTemplate.

Accepted: v1 (`inputs` map of `{type, default, description, sample}`, `sample`,
`model.api/configuration/parameters`, `authors`), late v1 (`metadata`, `model.connection`
and `options`, `inputs` as a map of sample *values*), v2 (`inputs` list of `{name, kind,
default}`, `model.id/options`, `template.format.kind`) and the shorthands (`model: gpt-4o`;
no frontmatter). Keys promptreg has no use for (`name`, `authors`, `tools`, `outputs`…)
are accepted: Prompty's schema is Prompty's. `model` is kept for display only. The body
is Jinja, split into messages by `registry.render` in the "prompty" dialect.

Decisions, and why:
- Typed inputs map to promptreg's types (`array` → list, `float` → number, `thread` →
  messages); an unknown kind is an error, as promptreg checks every value it is given.
  `default` makes an input optional and must fit the type. promptflow's
  `is_chat_history` does not make an input `messages`: its chat history is a list of
  `{inputs, outputs}` turns, so the declared `type` wins.
- An input known only by a sample value (a `sample` key, or late v1's `inputs: {name:
  value}`) gets the type of that value and is *required*: a sample is an example, and
  silently sending example data to a model when a caller forgot a variable is worse than
  an error naming it. When the file has `inputs`, a `sample` key they do not declare
  counts only if the body uses it (leftovers of a shared sample JSON are not inputs).
  A file without samples whose inputs all have defaults gets the sample `{}` (Prompty's
  sample falls back to defaults too), so `validate` renders it.
- `![thread]` splices in an optional `thread` input (messages, default `[]`) and opens a
  `user` message, which is what Prompty sends.
- `${file:rel}` is read relative to the file's folder and must stay inside the
  repository (`.json`/`.yaml` parsed, other files as text); its canonical JSON is
  appended to `source`, so editing the referenced file makes a new version.
- `${env:VAR}`, `${env:VAR:default}`, `${ENV:VAR}` are never resolved: versions are
  hashed, stored and served over the API, so reading the syncing machine's environment
  would pull secrets (API keys) into them and make a commit's content depend on where
  it was synced. They stay verbatim in `model`; in `inputs`/`sample`, where they would
  become prompt text, they are refused.
- A reference is resolved only when a YAML scalar *is* the reference, never mid-string.
- `base: other.prompty` hoists the base's `model`, `inputs` and `sample` under this
  file's, as Prompty v1 did; `{% extends "other.prompty" %}` is resolved by the engine.
- Another engine (`template: mustache`) is refused: promptreg renders Jinja only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment, TemplateSyntaxError
from jinja2 import meta as jinja_meta

from registry.definitions.prompt import (
    InputSpec,
    PromptFileError,
    PromptTemplate,
    decode,
    file_error,
    split_frontmatter,
)
from registry.definitions.prompty_inputs import NO_SAMPLE, declare, inferred
from registry.definitions.tree import TreeEscape, clean_path
from registry.definitions.yamlpos import Loc, Located, YamlProblem, load_yaml
from registry.render import PROMPTY_THREAD

Read = Callable[[str], bytes]

_ENGINES = ("jinja2", "jinja")
_MAX_BASE_DEPTH = 5
_MAX_FILE_BYTES = 1_000_000


def parse_prompty(data: bytes, path: str, name: str, *, read: Read) -> PromptTemplate:
    """Parse a Prompty file into a PromptTemplate of the "prompty" dialect."""
    try:
        return _parse(data, path, name, read)
    except PromptFileError:
        raise
    except Exception as exc:  # a malformed file is a problem report, never a crash
        message = f"cannot read this Prompty file: {exc.__class__.__name__}: {exc}"
        raise file_error(path, 1, message) from None


@dataclass
class _File:
    """One Prompty file being read: its text, located frontmatter and what it resolved."""

    path: str
    read: Read
    body: str = ""
    body_line: int = 1
    located: Located | None = None
    sources: list[str] = field(default_factory=list)

    def line(self, *loc: str | int) -> int | None:
        return self.located.line_of(loc) if self.located is not None else None


@dataclass
class _Meta:
    """The frontmatter translated: what a PromptTemplate needs from it."""

    model: dict[str, Any] | None = None
    description: str | None = None
    inputs: dict[str, InputSpec] = field(default_factory=dict)
    samples: dict[str, Any] = field(default_factory=dict)  # from `inputs` entries
    sample: dict[str, Any] | None = None  # the `sample` section
    has_inputs: bool = False
    sample_line: int | None = None
    sources: list[str] = field(default_factory=list)


def _parse(data: bytes, path: str, name: str, read: Read) -> PromptTemplate:
    file, raw = _load(data, path, read)
    meta = _interpret(file, raw, ())
    body = file.body
    if not body.strip():
        raise file_error(path, file.body_line, "the prompt body is empty")
    inputs = dict(meta.inputs)
    given = {**meta.samples, **(meta.sample or {})}
    used = _body_names(body)
    sample: dict[str, Any] = {}
    for key, value in given.items():
        if key not in inputs:
            if meta.has_inputs and used is not None and key not in used:
                continue  # a leftover key of the sample, not an input of this prompt
            inputs[key] = inferred(value)
        if value is not None or key in meta.inputs:
            sample[key] = value
    if PROMPTY_THREAD.search(body):
        thread = inputs.setdefault("thread", InputSpec(type="messages", default=[]))
        if thread.type == "list":  # a list (declared or sampled) spliced in holds messages
            inputs["thread"] = thread.model_copy(update={"type": "messages"})
        elif thread.type != "messages":
            line = file.line("inputs", "thread") or file.body_line
            message = "input 'thread' is spliced in by ![thread]: make it kind thread"
            raise file_error(path, line, message)
    has_sample = meta.sample is not None or bool(meta.samples)
    if not has_sample and not any(spec.required for spec in inputs.values()):
        has_sample, meta.sample_line = True, file.line("inputs") or file.body_line
    return PromptTemplate(
        path=path,
        name=name,
        body=body,
        body_line=file.body_line,
        description=meta.description,
        inputs=inputs,
        sample=sample if has_sample else None,
        dialect="prompty",
        model=meta.model,
        source="".join(meta.sources),
        sample_line=meta.sample_line,
    )


def _load(data: bytes, path: str, read: Read) -> tuple[_File, dict[str, Any]]:
    """Decode a file, split off its frontmatter and resolve its references."""
    text = decode(data, path)
    if not text.strip():
        raise file_error(path, 1, "empty prompt file")
    normal = text.replace("\r\n", "\n").replace("\r", "\n")
    front, front_line, body, body_line = split_frontmatter(normal, path)
    file = _File(path, read, body, body_line, sources=[text])
    if front is None or not front.strip():
        return file, {}
    try:
        file.located = load_yaml(front, path, line_offset=front_line - 1)
    except YamlProblem as exc:
        raise PromptFileError([exc.problem]) from None
    if file.located.data is None:
        return file, {}
    if not isinstance(file.located.data, dict):
        raise file_error(path, front_line, "frontmatter must be a mapping of keys to values")
    resolved = _resolve(file.located.data, (), file)
    assert isinstance(resolved, dict)
    return file, resolved


def _resolve(value: Any, loc: Loc, file: _File) -> Any:
    """Resolve every scalar that IS a `${file:…}` reference; keep `${env:…}` verbatim."""
    if isinstance(value, dict):
        return {k: _resolve(v, (*loc, k), file) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, (*loc, i), file) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    ref = value.strip()
    if not (ref.startswith("${") and ref.endswith("}") and ":" in ref) or "}" in ref[2:-1]:
        return value
    kind, _, arg = ref[2:-1].partition(":")
    kind = kind.lower()
    line = file.line(*loc)
    if kind == "file":
        target = _target(file, arg, line, ref)
        return _read_data(file, target, line, ref)
    if kind == "env" and loc and loc[0] in ("inputs", "sample"):
        message = f"{ref} is not allowed in {loc[0]}: promptreg never reads the server's "
        raise file_error(file.path, line, message + "environment into a prompt (pass a variable)")
    return value


def _target(file: _File, rel: str, line: int | None, ref: str) -> str:
    """The repository path of `rel`, relative to the folder of `file`."""
    if rel.startswith("/") or "\\" in rel or (len(rel) > 1 and rel[1] == ":"):
        raise file_error(file.path, line, f"{ref} is refused: an absolute path")
    folder = file.path.rsplit("/", 1)[0] if "/" in file.path else ""
    try:
        return clean_path(f"{folder}/{rel}" if folder else rel)
    except TreeEscape:
        raise file_error(file.path, line, f"{ref} is refused: it leaves the repository") from None


def _read_bytes(file: _File, target: str, line: int | None, ref: str) -> bytes:
    try:
        data = file.read(target)
    except TreeEscape:
        raise file_error(file.path, line, f"{ref} is refused: it leaves the repository") from None
    except FileNotFoundError:
        raise file_error(file.path, line, f"{ref} not found: {target} does not exist") from None
    except OSError as exc:
        raise file_error(file.path, line, f"{ref} cannot be read: {exc.strerror or exc}") from None
    if len(data) > _MAX_FILE_BYTES:
        raise file_error(file.path, line, f"{ref} is over {_MAX_FILE_BYTES} bytes")
    return data


def _read_data(file: _File, target: str, line: int | None, ref: str) -> Any:
    """Read a `${file:}` target as JSON, YAML or text, and record it in the sources."""
    text = decode(_read_bytes(file, target, line, ref), target)
    value: Any = text
    if target.endswith(".json"):
        try:
            value = json.loads(text)
        except ValueError as exc:
            message = f"invalid JSON (read for {ref} in {file.path}): {exc}"
            raise file_error(target, getattr(exc, "lineno", None), message) from None
    elif target.endswith((".yaml", ".yml")):
        try:
            value = load_yaml(text, target).data
        except YamlProblem as exc:
            raise PromptFileError([exc.problem]) from None
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    file.sources.append(f"\n\n# {ref} = {target}\n{canonical}\n")
    return value


def _interpret(file: _File, raw: dict[str, Any], chain: tuple[str, ...]) -> _Meta:
    """Translate one file's resolved frontmatter (and its `base:` chain)."""
    _check_engine(file, raw)
    meta = _Meta(sources=file.sources)
    model = raw.get("model")
    if isinstance(model, str):
        meta.model = {"id": model}
    elif isinstance(model, dict):
        meta.model = model
    elif model is not None:
        raise file_error(file.path, file.line("model"), "model must be a mapping or a model name")
    description = raw.get("description")
    meta.description = description if isinstance(description, str) else None
    if "inputs" in raw and raw["inputs"] is not None:
        meta.has_inputs = True
        _declare_all(file, raw["inputs"], meta)
    sample = raw.get("sample")
    if sample is not None:
        if not isinstance(sample, dict):
            message = "sample must be a mapping of input names to values"
            raise file_error(file.path, file.line("sample"), message)
        meta.sample = dict(sample)
        meta.sample_line = file.line("sample")
    elif meta.samples:
        meta.sample_line = file.line("inputs")
    if raw.get("base") is not None:
        _hoist_base(file, raw["base"], meta, chain)
    return meta


def _check_engine(file: _File, raw: dict[str, Any]) -> None:
    template = raw.get("template")
    engine, parser = template, None
    if isinstance(template, dict):
        engine = template.get("format", template.get("type"))
        parser = template.get("parser")
        engine = engine.get("kind") if isinstance(engine, dict) else engine
        parser = parser.get("kind") if isinstance(parser, dict) else parser
    line = file.line("template")
    if engine is not None and str(engine).strip().lower() not in _ENGINES:
        message = f"template engine {engine!r} is not supported: promptreg renders Jinja only"
        raise file_error(file.path, line, message)
    if parser is not None and str(parser).strip().lower() != "prompty":
        message = f"template parser {parser!r} is not supported: only Prompty's role lines are"
        raise file_error(file.path, line, message)


def _declare_all(file: _File, raw: Any, meta: _Meta) -> None:
    """Declare the inputs of a v1 map (specs or sample values) or a v2 list."""
    entries: list[tuple[str, Any, int | None]] = []
    listed = isinstance(raw, list)
    if isinstance(raw, dict):
        entries = [(str(k), v, file.line("inputs", k)) for k, v in raw.items()]
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            line = file.line("inputs", i) or file.line("inputs")
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise file_error(file.path, line, f"inputs[{i}] must be a mapping with a name")
            if item["name"] in meta.inputs or any(item["name"] == e[0] for e in entries):
                raise file_error(file.path, line, f"input {item['name']!r} is declared twice")
            entries.append((item["name"], {k: v for k, v in item.items() if k != "name"}, line))
    else:
        message = "inputs must be a mapping of names to declarations, or a list of them"
        raise file_error(file.path, file.line("inputs"), message)
    for name, value, line in entries:
        spec, sample = declare(name, value, file.path, line, spec=listed)
        meta.inputs[name] = spec
        if sample is not NO_SAMPLE:
            meta.samples[name] = sample


def _hoist_base(file: _File, base: Any, meta: _Meta, chain: tuple[str, ...]) -> None:
    """Put the `base:` file's model, inputs and sample under this file's."""
    line = file.line("base")
    if not isinstance(base, str) or not base.strip():
        raise file_error(file.path, line, "base must be the relative path of another .prompty file")
    ref = f"base: {base}"
    target = _target(file, base.strip(), line, ref)
    if target == file.path or target in chain:
        raise file_error(file.path, line, f"{ref} loops back to {target}")
    if len(chain) >= _MAX_BASE_DEPTH:
        raise file_error(file.path, line, f"{ref}: bases nest deeper than {_MAX_BASE_DEPTH} files")
    base_file, raw = _load(_read_bytes(file, target, line, ref), target, file.read)
    parent = _interpret(base_file, raw, (*chain, file.path))
    if parent.model is not None:
        meta.model = _merge(parent.model, meta.model or {})
    meta.inputs = {**parent.inputs, **meta.inputs}
    meta.samples = {**parent.samples, **meta.samples}
    if parent.sample is not None:
        meta.sample = {**parent.sample, **(meta.sample or {})}
    meta.has_inputs = meta.has_inputs or parent.has_inputs
    meta.description = meta.description or parent.description
    meta.sources.append(f"\n\n# {ref} = {target}\n")
    meta.sources.extend(parent.sources)


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        old = out.get(key)
        out[key] = (
            _merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
        )
    return out


def _body_names(body: str) -> set[str] | None:
    """Variables the body reads (parsed only, never rendered); None when it does not parse."""
    try:
        return jinja_meta.find_undeclared_variables(Environment().parse(body))
    except TemplateSyntaxError:
        return None
