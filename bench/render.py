"""Render + token count of one feature: promptreg's path against plain Jinja, in one run.

    python bench/render.py [FEATURE] [--repo PATH] [--tokens 2000] [--iterations 400]
    python bench/render.py --synthetic      # a temporary registry with a ~2,000-token prompt

The feature (default `kb.answer`, the demo's largest prompt) is rendered with its sample,
one string leaf of it padded until the request is about `--tokens` input tokens.

Ours: `registry.request.prepare(feature, catalog, variables)`: input checks and defaults,
the sandboxed template (compiled once and cached), role splitting, and a token count on
every model of the fallback chain, plus the budget verdict.
Baseline: the same sources rendered by a plain `jinja2.Environment` (no sandbox; a
`DictLoader` only so that `{% include %}` resolves; compiled once, like ours) with the
defaults already filled in, then tiktoken's `encode` on the same encodings (one
count per model of the chain, as `prepare` does), on the rendered text as one message.

Fairness: `registry.tokens` caches counts in an LRU keyed by the text. Rendering the
same variables every iteration would time a dict lookup on our side against a real
tokenizer run on the baseline's. So every iteration appends a counter to one string
input, for BOTH paths: each call on either side renders new text and runs the real
tokenizers; no path gets a cache hit. The two paths alternate which goes first in each
iteration so that drift (frequency scaling, GC) falls on both alike.

Ours counts the chat messages (OpenAI's per-message overhead, each message encoded
separately), the baseline one flat text: that difference is part of what is measured.

Prints median and p99 per call for both and the ratio (target: ours <= 1.5x baseline on
the median). The exit status is 0 either way (2 when the feature cannot be loaded):
timing noise must not fail a build.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2

from registry.definitions.content import FeatureDefinition as Feature
from registry.definitions.load import RegistryLoader
from registry.definitions.tree import DirTree
from registry.request import prepare
from registry.tokens import Catalog, encodings

TARGET_RATIO = 1.5
_FILLER = (
    "invoice reminder client workspace settings billing payment overdue template plan "
    "report export currency receipt project team member permission calendar deadline "
    "the a of to and in for on with when after before each every your their this that "
    "is are can will may should must not only also then than more less first last next"
)
FILLER_WORDS = _FILLER.split()


def filler(words: int, seed: int = 7) -> str:
    """Deterministic English-like text of `words` words, in sentences."""
    out: list[str] = []
    state = seed
    for i in range(words):
        state = (state * 1103515245 + 12345) % (2**31)
        word = FILLER_WORDS[state % len(FILLER_WORDS)]
        out.append(word.capitalize() if i % 12 == 0 else word)
        if i % 12 == 11:
            out[-1] += "."
    return " ".join(out) + "."


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, (*path, i))]
    return []


def _set(data: Any, path: tuple[Any, ...], value: str) -> Any:
    if not path:
        return value
    copy: Any = dict(data) if isinstance(data, dict) else list(data)
    copy[path[0]] = _set(data[path[0]], path[1:], value)
    return copy


def expand(feature: Feature, catalog: Catalog, target: int) -> dict[str, Any]:
    """The sample, with its longest unbounded string padded to about `target` input tokens."""
    sample = dict(feature.prompt.sample or {})
    inputs = feature.prompt.inputs
    leaves = [
        (path, text)
        for path, text in _leaves(sample)
        if len(path) > 1 or (inputs.get(path[0]) and inputs[path[0]].max_length is None)
    ]
    if not leaves:
        return sample
    path, text = max(leaves, key=lambda leaf: len(leaf[1]))

    def tokens(words: int) -> int:
        padded = _set(sample, path, text + " " + filler(words) if words else text)
        return prepare(feature, catalog, padded).first.input_tokens

    low, high = 0, 1
    while tokens(high) < target:
        low, high = high, high * 2
        if high > 1_000_000:
            raise SystemExit(f"cannot pad {feature.name} to {target} tokens")
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if tokens(mid) < target else (low, mid)
    return _set(sample, path, text + " " + filler(high) if high else text)


def varying_input(feature: Feature, variables: dict[str, Any]) -> str:
    """A top-level string input that takes a counter (free text: no enum)."""
    for name, spec in feature.prompt.inputs.items():
        if spec.type == "string" and spec.enum is None and isinstance(variables.get(name), str):
            return name
    raise SystemExit(f"{feature.name} has no free-text string input to vary per iteration")


def baseline(feature: Feature, catalog: Catalog) -> Callable[[dict[str, Any]], int]:
    """Plain Jinja + tiktoken's `encode` (the same encodings) on every model of the chain."""
    env = jinja2.Environment(
        loader=jinja2.DictLoader({feature.prompt.name: feature.prompt.body, **feature.partials}),
        keep_trailing_newline=True,
    )
    template = env.get_template(feature.prompt.name)
    names = [
        encodings.encoding_for(catalog.require(ref.model).tokenizer)
        for ref in feature.policy.models
    ]
    encoders = [encodings.encoding(name) for name in names]

    def run(variables: dict[str, Any]) -> int:
        text = template.render(**variables)
        counts = [len(encoder.encode(text, disallowed_special=())) for encoder in encoders]
        return counts[0]

    return run


