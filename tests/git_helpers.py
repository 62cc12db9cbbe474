"""Helpers of the sync, label and database-CLI tests: git repositories, registry files, the CLI.

`GitRepoBuilder` makes real git repositories in tmp_path, with a fixed author and clock.

Tests describe a repository as a sequence of commits, each a dict of repository paths to
contents (`str`/`bytes` to write, `None` to delete). Every commit gets the same author
and a clock that advances one minute per commit, so shas and dates are reproducible.
`fast_import` writes many commits in one `git fast-import` call, for tests that need a
long history quickly. `policy()`, `prompt()` and `feature_files()` write valid registry
files; `cli()` runs `promptreg` in-process the way the installed script does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from registry.cli import database as cli_database
from registry.cli import main
from registry.store import db

AUTHOR = "Ada Lovelace"
EMAIL = "ada@example.com"
EPOCH = 1_700_000_000  # 2023-11-14T22:13:20Z: the first commit's time

Files = Mapping[str, str | bytes | None]


def git_env(**extra: str) -> dict[str, str]:
    """An environment in which git ignores the caller's configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
        **extra,
    )
    return env


class GitRepoBuilder:
    """A git repository under construction, on branch `main` by default."""

    def __init__(self, path: Path, *, branch: str = "main") -> None:
        self.path = path
        self.tick = 0
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "--quiet", f"--initial-branch={branch}")
        self.git("config", "commit.gpgsign", "false")
        self.git("config", "core.symlinks", "true")

    def __str__(self) -> str:
        return str(self.path)

    # -- plumbing -----------------------------------------------------------------
    def git(self, *args: str, input: bytes | None = None, author: str = AUTHOR) -> str:
        """Run git in the repository with the fixed identity and clock; its stdout."""
        date = f"{EPOCH + 60 * self.tick} +0000"
        env = git_env(
            GIT_AUTHOR_NAME=author,
            GIT_AUTHOR_EMAIL=EMAIL,
            GIT_COMMITTER_NAME=author,
            GIT_COMMITTER_EMAIL=EMAIL,
            GIT_AUTHOR_DATE=date,
            GIT_COMMITTER_DATE=date,
        )
        done = subprocess.run(
            ["git", *args], cwd=self.path, env=env, input=input, capture_output=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.decode()}")
        return done.stdout.decode().strip()

    def rev(self, spec: str = "HEAD") -> str:
        """The full sha of `spec`."""
        return self.git("rev-parse", "--verify", f"{spec}^{{commit}}")

    @property
    def head(self) -> str:
        """The sha of HEAD."""
        return self.rev("HEAD")

    # -- working tree -------------------------------------------------------------
    def write(self, files: Files) -> None:
        """Write (or, for None, delete) files in the working tree."""
        for rel, content in files.items():
            target = self.path / rel
            if content is None:
                if target.is_symlink() or target.exists():
                    target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink():
                target.unlink()
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)

    def symlink(self, rel: str, points_to: str) -> None:
        """Make `rel` a symlink to `points_to` (stored by git as a link, mode 120000)."""
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        os.symlink(points_to, target)

    def rename(self, old: str, new: str) -> None:
        """Move a file in the working tree (`git mv`)."""
        (self.path / new).parent.mkdir(parents=True, exist_ok=True)
        self.git("mv", old, new)

    # -- history ------------------------------------------------------------------
    def commit(
        self, message: str, files: Files | None = None, *, author: str = AUTHOR, empty: bool = False
    ) -> str:
        """Apply `files`, stage everything and commit; returns the new sha."""
        if files:
            self.write(files)
        self.tick += 1
        self.git("add", "--all")
        extra = ["--allow-empty"] if empty else []
        self.git("commit", "--quiet", "--no-verify", "-m", message, *extra, author=author)
        return self.head

    def delete(self, message: str, *paths: str) -> str:
        """Delete `paths` and commit."""
        return self.commit(message, dict.fromkeys(paths))

    def branch(self, name: str, start: str = "HEAD") -> None:
        """Create branch `name` at `start` and check it out."""
        self.git("checkout", "--quiet", "-b", name, start)

    def checkout(self, name: str) -> None:
        """Check out an existing branch."""
        self.git("checkout", "--quiet", name)

    def merge(self, branch: str, message: str, *, author: str = AUTHOR) -> str:
        """Merge `branch` into the current branch with a merge commit (no fast-forward)."""
        self.tick += 1
        self.git("merge", "--quiet", "--no-ff", "-m", message, branch, author=author)
        return self.head

    def reset_hard(self, target: str) -> None:
        """Move the current branch to `target` (a force-push as seen by a mirror)."""
        self.git("reset", "--quiet", "--hard", target)

    def replace_history(self, message: str, files: Files) -> str:
        """Point the current branch at a new root commit holding only `files`; its sha."""
        current = self.git("symbolic-ref", "--short", "HEAD")
        self.git("checkout", "--quiet", "--orphan", "rewritten")
        self.git("rm", "-r", "--quiet", "--cached", "--ignore-unmatch", ".")
        for child in self.path.iterdir():
            if child.name != ".git":
                _remove(child)
        sha = self.commit(message, files)
        self.git("branch", "--force", current, sha)
        self.git("checkout", "--quiet", current)
        self.git("branch", "--quiet", "-D", "rewritten")
        return sha

    def fast_import(self, commits: Iterable[tuple[str, Files]], *, branch: str = "main") -> str:
        """Append many commits to `branch` in one `git fast-import`; the new tip's sha."""
        parent = self.git("rev-parse", "--verify", "--quiet", branch) if self._has(branch) else ""
        chunks: list[bytes] = []
        mark = 0
        for message, files in commits:
            mark += 1
            self.tick += 1
            when = f"{EPOCH + 60 * self.tick} +0000"
            text = message.encode()
            chunks.append(
                f"commit refs/heads/{branch}\nmark :{mark}\n"
                f"author {AUTHOR} <{EMAIL}> {when}\ncommitter {AUTHOR} <{EMAIL}> {when}\n"
                f"data {len(text)}\n".encode()
                + text
                + b"\n"
            )
            if mark == 1 and parent:
                chunks.append(f"from {parent}\n".encode())
            for rel, content in files.items():
                if content is None:
                    chunks.append(f"D {rel}\n".encode())
                    continue
                data = content.encode() if isinstance(content, str) else content
                chunks.append(f"M 100644 inline {rel}\ndata {len(data)}\n".encode() + data + b"\n")
            chunks.append(b"\n")
        self.git("fast-import", "--quiet", "--force", input=b"".join(chunks))
        if self.git("symbolic-ref", "--short", "HEAD") == branch:
            self.git("reset", "--quiet", "--hard", branch)
        return self.rev(branch)

    def _has(self, branch: str) -> bool:
        try:
            self.rev(branch)
        except RuntimeError:
            return False
        return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            _remove(child)
        path.rmdir()
    else:
        path.unlink()


