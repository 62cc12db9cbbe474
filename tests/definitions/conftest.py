"""Fixtures that write a small registry into tmp_path and check it two ways.

A registry here is a dict of repository paths to contents (str, bytes, or None to leave
a base file out). `registry(files)` writes the base feature `demo.ask` plus `files`;
`check(root)` loads it with `RegistryLoader` and runs `promptreg validate` on it in all
three output formats, so every bad-input test asserts the same problem both ways.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.features import BASE_POLICY, BASE_PROMPT
from typer.testing import CliRunner

from registry.cli import app
from registry.definitions.load import LoadedRegistry, RegistryLoader
from registry.definitions.tree import DirTree

BASE_FILES: dict[str, str | bytes | None] = {
    "policies/demo/ask.yaml": BASE_POLICY,
    "prompts/demo/ask.jinja": BASE_PROMPT,
}

Files = Mapping[str, str | bytes | None]


def write_files(root: Path, files: Files) -> Path:
    """Write `files` under `root` (None entries are skipped); return `root`."""
    for rel, content in files.items():
        if content is None:
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def base_policy() -> str:
    """The policy text of the base feature `demo.ask`."""
    return BASE_POLICY


@pytest.fixture
def base_prompt() -> str:
    """The prompt text of the base feature `demo.ask`."""
    return BASE_PROMPT


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the repository (so outside its root) holding the base feature's
    prompt and policy (`ask.jinja`, `ask.yaml`)."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "ask.jinja").write_text(BASE_PROMPT)
    (folder / "ask.yaml").write_text(BASE_POLICY)
    return folder


@pytest.fixture
def repo_root(tmp_path: Path) -> Path:
    """An empty folder for a registry, inside tmp_path (the test's working directory)."""
    root = tmp_path / "repo"
    root.mkdir()
    return root


@pytest.fixture
def registry(repo_root: Path) -> Callable[..., Path]:
    """Write the base feature plus `files` (overriding by path) into the repo; return its root."""

    def make(files: Files | None = None, *, base: bool = True) -> Path:
        merged: dict[str, str | bytes | None] = dict(BASE_FILES) if base else {}
        merged.update(files or {})
        return write_files(repo_root, merged)

    return make


@pytest.fixture
def load() -> Callable[[Path], LoadedRegistry]:
    """Load a registry folder the way `validate` does (samples rendered)."""

    def run(root: Path) -> LoadedRegistry:
        return RegistryLoader(DirTree(root)).load()

    return run


@dataclass
class Checked:
    """One registry, seen through the loader and through `promptreg validate`."""

    loaded: LoadedRegistry
    text: str  # `validate` stdout, default format
    github: str  # `validate --format github` stdout
    report: dict[str, Any]  # `validate --format json`, parsed
    exit_codes: tuple[int, int, int]

    def has(self, file: str, line: int | None, fragment: str) -> None:
        """Assert that every view reports `fragment` at file:line (line None: file-level)."""
        hits = [
            p
            for p in self.loaded.problems
            if p.file == file and p.line == line and fragment in p.message
        ]
        assert hits, f"no problem at {file}:{line} with {fragment!r} in {self.loaded.problems}"
        where = f"{file}:{line}: " if line is not None else f"{file}: "
        assert any(row.startswith(where) and fragment in row for row in self.text.splitlines()), (
            self.text
        )
        annotation = (
            f"::error file={file},line={line}," if line is not None else f"::error file={file},"
        )
        assert any(
            row.startswith(annotation) and fragment in row for row in self.github.splitlines()
        ), self.github
        assert any(
            p["file"] == file and p["line"] == line and fragment in p["message"]
            for p in self.report["problems"]
        ), self.report
        assert self.exit_codes == (1, 1, 1)
        assert self.report["ok"] is False


@pytest.fixture
def check(load: Callable[[Path], LoadedRegistry]) -> Callable[[Path], Checked]:
    """Check a registry folder through the loader and `validate` (text, github, json)."""
    runner = CliRunner()

    def run(root: Path) -> Checked:
        results = [
            runner.invoke(app, ["validate", str(root), "--format", fmt])
            for fmt in ("text", "github", "json")
        ]
        for result in results:
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                raise result.exception
        return Checked(
            loaded=load(root),
            text=results[0].stdout,
            github=results[1].stdout,
            report=json.loads(results[2].stdout),
            exit_codes=(results[0].exit_code, results[1].exit_code, results[2].exit_code),
        )

    return run
