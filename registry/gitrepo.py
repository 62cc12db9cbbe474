"""Reading a git repository: opening paths and URLs, first-parent history, trees at a commit.

`GitTree` is the git side of `registry.definitions.tree.Tree`: the files of one commit, read
from the object database without a checkout. A symlink stored in git (mode 120000) is
followed only while its target stays inside the repository.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import git
from git.exc import BadName, GitCommandError, InvalidGitRepositoryError, NoSuchPathError

from registry.definitions.tree import TreeEscape, clean_path
from registry.errors import RepoError

_LINK_MODE = 0o120000
_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|[\w.-]+@[\w.-]+:)", re.IGNORECASE)


@dataclass(frozen=True)
class CommitMeta:
    """What a version records about the commit that produced it."""

    sha: str
    author: str
    email: str
    message: str
    committed_at: datetime


def is_url(repo: str) -> bool:
    """True when `repo` names a remote repository rather than a local path."""
    return bool(_URL.match(repo)) or repo.startswith("file://")


def open_repo(repo: str, *, cache_dir: Path) -> tuple[git.Repo, str]:
    """Open a local repository, or clone/fetch a URL into the cache; returns (repo, key)."""
    if is_url(repo):
        folder = cache_dir / hashlib.sha256(repo.encode()).hexdigest()[:16]
        try:
            if (folder / "HEAD").exists():
                cloned = git.Repo(folder)
                cloned.git.fetch("--prune", "--force", "origin", "+refs/heads/*:refs/heads/*")
            else:
                folder.parent.mkdir(parents=True, exist_ok=True)
                cloned = git.Repo.clone_from(repo, folder, bare=True, mirror=True)
        except GitCommandError as exc:
            raise RepoError(f"cannot fetch {repo}: {exc.stderr.strip() or exc}") from None
        return cloned, repo
    path = Path(repo).expanduser().resolve()
    try:
        return git.Repo(path, search_parent_directories=False), str(path)
    except NoSuchPathError:
        raise RepoError(f"{repo}: no such directory") from None
    except InvalidGitRepositoryError:
        raise RepoError(f"{repo} is not a git repository") from None


def resolve_ref(repo: git.Repo, ref: str | None) -> tuple[str, str]:
    """The (ref name, tip commit sha) of `ref`, or of the checked-out branch when None."""
    if ref is None:
        try:
            ref = (
                repo.active_branch.name
                if not repo.bare
                else repo.git.symbolic_ref("--short", "HEAD")
            )
        except (TypeError, GitCommandError):
            ref = "HEAD"
    try:
        return ref, repo.commit(ref).hexsha
    except (BadName, ValueError, GitCommandError):
        raise RepoError(f"ref {ref!r} does not exist in {repo.git_dir}") from None


def first_parent_shas(repo: git.Repo, tip: str, since: str | None) -> list[str]:
    """Commits on the first-parent chain from `since` (exclusive) to `tip`, oldest first."""
    spec = tip if since is None else f"{since}..{tip}"
    out = repo.git.rev_list("--first-parent", "--reverse", spec)
    return out.split() if out else []


def is_ancestor(repo: git.Repo, ancestor: str, tip: str) -> bool:
    """True when `ancestor` is reachable from `tip` (false for unknown commits)."""
    try:
        return bool(repo.is_ancestor(repo.commit(ancestor), repo.commit(tip)))
    except (GitCommandError, ValueError, BadName):
        return False


def commit_meta(commit: git.Commit) -> CommitMeta:
    """Author, message and time of a commit."""
    return CommitMeta(
        sha=commit.hexsha,
        author=str(commit.author.name or ""),
        email=str(commit.author.email or ""),
        message=str(commit.message).strip(),
        committed_at=datetime.fromtimestamp(commit.committed_date, tz=UTC),
    )


class GitTree:
    """The files of one commit, read from git's object database."""

    def __init__(self, repo: git.Repo, sha: str) -> None:
        self.repo = repo
        self.sha = sha
        self.commit = repo.commit(sha)
        self._tree = self.commit.tree

    def __repr__(self) -> str:
        return f"GitTree({self.sha[:12]})"

    def _entry(self, path: str) -> git.Blob | git.Tree | None:
        try:
            entry = self._tree / path if path else self._tree
        except KeyError:
            return None
        return entry

    def walk(self, folder: str) -> list[str]:
        entry = self._entry(clean_path(folder))
        if not isinstance(entry, git.Tree):
            return []
        return sorted(str(item.path) for item in entry.traverse() if isinstance(item, git.Blob))

    def read(self, path: str) -> bytes:
        return follow_links(path, self._blob)

    def _blob(self, rel: str) -> tuple[bytes, bool] | None:
        entry = self._entry(rel)
        if not isinstance(entry, git.Blob):
            return None
        return entry.data_stream.read(), entry.mode == _LINK_MODE