# -- registry content -------------------------------------------------------------------
# Line numbers matter: tests name the line a problem must point at. `policy()` is six
# lines; `extra` starts on line 7.


def policy(max_output_tokens: int = 200, *, extra: str = "") -> str:
    """A valid policy file (one model, the required keys), plus `extra` lines."""
    return (
        "models:\n"
        "  - model: gpt-4o\n"
        f"max_output_tokens: {max_output_tokens}\n"
        "budget:\n"
        "  max_request_tokens: 4000\n"
        "degraded_message: Unavailable right now.\n"
    ) + extra


def prompt(text: str = "Be helpful.", *, include: str | None = None) -> str:
    """A valid prompt; with `include`, its `{% include %}` is on line 7."""
    lines = ["---", "inputs:", "  question: {type: string}", "---", "system:", text]
    if include:
        lines.append(f'{{% include "{include}" %}}')
    lines += ["user:", "{{ question }}", ""]
    return "\n".join(lines)


def feature_files(name: str, max_output_tokens: int = 200, **prompt_kw: str) -> dict[str, str]:
    """The policy and prompt files of feature `name` (`a.x` -> policies/a/x.yaml …)."""
    rel = name.replace(".", "/")
    return {
        f"policies/{rel}.yaml": policy(max_output_tokens),
        f"prompts/{rel}.jinja": prompt(**prompt_kw),
    }


# -- the command line, as a user runs it --------------------------------------------------


def _forward(args: tuple[str, ...]) -> None:
    saved, sys.argv = sys.argv, ["promptreg", *args]
    try:
        main()
    finally:
        sys.argv = saved


# CliRunner runs click commands; this one hands its arguments to `main()` untouched, so
# user errors go through the same one-line handler as the installed `promptreg` script.
_MAIN = click.Command(
    "promptreg",
    callback=_forward,
    params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
    context_settings={"ignore_unknown_options": True},
    add_help_option=False,
)


def cli(*args: str | Path) -> tuple[int, str, str]:
    """Run `promptreg ARGS` in-process through `main()`: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(_MAIN, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def track_cli_engines(monkeypatch: pytest.MonkeyPatch) -> list[Engine]:
    """Record every engine the database-mode CLI opens, so a test can check and close them."""
    # A pooled connection left open makes psycopg warn when it is garbage-collected; under
    # filterwarnings=error that would fail whichever test the collector happens to run in,
    # so the tests close whatever the CLI left (and assert, separately, that it leaves none).
    opened: list[Engine] = []

    def tracked(url: str) -> Engine:
        opened.append(db.ensure_database(url))
        return opened[-1]

    monkeypatch.setattr(cli_database, "ensure_database", tracked)
    return opened
