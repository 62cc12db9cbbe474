"""Working-tree commands: `init`, `validate`, `render` (no database needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from registry.cli.output import console, fail, print_json

if TYPE_CHECKING:
    from registry.definitions.content import FeatureDefinition, Layout
    from registry.definitions.load import LoadedRegistry
    from registry.errors import Problem

RepoOption = Annotated[
    Path, typer.Option("--repo", help="Repository root holding the prompts and policies folders.")
]
PromptsDirOption = Annotated[
    str | None, typer.Option("--prompts-dir", help="Prompts folder inside the repository.")
]
PoliciesDirOption = Annotated[
    str | None, typer.Option("--policies-dir", help="Policies folder inside the repository.")
]
EvalsDirOption = Annotated[
    str | None, typer.Option("--evals-dir", help="Eval cases folder inside the repository.")
]


def layout_of(prompts_dir: str | None, policies_dir: str | None) -> Layout:
    """The layout from options, falling back to settings."""
    from registry.config import get_settings
    from registry.definitions.content import Layout

    settings = get_settings()
    return Layout(prompts_dir or settings.prompts_dir, policies_dir or settings.policies_dir)


def evals_dir_of(option: str | None) -> str:
    """The eval cases folder from the option, falling back to settings."""
    from registry.config import get_settings

    return option or get_settings().evals_dir


def load_tree(root: Path, layout: Layout, *, samples: bool = True) -> LoadedRegistry:
    """Load a working tree, failing clearly when it holds no registry."""
    from registry.definitions.load import RegistryLoader
    from registry.definitions.tree import DirTree

    if not root.is_dir():
        fail(f"{root}: no such directory")
    if not (root / layout.policies_dir).is_dir():
        fail(
            f"{root}: no {layout.policies_dir}/ folder here; run `promptreg init {root}` "
            "to start a registry, or pass --repo"
        )
    return RegistryLoader(DirTree(root), layout, samples=samples).load()


def feature_in_tree(
    root: Path, layout: Layout, name: str
) -> tuple[LoadedRegistry, FeatureDefinition]:
    """A working tree (samples not rendered) and one of its features, or a clear failure:
    the feature's own problems, or the features there are."""
    loaded = load_tree(root, layout, samples=False)
    found = loaded.features.get(name)
    if found is None:
        own = [p for p in loaded.problems if p.feature == name]
        if own:
            fail(f"feature {name!r} is invalid:\n" + "\n".join(map(str, own)))
        known = ", ".join(sorted(loaded.features)) or "none"
        fail(f"unknown feature {name!r} (features: {known})")
    return loaded, found


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the registry in.")] = Path(
        "."
    ),
) -> None:
    """Create a small working registry (prompts/, policies/) to start from."""
    import shutil
    from importlib import resources

    directory.mkdir(parents=True, exist_ok=True)
    for sub in ("prompts", "policies"):
        if (directory / sub).exists():
            fail(f"{directory / sub} already exists; init leaves existing registries alone")
    starter = resources.files("registry") / "starter"
    for sub in ("prompts", "policies"):
        with resources.as_file(starter / sub) as src:
            shutil.copytree(src, directory / sub)
    console.print(f"Created a registry in {directory}:")
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and "/." not in str(p)):
        rel = path.relative_to(directory)
        if rel.parts[0] in ("prompts", "policies"):
            console.print(f"  {rel}")
    console.print(
        f"\nNext: promptreg validate {directory}   then   "
        f"promptreg render assistant.answer --sample --repo {directory}"
    )


def _github(problem: Problem) -> str:
    line = f",line={problem.line}" if problem.line else ""
    text = problem.message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return f"::error file={problem.file}{line},title=promptreg::{text}"