def follow_links(path: str, blob: Callable[[str], tuple[bytes, bool] | None]) -> bytes:
    """Read `path` through git symlinks (`blob(path)` gives (bytes, is_link) or None),
    refusing a link whose target leaves the repository."""
    rel = clean_path(path)
    for _ in range(16):
        found = blob(rel)
        if found is None:
            raise FileNotFoundError(rel)
        data, is_link = found
        if not is_link:
            return data
        target = data.decode("utf-8", "replace")
        folder = rel.rsplit("/", 1)[0] if "/" in rel else ""
        try:
            if target.startswith("/"):
                raise TreeEscape(target)
            rel = clean_path(f"{folder}/{target}" if folder else target)
        except TreeEscape:
            raise TreeEscape("symlink points outside the repository; refused") from None
    raise TreeEscape(f"{path}: too many levels of symlinks")


Entry = tuple[str, str]  # (mode, blob sha)


def list_files(repo: git.Repo, sha: str, folders: list[str]) -> dict[str, Entry]:
    """Every file under `folders` at commit `sha`: path -> (mode, blob sha), one git call."""
    out = repo.git.ls_tree("-r", "--full-tree", sha, "--", *folders)
    files: dict[str, Entry] = {}
    for line in out.splitlines():
        meta, _, path = line.partition("\t")
        mode, kind, blob = meta.split()
        if kind == "blob":
            files[_unquote(path)] = (mode, blob)
    return files


def changed_entries(
    repo: git.Repo, shas: list[str], folders: list[str]
) -> dict[str, list[tuple[str, Entry | None]]]:
    """Per commit, the files under `folders` it changed against its first parent:
    (path, new (mode, blob) or None when deleted). One git call for all commits."""
    out: dict[str, list[tuple[str, Entry | None]]] = {sha: [] for sha in shas}
    if not shas:
        return out
    first = repo.commit(shas[0])
    spec = f"{shas[0]}^..{shas[-1]}" if first.parents else shas[-1]
    log = repo.git.log(
        "--first-parent",
        "--diff-merges=first-parent",
        "--no-renames",
        "--raw",
        "--no-abbrev",
        "--root",
        "--format=\x01%H",
        spec,
        "--",
        *folders,
    )
    current: str | None = None
    for line in log.splitlines():
        if line.startswith("\x01"):
            current = line[1:].strip()
        elif line.startswith(":") and current in out:
            meta, _, path = line.partition("\t")
            _, new_mode, _, new_blob, status = meta[1:].split()
            entry = None if status.startswith("D") else (new_mode, new_blob)
            out[current].append((_unquote(path), entry))
    return out


def _unquote(path: str) -> str:
    if path.startswith('"') and path.endswith('"'):
        return path[1:-1].encode("latin-1").decode("unicode_escape").encode("latin-1").decode()
    return path


class Blobs:
    """Blob contents by sha, read once through git's object database."""

    def __init__(self, repo: git.Repo) -> None:
        self.repo = repo
        self._data: dict[str, bytes] = {}

    def read(self, blob: str) -> bytes:
        """The bytes of a blob."""
        data = self._data.get(blob)
        if data is None:
            data = self._data[blob] = self.repo.odb.stream(bytes.fromhex(blob)).read()
        return data


class MappedTree:
    """The files of one commit from a path -> blob map (kept current commit by commit)."""

    def __init__(self, files: dict[str, Entry], blobs: Blobs) -> None:
        self.files = files
        self.blobs = blobs

    def walk(self, folder: str) -> list[str]:
        prefix = clean_path(folder) + "/"
        return sorted(p for p in self.files if p.startswith(prefix))

    def read(self, path: str) -> bytes:
        return follow_links(path, self._blob)

    def _blob(self, rel: str) -> tuple[bytes, bool] | None:
        entry = self.files.get(rel)
        if entry is None:
            return None
        mode, blob = entry
        return self.blobs.read(blob), mode == "120000"
