"""What a change to the registry does, feature by feature, and what it costs.

Compares the registry at a git ref (read from git's objects, no checkout) with the working
tree, which is what the pull request would merge. Per feature: added, changed, removed or
invalid, the unified diff of prompt, effective policy and included partials, and the
estimated input tokens of its `sample` before and after, with the cost per 1,000 requests
on its first model: the silent cost creep, visible in review.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field

from registry.definitions.content import FeatureDefinition, VersionContent
from registry.definitions.load import LoadedRegistry
from registry.errors import CatalogError, RenderError
from registry.tokens import Catalog

WORKTREE = "working tree"


@dataclass
class Sample:
    """A feature's sample request on its first model: input tokens and cost per 1,000."""

    tokens: int | None = None
    model: str | None = None
    cost_per_1k: float | None = None


@dataclass
class FeatureChange:
    """How one feature differs between the base ref and the working tree."""

    name: str
    status: str  # added, changed, removed, invalid
    policy_path: str
    prompt_diff: str = ""
    policy_diff: str = ""
    partials_diff: str = ""
    tokens_from: int | None = None
    tokens_to: int | None = None
    token_delta: int | None = None
    model: str | None = None
    cost_per_1k_from: float | None = None
    cost_per_1k_to: float | None = None
    cost_per_1k_delta: float | None = None
    problems: list[str] = field(default_factory=list)


def sample_of(feature: FeatureDefinition, catalog: Catalog) -> Sample:
    """Render the feature's sample and count it on the first model (empty without a sample)."""
    from registry.request import prepare

    model = feature.policy.models[0].model
    if feature.prompt.sample is None:
        return Sample(model=model)
    try:
        first = prepare(feature, catalog, feature.prompt.sample).first
    except (RenderError, CatalogError):
        return Sample(model=model)
    cost = None if first.cost_usd is None else first.cost_usd * 1000
    return Sample(first.input_tokens, first.model, cost)


def unified(old: str, new: str, a: str, b: str) -> str:
    """A unified diff of two texts ('' when equal); every line ends with a newline."""
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True), a, b)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _pretty(feature: FeatureDefinition | None) -> str:
    return (
        "" if feature is None else json.dumps(feature.policy_data, indent=2, sort_keys=True) + "\n"
    )


def _delta(old: float | None, new: float | None) -> float | None:
    return None if old is None or new is None else new - old


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a feature's definition (None: absent), its catalog, a name."""

    feature: FeatureDefinition | None
    catalog: Catalog
    name: str  # "v3", "origin/main", "working tree"


def change(name: str, before: Side, after: Side) -> FeatureChange:
    """How feature `name` differs from `before` to `after`: diffs, tokens, cost per 1,000."""
    old, new = before.feature, after.feature
    either = new or old
    assert either is not None
    status = "added" if old is None else "removed" if new is None else "changed"
    a, b = f"{name}@{before.name}", f"{name}@{after.name}"
    sample_before = sample_of(old, before.catalog) if old else Sample()
    sample_after = sample_of(new, after.catalog) if new else Sample()
    tokens_from = sample_before.tokens if old else 0
    tokens_to = sample_after.tokens if new else 0
    cost_from = sample_before.cost_per_1k if old else 0.0
    cost_to = sample_after.cost_per_1k if new else 0.0
    old_partials = old.partials if old else {}
    new_partials = new.partials if new else {}
    prompts = either.layout.prompts_dir
    return FeatureChange(
        name=name,
        status=status,
        policy_path=either.policy_path,
        prompt_diff=unified(
            old.prompt.source if old else "", new.prompt.source if new else "", a, b
        ),
        policy_diff=unified(_pretty(old), _pretty(new), a, b),
        partials_diff="".join(
            unified(
                old_partials.get(part, ""),
                new_partials.get(part, ""),
                f"{prompts}/{part}@{before.name}",
                f"{prompts}/{part}@{after.name}",
            )
            for part in sorted(set(old_partials) | set(new_partials))
        ),
        tokens_from=tokens_from,
        tokens_to=tokens_to,
        token_delta=None if tokens_from is None or tokens_to is None else tokens_to - tokens_from,
        model=sample_after.model or sample_before.model,
        cost_per_1k_from=cost_from,
        cost_per_1k_to=cost_to,
        cost_per_1k_delta=_delta(cost_from, cost_to),
    )


def compare(
    base: LoadedRegistry, head: LoadedRegistry, base_name: str
) -> tuple[list[FeatureChange], int]:
    """Every feature that differs between a ref and the working tree (by name), and how
    many are unchanged."""
    changes: list[FeatureChange] = []
    unchanged = 0
    names = sorted(set(base.features) | set(head.features) | head.broken)
    for name in names:
        old, new = base.features.get(name), head.features.get(name)
        if name in head.broken:
            problems = [p for p in head.problems if p.feature == name]
            path = old.policy_path if old else (problems[0].file if problems else "")
            changes.append(FeatureChange(name, "invalid", path, problems=list(map(str, problems))))
            continue
        if old is not None and new is not None and old.content_hash == new.content_hash:
            unchanged += 1
            continue
        changes.append(
            change(name, Side(old, base.catalog, base_name), Side(new, head.catalog, WORKTREE))
        )
    return changes, unchanged