def validate(
    path: Annotated[Path, typer.Argument(help="Repository root to check.")] = Path("."),
    output: Annotated[
        str, typer.Option("--format", help="text, github (Actions annotations) or json.")
    ] = "text",
    prompts_dir: PromptsDirOption = None,
    policies_dir: PoliciesDirOption = None,
    evals_dir: EvalsDirOption = None,
) -> None:
    """Check every policy and prompt, render every sample, check every eval case and run its
    render assertions; exit 1 on any problem."""
    from registry.definitions.tree import DirTree
    from registry.errors import Problem
    from registry.evals.check import check_evals

    if output not in ("text", "github", "json"):
        fail(f"--format must be text, github or json, not {output!r}", code=2)
    loaded = load_tree(path, layout_of(prompts_dir, policies_dir))
    evals = check_evals(DirTree(path), loaded, evals_dir_of(evals_dir))
    problems = sorted([*loaded.problems, *evals.all_problems], key=Problem.sort_key)
    if output == "json":
        print_json(
            {
                "ok": not problems,
                "features": sorted(loaded.features),
                "problems": [
                    {"file": p.file, "line": p.line, "feature": p.feature, "message": p.message}
                    for p in problems
                ],
            }
        )
    else:
        for problem in problems:
            print(_github(problem) if output == "github" else str(problem))
        verdict = "ok" if not problems else f"{len(problems)} problem(s)"
        checked = f"{evals.cases} eval case(s) checked, " if evals.suites else ""
        summary = f"{len(loaded.features)} feature(s) valid, {checked}{verdict}"
        if output == "text":
            console.print(summary, style="green" if not problems else "red")
        else:
            print(summary)
    if problems:
        raise typer.Exit(1)


def _parse_var(item: str, declared: dict[str, Any]) -> tuple[str, Any]:
    if "=" not in item:
        fail(f"--var takes NAME=VALUE, got {item!r}", code=2)
    name, raw = item.split("=", 1)
    spec = declared.get(name)
    if spec is not None and spec.type == "string":
        return name, raw
    try:
        return name, json.loads(raw)
    except json.JSONDecodeError:
        return name, raw


def render(
    feature: Annotated[str, typer.Argument(help="Feature name, e.g. support.reply.")],
    var: Annotated[
        list[str] | None, typer.Option("--var", help="A variable as NAME=VALUE (repeatable).")
    ] = None,
    vars_file: Annotated[
        Path | None, typer.Option("--vars-file", help="A JSON or YAML file of variables.")
    ] = None,
    sample: Annotated[bool, typer.Option("--sample", help="Use the prompt's sample.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    repo: RepoOption = Path("."),
    prompts_dir: PromptsDirOption = None,
    policies_dir: PoliciesDirOption = None,
) -> None:
    """Render a feature from the working tree: messages, tokens, cost and budget verdict."""
    from rich.panel import Panel
    from rich.table import Table

    from registry.errors import InputError
    from registry.request import prepare

    loaded, found = feature_in_tree(repo, layout_of(prompts_dir, policies_dir), feature)
    variables: dict[str, Any] = {}
    if sample:
        variables.update(found.prompt.sample or {})
    if vars_file is not None:
        variables.update(_read_vars_file(vars_file))
    for item in var or []:
        name, value = _parse_var(item, found.prompt.inputs)
        variables[name] = value
    try:
        prepared = prepare(found, loaded.catalog, variables)
    except InputError as exc:
        fail(str(exc))
    if as_json:
        print_json(prepared.as_dict())
        return
    for message in prepared.messages:
        console.print(Panel(message.content, title=message.role, title_align="left", expand=False))
    table = Table(title="Estimated request per model of the chain")
    for column in ("model", "input tokens", "max output", "total", "cost (USD)"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for est in prepared.estimates:
        cost = "?" if est.cost_usd is None else f"{est.cost_usd:.6f}"
        table.add_row(
            est.model,
            str(est.input_tokens),
            str(est.max_output_tokens),
            str(est.total_tokens),
            cost,
        )
    console.print(table)
    verdict = prepared.verdict
    if verdict.allowed:
        console.print(f"[green]budget: allowed[/green] — {verdict.reason}")
    else:
        console.print(f"[red]budget: refused[/red] — {verdict.reason}")
        console.print(f"degraded message: {found.policy.degraded_message}")


def _read_vars_file(path: Path) -> dict[str, Any]:
    from registry.definitions.yamlpos import YamlProblem, load_yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{path}: cannot read: {exc}")
    try:
        data = json.loads(text) if path.suffix == ".json" else load_yaml(text, str(path)).data
    except json.JSONDecodeError as exc:
        fail(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}")
    except YamlProblem as exc:
        fail(str(exc))
    if not isinstance(data, dict):
        fail(f"{path}: variables must be a mapping of names to values")
    return data


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command()(init)
    app.command()(validate)
    app.command()(render)
