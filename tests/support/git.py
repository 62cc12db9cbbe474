"""Real git repositories for tests, with a fixed author and a fixed clock.

`GitRepo(path)` runs `git init` (branch `main` unless told) in a folder of tmp_path.
Every commit gets the same author and committer and a date one minute after the
previous commit's, starting at EPOCH + 1 minute, so shas and dates are reproducible.
git runs without the caller's configuration (no ~/.gitconfig, no /etc/gitconfig, no
signing, no hooks).

Files are given as a mapping of repository paths to contents: `str` or `bytes` to write,
`None` to delete. `fast_import` writes many commits in one `git fast-import`, for tests
that need a long history quickly.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

AUTHOR = "Ada Lovelace"
EMAIL = "ada@example.com"
EPOCH = 1_700_000_000  # 2023-11-14T22:13:20Z; the first commit is one minute later

Files = Mapping[str, str | bytes | None]


def git_env(**extra: str) -> dict[str, str]:
    """This process's environment without GIT_* variables or the caller's git configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
        **extra,
    )
    return env


class GitRepo:
    """A git repository under construction, with a fixed identity and clock."""

    def __init__(self, path: Path, *, branch: str = "main") -> None:
        self.path = path
        self.tick = 0  # commits made so far: the clock
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "--quiet", f"--initial-branch={branch}")
        self.git("config", "commit.gpgsign", "false")
        self.git("config", "core.symlinks", "true")

    def __str__(self) -> str:
        return str(self.path)

    # -- plumbing -----------------------------------------------------------------
    def git(self, *args: str, input: bytes | None = None, author: str = AUTHOR) -> str:
        """Run git in the repository at the current tick of the clock; its stdout, stripped."""
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
        """The full sha of the commit `spec` names."""
        return self.git("rev-parse", "--verify", f"{spec}^{{commit}}")

    @property
    def head(self) -> str:
        """The sha of HEAD."""
        return self.rev("HEAD")

    # -- working tree -------------------------------------------------------------
    def write(self, files: Files) -> None:
        """Write (or, for None, delete) files in the working tree, without committing."""
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
        """Apply `files`, stage everything and commit; the new sha."""
        if files:
            self.write(files)
        self.tick += 1
        self.git("add", "--all")
        extra = ["--allow-empty"] if empty else []
        self.git("commit", "--quiet", "--no-verify", "-m", message, *extra, author=author)
        return self.head

    def delete(self, message: str, *paths: str) -> str:
        """Delete `paths` and commit; the new sha."""
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
        parent = self.rev(branch) if self._has(branch) else ""
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
