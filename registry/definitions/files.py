"""The files of one tree, parsed once: policy YAML, prompt files, `_models.yaml`.

A `TreeFiles` reads a `Tree` (a working folder or a git commit) and keeps what it parsed;
parsed files are also kept in a cache shared by every tree of one repository, keyed by
path and content, so loading many commits of one repository parses each file version
once. Problems come back as values (`Problem`, with file and line), never as exceptions.
"""

from __future__ import annotations

from typing import Any

from registry.definitions.catalog import ModelEntry, parse_models_file
from registry.definitions.content import Layout
from registry.definitions.policy import MODELS_FILE
from registry.definitions.prompt import (
    PromptFileError,
    PromptTemplate,
    decode,
    parse_jinja_prompt,
)
from registry.definitions.tree import Tree, TreeEscape, clean_path
from registry.definitions.yamlpos import Located, YamlProblem, load_yaml
from registry.errors import Problem
from registry.tokens import Catalog


class TreeFiles:
    """The parsed files of one tree, cached by path and content."""

    def __init__(
        self,
        tree: Tree,
        layout: Layout | None = None,
        *,
        samples: bool = True,
        cache: dict[Any, Any] | None = None,
    ) -> None:
        self.tree = tree
        self.layout = layout or Layout()
        self.samples = samples
        # shared across loaders of one repository: parsed files keyed by path and bytes
        self.shared = cache if cache is not None else {}
        self._yaml: dict[str, Located | Problem | None] = {}
        self._prompts: dict[str, PromptTemplate | list[Problem] | None] = {}
        self._catalog: Catalog | None = None
        self._catalog_problems: list[Problem] = []

    # -- files -------------------------------------------------------------------
    def _read(self, path: str) -> bytes | None:
        try:
            return self.tree.read(path)
        except FileNotFoundError:
            return None

    def _policy_yaml(self, path: str) -> Located | Problem | None:
        if path not in self._yaml:
            self._yaml[path] = self._parse_yaml(path)
        return self._yaml[path]

    def exists(self, path: str) -> bool:
        """True when `path` is a file of the tree (a symlink leaving it counts as present)."""
        try:
            return self._read(path) is not None
        except TreeEscape:
            return True

    def _parse_yaml(self, path: str) -> Located | Problem | None:
        try:
            data = self._read(path)
        except TreeEscape as exc:
            return Problem(path, None, str(exc))
        if data is None:
            return None
        key = ("yaml", path, data)
        if key not in self.shared:
            self.shared[key] = self._parse_yaml_bytes(path, data)
        result: Located | Problem = self.shared[key]
        return result

    def _parse_yaml_bytes(self, path: str, data: bytes) -> Located | Problem:
        try:
            text = decode(data, path)
            if not text.strip():
                return Problem(path, 1, "empty file")
            located = load_yaml(text, path)
        except PromptFileError as exc:
            return exc.problems[0]
        except YamlProblem as exc:
            return exc.problem
        if not isinstance(located.data, dict):
            return Problem(path, 1, "must be a YAML mapping of keys to values")
        return located

    @property
    def catalog(self) -> Catalog:
        """The catalog with this tree's `_models.yaml` applied."""
        if self._catalog is None:
            path = f"{self.layout.policies_dir}/{MODELS_FILE}"
            try:
                data = self._read(path)
            except TreeEscape as exc:
                data, self._catalog_problems = None, [Problem(path, None, str(exc))]
            key = ("models", data)
            if key not in self.shared:
                self.shared[key] = self._parse_catalog(path, data)
            self._catalog, problems = self.shared[key]
            self._catalog_problems += problems
        return self._catalog

    def catalog_problems(self) -> list[Problem]:
        """Problems of `_models.yaml` (an invalid file counts as empty)."""
        _ = self.catalog
        return list(self._catalog_problems)

    @staticmethod
    def _parse_catalog(path: str, data: bytes | None) -> tuple[Catalog, list[Problem]]:
        overrides: dict[str, ModelEntry] = {}
        problems: list[Problem] = []
        try:
            if data is not None:
                overrides = parse_models_file(decode(data, path), path)
        except PromptFileError as exc:
            problems = list(exc.problems)
        except YamlProblem as exc:
            problems = [exc.problem]
        return Catalog(overrides), problems

    def prompt(self, path: str) -> PromptTemplate | list[Problem] | None:
        """The parsed prompt file at repository path `path` (None when absent)."""
        if path not in self._prompts:
            self._prompts[path] = self._parse_prompt(path)
        return self._prompts[path]

    def _parse_prompt(self, path: str) -> PromptTemplate | list[Problem] | None:
        try:
            data = self._read(path)
        except TreeEscape as exc:
            return [Problem(path, None, str(exc))]
        if data is None:
            return None
        name = path[len(self.layout.prompts_dir) + 1 :]
        if not path.endswith(".prompty"):
            key = ("prompt", path, data)
            if key not in self.shared:
                try:
                    self.shared[key] = parse_jinja_prompt(data, path, name)
                except PromptFileError as exc:
                    self.shared[key] = list(exc.problems)
            cached: PromptTemplate | list[Problem] = self.shared[key]
            return cached
        from registry.definitions.prompty import parse_prompty

        try:
            return parse_prompty(data, path, name, read=self._read_ref)
        except PromptFileError as exc:
            return list(exc.problems)

    def _read_ref(self, ref: str) -> bytes:
        """A file a Prompty `${file:}` reference names, from the tree."""
        return self.tree.read(clean_path(ref))

    def _template_source(self, name: str) -> str | None:
        path = f"{self.layout.prompts_dir}/{clean_path(name)}"
        if path.endswith(".prompty"):
            parsed = self.prompt(path)
            return parsed.body if isinstance(parsed, PromptTemplate) else None
        data = self._read(path)
        if data is None:
            return None
        try:
            return decode(data, path)
        except PromptFileError:
            return None
