"""Which features depend on which files, kept current while commits are applied.

Per commit, sync loads again only the features whose files changed: their policy, the
`_defaults.yaml` files above it, `_models.yaml`, their prompt (and the files it could be:
adding one matters) and the partials it includes. A feature that failed to load is
`broken` and is checked again at every commit, since the file it lacked may arrive.
"""

from __future__ import annotations

from collections import defaultdict

from registry.definitions.content import Layout
from registry.definitions.policy import (
    DEFAULTS_FILE,
    MODELS_FILE,
    defaults_chain,
    feature_name,
    is_policy_file,
)
from registry.definitions.prompt import PROMPT_SUFFIXES


class DependencyIndex:
    """Which features depend on which files, kept current while commits are applied."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.by_file: dict[str, set[str]] = defaultdict(set)
        self.files_of: dict[str, set[str]] = {}
        self.policy_of: dict[str, str] = {}
        self.broken: set[str] = set()  # invalid at the current commit: re-check on any change

    def deps(self, policy_path: str, prompt_path: str | None, partials: list[str]) -> set[str]:
        """The files a feature's content depends on (absent ones too: adding them matters)."""
        root = self.layout.policies_dir
        files = {policy_path, f"{root}/{MODELS_FILE}"}
        files.update(f"{root}/{d}" for d in defaults_chain(policy_path[len(root) + 1 :]))
        rel = policy_path[len(root) + 1 :].rsplit(".", 1)[0]
        files.update(f"{self.layout.prompts_dir}/{rel}{s}" for s in PROMPT_SUFFIXES)
        if prompt_path:
            files.add(prompt_path)
        files.update(partials)
        return files

    def set(self, name: str, policy_path: str, files: set[str]) -> None:
        self.drop(name)
        self.files_of[name] = files
        self.policy_of[name] = policy_path
        for path in files:
            self.by_file[path].add(name)

    def drop(self, name: str) -> None:
        for path in self.files_of.pop(name, set()):
            self.by_file[path].discard(name)
        self.policy_of.pop(name, None)

    def affected(self, paths: list[str]) -> dict[str, str]:
        """Features to load again after `paths` changed: name -> policy path."""
        root = self.layout.policies_dir
        out: dict[str, str] = {}

        def add(name: str) -> None:
            if name in self.policy_of:
                out[name] = self.policy_of[name]

        for path in paths:
            for name in self.by_file.get(path, ()):
                add(name)
            base = path.rsplit("/", 1)[-1]
            if path.startswith(root + "/"):
                rel = path[len(root) + 1 :]
                if base == DEFAULTS_FILE:
                    folder = path.rsplit("/", 1)[0] + "/"
                    for name, policy in self.policy_of.items():
                        if policy.startswith(folder):
                            out[name] = policy
                elif path == f"{root}/{MODELS_FILE}":
                    out.update(self.policy_of)
                elif is_policy_file(rel):
                    changed = feature_name(rel)
                    if changed:
                        out[changed] = path
        for name in self.broken:  # every new commit: the file a broken one lacked may be here
            add(name)
        return out
