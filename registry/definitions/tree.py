"""Read-only views of a registry's files: a folder on disk, or (in `registry.sync`) a git commit.

Paths are POSIX strings relative to the repository root. A symlink is followed only
while its target stays inside the root; anything else is refused, so a pull request
cannot make the server read `/etc/passwd` through `prompts/`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol


class TreeEscape(Exception):
    """A path or symlink leads outside the repository root."""


class Tree(Protocol):
    """The files of one registry snapshot."""

    def walk(self, folder: str) -> list[str]:
        """Every file path under `folder` (recursively), sorted; [] when it is absent."""
        ...

    def read(self, path: str) -> bytes:
        """The bytes of `path`; FileNotFoundError if absent, TreeEscape if it leaves the root."""
        ...


def clean_path(path: str) -> str:
    """Normalise a relative POSIX path, refusing absolute paths and `..` that leave the root."""
    if path.startswith("/") or "\\" in path or (len(path) > 1 and path[1] == ":"):
        raise TreeEscape(f"{path!r} is an absolute path")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise TreeEscape(f"{path!r} leaves the repository")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


class DirTree:
    """A registry in a working directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"DirTree({str(self.root)!r})"

    def _inside(self, real: str) -> bool:
        root = str(self.root)
        return real == root or real.startswith(root + os.sep)

    def walk(self, folder: str) -> list[str]:
        start = self.root / clean_path(folder)
        if not start.is_dir():
            return []
        found: list[str] = []
        seen: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(start, followlinks=True):
            real = os.path.realpath(dirpath)
            if not self._inside(real) or real in seen:
                dirnames[:] = []
                continue
            seen.add(real)
            dirnames.sort()
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                found.append(f"{rel}/{name}" if rel != "." else name)
            for name in dirnames:
                target = os.path.realpath(os.path.join(dirpath, name))
                if not self._inside(target):
                    # listed so that reading it reports the escape
                    found.append(f"{rel}/{name}")
        return sorted(found)

    def read(self, path: str) -> bytes:
        rel = clean_path(path)
        full = self.root / rel
        real = os.path.realpath(full)
        if not self._inside(real):
            raise TreeEscape("symlink points outside the repository; refused")
        if os.path.isdir(real):
            raise FileNotFoundError(rel)
        with open(real, "rb") as fh:
            return fh.read()
