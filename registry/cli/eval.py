"""`promptreg eval`: each feature's cases through its guarded call, pass rate next to cost.

Reads the working tree (no database). Loading, running, asserting and reporting live in
`registry.evals`; this is the command around them. Exit 1 when a feature is under its
threshold or, with `--base`, its pass rate dropped; exit 2 when the eval cannot run
(invalid files, unknown feature or model, bad option).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from registry.cli.files import (
    EvalsDirOption,
    PoliciesDirOption,
    PromptsDirOption,
    RepoOption,
    evals_dir_of,
    layout_of,
    load_tree,
)
from registry.cli.output import fail, print_json

if TYPE_CHECKING:
    from registry.definitions.content import Layout
    from registry.definitions.load import LoadedRegistry
    from registry.evals.results import FeatureResult

FORMATS = ("text", "markdown", "json", "junit")


def eval_(
    features: Annotated[
        list[str] | None,
        typer.Argument(
            help="Features to evaluate (default: every feature that has cases).",
            metavar="FEATURE",
            show_default=False,
        ),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="Also run the cases on the registry at this git ref (origin/main) and compare.",
            metavar="REF",
        ),
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider",
            metavar="URL",
            help="Base URL of an OpenAI-compatible chat-completions API (key: OPENAI_API_KEY). "
            "Default: OPENAI_BASE_URL, else OpenAI.",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="Call this model instead of each feature's chain.", metavar="M"
        ),
    ] = None,
    repeat: Annotated[
        int, typer.Option("--repeat", help="Run every case N times.", min=1, metavar="N")
    ] = 1,
    concurrency: Annotated[
        int, typer.Option("--concurrency", help="Cases in flight at once.", min=1, metavar="N")
    ] = 4,
    output: Annotated[
        str, typer.Option("--format", help="text, markdown (a PR comment), json or junit.")
    ] = "text",
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Ask the provider again (answers are still kept).")
    ] = False,
    repo: RepoOption = Path("."),
    prompts_dir: PromptsDirOption = None,
    policies_dir: PoliciesDirOption = None,
    evals_dir: EvalsDirOption = None,
) -> None:
    """Run each feature's eval cases through its guarded call; pass rate, tokens, cost, latency."""
    from registry.client import openai_call
    from registry.config import get_settings
    from registry.definitions.tree import DirTree
    from registry.evals.cache import AnswerCache
    from registry.evals.check import check_evals
    from registry.evals.run import Evaluation
    from registry.extras import require

    if output not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, not {output!r}", code=2)
    require("openai", "promptreg eval")
    layout = layout_of(prompts_dir, policies_dir)
    if not (repo / layout.policies_dir).is_dir():
        fail(f"{repo}: no {layout.policies_dir}/ folder here; pass --repo", code=2)
    loaded = load_tree(repo, layout, samples=False)
    tree = DirTree(repo)
    checked = check_evals(tree, loaded, evals_dir_of(evals_dir))
    wanted = set(features or []) or set(checked.suites) | {
        p.feature for p in checked.problems if p.feature is not None
    }
    problems = [p for p in checked.problems if p.feature in wanted or p.feature is None]
    problems += [p for p in loaded.problems if p.feature in wanted]
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        fail(f"{len(problems)} problem(s) in the cases or features to evaluate", code=2)
    names = _selected(features or [], loaded, checked.suites, evals_dir_of(evals_dir))
    if model is not None and loaded.catalog.lookup(model) is None:
        fail(
            f"--model {model!r} is not in the catalog; declare it in "
            f"{layout.policies_dir}/_models.yaml",
            code=2,
        )
    base_loaded, base_ref, base_commit = (
        _load_base(repo, layout, base) if base else (None, None, None)
    )
    client = _provider(provider)
    try:
        evaluation = Evaluation(
            loaded,
            tree,
            {name: checked.suites[name] for name in names},
            call=openai_call(client),
            cache=AnswerCache(get_settings().cache_dir / "evals", read=not no_cache),
            base=base_loaded,
            base_ref=base_ref,
            model=model,
            repeat=repeat,
        )
        try:
            results = _run(evaluation, concurrency)
        finally:
            evaluation.close()
    finally:
        client.close()
    _report(results, output, base_ref, base_commit, repeat)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


def _selected(
    asked: list[str], loaded: LoadedRegistry, suites: dict[str, Any], evals_dir: str
) -> list[str]:
    """The features to run: those asked (each must exist and have cases), else all with cases."""
    if not asked:
        return sorted(suites)
    for name in asked:
        if name not in loaded.features and name not in loaded.broken:
            known = ", ".join(sorted(suites)) or "none"
            fail(f"unknown feature {name!r} (features with cases: {known})", code=2)
        if name not in suites:
            path = f"{evals_dir}/{name.replace('.', '/')}.yaml"
            fail(f"feature {name!r} has no cases: write them in {path}", code=2)
    return sorted(set(asked))


def _load_base(repo: Path, layout: Layout, base: str) -> tuple[LoadedRegistry, str, str]:
    """The registry at git ref `base`, read from git's objects (like `promptreg diff`)."""
    from registry.config import get_settings
    from registry.definitions.load import RegistryLoader
    from registry.errors import PromptregError
    from registry.gitrepo import GitTree, open_repo, resolve_ref

    try:
        gitrepo, _ = open_repo(str(repo), cache_dir=get_settings().cache_dir)
        ref, sha = resolve_ref(gitrepo, base)
    except PromptregError as exc:
        fail(f"--base: {exc}", code=2)
    return RegistryLoader(GitTree(gitrepo, sha), layout, samples=False).load(), ref, sha


def _provider(url: str | None) -> Any:
    """An `openai.OpenAI` client for `--provider` (or OPENAI_BASE_URL, or OpenAI itself)."""
    import openai

    if url is not None and not url.startswith(("http://", "https://")):
        fail(
            f"--provider must be an http(s) base URL, e.g. http://127.0.0.1:8080/v1, not {url!r}",
            code=2,
        )
    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        if url is None and not os.environ.get("OPENAI_BASE_URL"):
            fail(
                "set OPENAI_API_KEY, or pass --provider URL of an OpenAI-compatible server", code=2
            )
        key = "unused"  # local OpenAI-compatible servers take any key
    return openai.OpenAI(base_url=url, api_key=key)


def _run(evaluation: Any, concurrency: int) -> list[FeatureResult]:
    """Run the evaluation, with a progress bar on stderr when it is a terminal."""
    total = len(evaluation.jobs())
    if not sys.stderr.isatty() or total == 0:
        results: list[FeatureResult] = evaluation.run(concurrency=concurrency)
        return results
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("eval cases", total=total)
        results = evaluation.run(concurrency=concurrency, progress=lambda: bar.advance(task))
    return results


def _report(
    results: list[FeatureResult],
    output: str,
    base: str | None,
    base_commit: str | None,
    repeat: int,
) -> None:
    from registry.evals import report

    context = report.Context(base, base_commit, repeat)
    if output == "json":
        print_json(report.as_json(results, context))
    elif output == "markdown":
        print(report.markdown(results, context), end="")
    elif output == "junit":
        print(report.junit(results, context), end="")
    else:
        print(report.text(results, context), end="")
    unanswered = sum(
        c.outcome in ("degraded", "timeout")
        for r in results
        for side in (r.head, r.base)
        if side is not None
        for c in side.cases
    )
    if unanswered:
        print(
            f"warning: {unanswered} case run(s) got no answer from the provider; "
            "see their failures",
            file=sys.stderr,
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("eval")(eval_)
