"""Reading git for a sync: which commits to apply, and each commit's files, loaded lazily.

One `git ls-tree` lists the files before the first commit and one `git log --raw` every
commit's changes; each commit's tree is then the previous one with its changes applied,
and a blob is read from git once for the whole sync (`Blobs`). Parsed files are shared
across commits through the loaders' cache, so work grows with what changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import git

from registry.definitions.content import Layout
from registry.definitions.load import RegistryLoader
from registry.gitrepo import (
    Blobs,
    MappedTree,
    changed_entries,
    commit_meta,
    first_parent_shas,
    is_ancestor,
    list_files,
)
from registry.store.models import CommitInfo


@dataclass(frozen=True)
class Plan:
    """The commits a sync applies, oldest first, and how."""

    shas: list[str]
    full: bool  # the first commit is read whole (first sync, --no-history, rewritten history)
    rewritten: bool  # the last synced commit is no longer on the ref


def plan(repo: git.Repo, last: str | None, tip: str, *, no_history: bool) -> Plan:
    """What to apply to go from the last synced commit (None: never synced) to `tip`."""
    if last == tip:
        return Plan([], False, False)
    rewritten = last is not None and not is_ancestor(repo, last, tip)
    if last is None and not no_history:
        return Plan(first_parent_shas(repo, tip, None), True, False)
    if last is None or no_history or rewritten:
        return Plan([tip], True, rewritten)
    return Plan(first_parent_shas(repo, tip, last), False, False)


@dataclass(frozen=True)
class Step:
    """One commit to apply: its metadata, its files, and what it changed."""

    sha: str
    commit: CommitInfo
    tree: MappedTree
    loader: RegistryLoader
    changed: list[str]  # paths under the registry folders (all of them when `whole`)
    whole: bool  # read whole: every feature of the tree is loaded


class History:
    """The registry's folders in a repository's commits, read through one blob cache."""

    def __init__(self, repo: git.Repo, layout: Layout) -> None:
        self.repo = repo
        self.layout = layout
        self.blobs = Blobs(repo)
        self.cache: dict[Any, Any] = {}  # parsed files, shared by every commit's loader
        self.folders = [layout.prompts_dir, layout.policies_dir]

    def loader_at(self, sha: str) -> RegistryLoader:
        """A loader of the registry as it is at commit `sha`."""
        tree = MappedTree(list_files(self.repo, sha, self.folders), self.blobs)
        return RegistryLoader(tree, self.layout)

    def steps(self, todo: Plan) -> Iterator[Step]:
        """Each commit of the plan, oldest first (lazily: apply one before reading the next)."""
        if not todo.shas:
            return
        first = self.repo.commit(todo.shas[0])
        if todo.full:
            files = list_files(self.repo, todo.shas[0], self.folders)
        elif first.parents:
            files = list_files(self.repo, first.parents[0].hexsha, self.folders)
        else:
            files = {}
        changes = changed_entries(self.repo, todo.shas, self.folders)
        for i, sha in enumerate(todo.shas):
            whole = todo.full and i == 0
            if not whole:
                for path, entry in changes.get(sha, []):
                    if entry is None:
                        files.pop(path, None)
                    else:
                        files[path] = entry
            tree = MappedTree(files, self.blobs)
            meta = commit_meta(self.repo.commit(sha))
            commit = CommitInfo(
                sha=meta.sha,
                author=meta.author,
                email=meta.email,
                message=meta.message,
                committed_at=meta.committed_at,
            )
            yield Step(
                sha=sha,
                commit=commit,
                tree=tree,
                loader=RegistryLoader(tree, self.layout, cache=self.cache),
                changed=[path for path, _ in changes.get(sha, [])],
                whole=whole,
            )