def between_versions(
    name: str, old: tuple[int, VersionContent], new: tuple[int, VersionContent]
) -> FeatureChange:
    """How two stored versions of a feature differ, each priced as it recorded."""

    def side(number: int, content: VersionContent) -> Side:
        definition = content.definition()
        return Side(definition, Catalog.from_snapshot(definition.models), str(number))

    return change(name, side(*old), side(*new))


# --- rendering -----------------------------------------------------------------------------

SIGN = {"added": "+", "changed": "~", "removed": "-", "invalid": "!"}


def signed(value: int | None) -> str:
    """`+312`, `-40`, `+0`; `n/a` when unknown."""
    return "n/a" if value is None else f"{value:+d}"


def usd(value: float | None, *, sign: bool = False) -> str:
    """A dollar amount to the hundredth of a cent; `n/a` when unknown."""
    if value is None:
        return "n/a"
    text = f"${abs(value):,.4f}"
    return (("-" if value < 0 else "+") + text) if sign else text


def _tokens(change: FeatureChange) -> str:
    if change.tokens_from is None and change.tokens_to is None:
        return "n/a (no sample)"
    return f"{change.tokens_from if change.tokens_from is not None else 'n/a'} → " + (
        f"{change.tokens_to if change.tokens_to is not None else 'n/a'}"
    )


def headline(change: FeatureChange) -> str:
    """One line: the feature, what happened, tokens and cost per 1,000 requests."""
    if change.status == "invalid":
        return f"! {change.name} (invalid in the {WORKTREE})"
    return (
        f"{SIGN[change.status]} {change.name} ({change.status}): input tokens "
        f"{_tokens(change)} ({signed(change.token_delta)}) on {change.model}; cost per 1,000 "
        f"requests {usd(change.cost_per_1k_from)} → {usd(change.cost_per_1k_to)} "
        f"({usd(change.cost_per_1k_delta, sign=True)})"
    )


def text(changes: list[FeatureChange], unchanged: int, base: str, sha: str) -> str:
    """The terminal report."""
    out = [f"promptreg diff: {WORKTREE} against {base} ({sha[:12]})", ""]
    for change in changes:
        out.append(headline(change))
        out.extend(f"    {problem}" for problem in change.problems)
        for diff in (change.prompt_diff, change.policy_diff, change.partials_diff):
            if diff:
                out.append(diff.rstrip("\n"))
        out.append("")
    out.append(f"{len(changes)} feature(s) differ, {unchanged} unchanged")
    return "\n".join(out) + "\n"


def _fence(body: str) -> str:
    # Longer than any run of backticks inside, so no diff line can close the block.
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}diff\n{body.rstrip()}\n{ticks}"


def markdown(changes: list[FeatureChange], unchanged: int, base: str, sha: str) -> str:
    """A pull-request comment: a summary table, then each diff folded."""
    out = [f"### promptreg: prompt and policy changes against `{base}` (`{sha[:12]}`)", ""]
    if not changes:
        return "\n".join([*out, f"No feature changed ({unchanged} unchanged).", ""])
    out += [
        "| | feature | input tokens | Δ tokens | model | cost / 1k requests | Δ cost / 1k |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for c in changes:
        if c.status == "invalid":
            out.append(f"| invalid | `{c.name}` | | | | | |")
            continue
        delta = signed(c.token_delta)
        out.append(
            f"| {c.status} | `{c.name}` | {_tokens(c)} | **{delta}** | {c.model} | "
            f"{usd(c.cost_per_1k_from)} → {usd(c.cost_per_1k_to)} | "
            f"{usd(c.cost_per_1k_delta, sign=True)} |"
        )
    out += ["", f"{unchanged} feature(s) unchanged.", ""]
    for c in changes:
        body = (
            "\n".join(c.problems)
            if c.problems
            else "".join((c.prompt_diff, c.policy_diff, c.partials_diff))
        )
        if not body.strip():
            continue
        out += [
            f"<details><summary><code>{c.name}</code> ({c.status})</summary>",
            "",
            _fence(body),
            "",
            "</details>",
            "",
        ]
    return "\n".join(out)


def _escape(message: str) -> str:
    return message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github(changes: list[FeatureChange]) -> str:
    """GitHub Actions annotations, one per feature, on its policy file."""
    lines = []
    for c in changes:
        level = "error" if c.status == "invalid" else "notice"
        message = "; ".join(c.problems) if c.problems else headline(c)[2:]
        lines.append(f"::{level} file={c.policy_path},title=promptreg diff::{_escape(message)}")
    return "\n".join(lines) + ("\n" if lines else "")