def ours(feature: Feature, catalog: Catalog) -> Callable[[dict[str, Any]], int]:
    """promptreg's path, as the API and the client library take it."""

    def run(variables: dict[str, Any]) -> int:
        return prepare(feature, catalog, variables).first.input_tokens

    return run


def summary(samples_ns: list[int]) -> tuple[float, float]:
    """(median, p99) in milliseconds."""
    ms = [s / 1e6 for s in samples_ns]
    return statistics.median(ms), statistics.quantiles(ms, n=100, method="inclusive")[98]


def bench(
    feature: Feature, catalog: Catalog, *, target: int, iterations: int, warmup: int
) -> float:
    """Run both paths, print the figures, return the median ratio."""
    variables = expand(feature, catalog, target)
    vary = varying_input(feature, variables)
    filled = feature.prompt.apply_inputs(variables)  # the baseline gets defaults for free
    ours_run, base_run = ours(feature, catalog), baseline(feature, catalog)

    def inputs(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
        tag = f" (#{i})"
        return {**variables, vary: variables[vary] + tag}, {**filled, vary: filled[vary] + tag}

    timings: dict[str, list[int]] = {"ours": [], "baseline": []}
    counts: dict[str, int] = {}
    gc.collect()
    for i in range(warmup + iterations):
        mine, theirs = inputs(i)
        order = [("ours", ours_run, mine), ("baseline", base_run, theirs)]
        for name, run, values in order if i % 2 == 0 else reversed(order):
            start = time.perf_counter_ns()
            counts[name] = run(values)
            elapsed = time.perf_counter_ns() - start
            if i >= warmup:
                timings[name].append(elapsed)

    chain = ", ".join(ref.model for ref in feature.policy.models)
    print(f"feature: {feature.name}   chain: {chain}")
    print(
        f"input tokens on {feature.policy.models[0].model}: ours {counts['ours']} "
        f"(messages), baseline {counts['baseline']} (one text)   varied input: {vary!r}"
    )
    print(
        f"iterations: {iterations} (+{warmup} warm-up), every one with a fresh text on both paths"
    )
    ours_med, ours_p99 = summary(timings["ours"])
    base_med, base_p99 = summary(timings["baseline"])
    print(f"{'':10}{'median ms':>12}{'p99 ms':>12}")
    print(f"{'ours':10}{ours_med:12.3f}{ours_p99:12.3f}")
    print(f"{'baseline':10}{base_med:12.3f}{base_p99:12.3f}")
    ratio = ours_med / base_med
    verdict = "ok" if ratio <= TARGET_RATIO else "OVER TARGET"
    print(f"ratio (ours / baseline): median {ratio:.2f}x, p99 {ours_p99 / base_p99:.2f}x")
    print(f"target <= {TARGET_RATIO}x on the median: {verdict}")
    return ratio


SYNTHETIC_POLICY = """\
models: [gpt-4o]
max_output_tokens: 500
budget: {max_request_tokens: 8000}
degraded_message: Unavailable right now.
"""


def synthetic_registry(root: Path) -> None:
    """A registry whose `bench.answer` renders to ~2,000 tokens (static text + documents)."""
    docs = "\n".join(f"  - title: Article {n}\n    text: {filler(60, seed=n)}" for n in range(1, 9))
    prompt = (
        "---\ninputs:\n  question: {type: string, max_length: 2000}\n"
        "  documents: {type: list}\n  tone: {type: string, default: friendly}\n"
        f"sample:\n  question: How do reminders work?\n  documents:\n{docs}\n---\n"
        "system:\nYou are a help-center assistant. Tone: {{ tone }}.\n"
        '{% include "partials/rules.jinja" %}\n'
        '{% for doc in documents %}\n<article id="{{ loop.index }}">\n'
        "{{ doc.title }}\n{{ doc.text }}\n</article>\n{% endfor %}\n"
        "user:\n{{ question }}\n"
    )
    files = {
        "policies/bench/answer.yaml": SYNTHETIC_POLICY,
        "prompts/bench/answer.jinja": prompt,
        "prompts/partials/rules.jinja": "Rules: " + filler(500, seed=99) + "\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load the registry, run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("feature", nargs="?", default=None, help="feature (default kb.answer)")
    parser.add_argument("--repo", type=Path, default=Path("."), help="registry root")
    parser.add_argument("--synthetic", action="store_true", help="use a temporary registry")
    parser.add_argument("--tokens", type=int, default=2000, help="input tokens to pad to")
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        repo, name = args.repo, args.feature or "kb.answer"
        if args.synthetic:
            repo, name = Path(tmp), args.feature or "bench.answer"
            synthetic_registry(repo)
        loaded = RegistryLoader(DirTree(repo), samples=False).load()
        feature = loaded.features.get(name)
        if feature is None:
            problems = "\n".join(str(p) for p in loaded.problems if p.feature == name)
            known = ", ".join(sorted(loaded.features)) or "none"
            print(f"no valid feature {name!r} in {repo} (features: {known})\n{problems}")
            return 2
        if not feature.prompt.sample:
            print(f"{name} has no sample to render")
            return 2
        bench(
            feature, loaded.catalog, target=args.tokens, iterations=args.iterations,
            warmup=args.warmup,
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
