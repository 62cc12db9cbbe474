"""`promptreg diff --base REF`: what a pull request changes, feature by feature, and its cost.

The comparison and its reports live in `registry.diff`; this is the command around them.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from registry.cli.files import PoliciesDirOption, PromptsDirOption, RepoOption, layout_of
from registry.cli.output import fail, print_json

FORMATS = ("text", "markdown", "json", "github")


def diff(
    base: Annotated[str, typer.Option("--base", help="Git ref to compare with, e.g. origin/main.")],
    output: Annotated[
        str, typer.Option("--format", help="text, markdown (a PR comment), json or github.")
    ] = "text",
    repo: RepoOption = Path("."),
    prompts_dir: PromptsDirOption = None,
    policies_dir: PoliciesDirOption = None,
) -> None:
    """Per feature, what the working tree changes against REF: diffs, tokens, cost."""
    from registry.config import get_settings
    from registry.definitions.load import RegistryLoader
    from registry.definitions.tree import DirTree
    from registry.diff import compare, github, markdown, text
    from registry.gitrepo import GitTree, open_repo, resolve_ref

    if output not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}, not {output!r}", code=2)
    layout = layout_of(prompts_dir, policies_dir)
    if not (repo / layout.policies_dir).is_dir():
        fail(f"{repo}: no {layout.policies_dir}/ folder here; pass --repo")
    gitrepo, _ = open_repo(str(repo), cache_dir=get_settings().cache_dir)
    ref, sha = resolve_ref(gitrepo, base)
    before = RegistryLoader(GitTree(gitrepo, sha), layout, samples=False).load()
    after = RegistryLoader(DirTree(repo), layout, samples=False).load()
    changes, unchanged = compare(before, after, ref)
    if output == "json":
        print_json(
            {
                "base": ref,
                "base_commit": sha,
                "unchanged": unchanged,
                "features": [asdict(c) for c in changes],
            }
        )
    elif output == "markdown":
        print(markdown(changes, unchanged, ref, sha), end="")
    elif output == "github":
        print(github(changes), end="")
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write(markdown(changes, unchanged, ref, sha))
        print(f"{len(changes)} feature(s) differ from {ref}, {unchanged} unchanged")
    else:
        print(text(changes, unchanged, ref, sha), end="")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command()(diff)
