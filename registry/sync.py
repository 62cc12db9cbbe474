"""Git history → immutable versions: `promptreg sync` (SPEC §3).

One sync is one database transaction under the cross-process sync lock. The first sync
of a (repo, ref, label) walks the ref's first-parent history oldest first; later syncs
walk only the commits after the last synced one. Per commit, only the features whose
files changed are loaded again (a reverse index from file to features), so the work
grows with the change, not with the history. A feature whose files are invalid in a
commit gets no version for it and its errors are recorded; everything valid applies.
At the end every un-pinned feature's label moves to the version of the ref's tip.
"""

from __future__ import annotations

import getpass
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import git
from sqlalchemy import Engine
from sqlmodel import Session, and_, col, func, or_, select

from registry.definitions.load import Feature as LoadedFeature
from registry.definitions.load import Layout, RegistryLoader
from registry.definitions.policy import (
    DEFAULTS_FILE,
    MODELS_FILE,
    defaults_chain,
    feature_name,
    is_policy_file,
)
from registry.definitions.prompt import PROMPT_SUFFIXES
from registry.errors import Problem
from registry.gitrepo import (
    Blobs,
    MappedTree,
    changed_entries,
    commit_meta,
    first_parent_shas,
    is_ancestor,
    list_files,
    open_repo,
    resolve_ref,
)
from registry.store import crud
from registry.store.db import session_scope, sync_lock
from registry.store.models import CommitInfo, Feature, Label, SyncError, SyncRun, Version

Progress = Callable[[int, int, str], None]  # (done, total, commit sha)


@dataclass
class SyncSummary:
    """What one sync did."""

    repo: str
    ref: str
    label: str
    from_commit: str | None
    to_commit: str
    commits: int = 0
    versions_created: int = 0
    labels_moved: int = 0
    retired: list[str] = field(default_factory=list)
    unretired: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    rewritten: bool = False
    pinned_skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when this run recorded no error."""
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        """The `--json` summary."""
        return {
            "repo": self.repo,
            "ref": self.ref,
            "label": self.label,
            "from_commit": self.from_commit,
            "to_commit": self.to_commit,
            "commits": self.commits,
            "versions_created": self.versions_created,
            "labels_moved": self.labels_moved,
            "retired": self.retired,
            "unretired": self.unretired,
            "pinned_skipped": self.pinned_skipped,
            "rewritten_history": self.rewritten,
            "errors": self.errors,
            "ok": self.ok,
        }


class _Index:
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


def _newest_versions() -> Any:
    """A subquery: each feature's newest version number (`feature_id`, `number`)."""
    return (
        select(col(Version.feature_id), func.max(Version.version).label("number"))
        .group_by(col(Version.feature_id))
        .subquery()
    )


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def sync_ref(
    engine: Engine,
    *,
    repo: str,
    ref: str | None = None,
    label: str = "production",
    layout: Layout | None = None,
    no_history: bool = False,
    cache_dir: Path,
    lock_timeout_s: float = 300.0,
    actor: str | None = None,
    progress: Progress | None = None,
) -> SyncSummary:
    """Import new commits of `ref` into versions and move `label`; one transaction."""
    layout = layout or Layout()
    gitrepo, repo_key = open_repo(repo, cache_dir=cache_dir)
    ref_name, tip = resolve_ref(gitrepo, ref)
    with session_scope(engine) as session:
        sync_lock(session, timeout_s=lock_timeout_s)
        return _Sync(
            session, gitrepo, repo_key, ref_name, tip, label, layout, actor or _actor(), progress
        ).run(no_history=no_history)


class _Sync:
    def __init__(
        self,
        session: Session,
        gitrepo: git.Repo,
        repo_key: str,
        ref: str,
        tip: str,
        label: str,
        layout: Layout,
        actor: str,
        progress: Progress | None,
    ) -> None:
        self.session = session
        self.git = gitrepo
        self.layout = layout
        self.label = label
        self.actor = actor
        self.progress = progress
        self.index = _Index(layout)
        self.cache: dict[Any, Any] = {}
        self.blobs = Blobs(gitrepo)
        self.hashes: dict[str, str] = {}  # feature -> content hash at the current commit
        self.present: set[str] = set()  # features whose policy exists at the current commit
        self.features: dict[str, Feature] = {}
        self.reported: set[tuple[str | None, str, int | None, str]] = set()
        self.touched: set[str] = set()  # features loaded in this run: their labels may move
        self.summary = SyncSummary(repo_key, ref, label, None, tip)
        self.run_row: SyncRun | None = None

    # -- plan ----------------------------------------------------------------------
    def run(self, *, no_history: bool) -> SyncSummary:
        s = self.summary
        state = crud.get_sync_state(session=self.session, repo=s.repo, ref=s.ref, label=s.label)
        last = state.commit_sha if state else None
        s.from_commit = last
        self.run_row = crud.start_sync_run(
            session=self.session, repo=s.repo, ref=s.ref, label=s.label, from_commit=last
        )
        if last == s.to_commit:
            return self._finish()
        if last is not None and not is_ancestor(self.git, last, s.to_commit):
            s.rewritten = True
            self._error(
                s.to_commit,
                Problem(
                    s.ref,
                    None,
                    f"history was rewritten: last synced commit {last[:12]} is no longer on "
                    f"{s.ref}; synced the new tip {s.to_commit[:12]} (no version was deleted)",
                ),
                record_only=True,
            )
        if last is None and not no_history:
            shas = first_parent_shas(self.git, s.to_commit, None)
            self._start_empty()
        elif last is None or no_history or s.rewritten:
            shas = [s.to_commit]
            self._start_empty()
        else:
            shas = first_parent_shas(self.git, s.to_commit, last)
            self._start_from(last)
        self._apply(shas, full_first=(last is None or no_history or s.rewritten))
        return self._finish()

    def _start_empty(self) -> None:
        """Know every stored feature, so a full pass can retire those gone from the tip."""
        for feature in self.session.exec(select(Feature)).all():
            self.features[feature.name] = feature
        rows = self.session.exec(
            select(Feature.name, Version.policy_path)
            .join(Version, col(Version.feature_id) == Feature.id)
            .where(col(Feature.retired).is_(False))
        ).all()
        for name, policy_path in rows:
            self.present.add(name)
            self.index.policy_of[name] = policy_path

    def _start_from(self, last: str) -> None:
        """Rebuild the dependency index at `last` from the stored versions, cheaply."""
        self._start_empty()
        newest = _newest_versions()
        rows = self.session.exec(
            select(
                Version.feature_id, Version.content, Version.content_hash, Version.policy_path
            ).join(
                newest,
                and_(
                    col(Version.feature_id) == newest.c.feature_id,
                    col(Version.version) == newest.c.number,
                ),
            )
        ).all()
        latest: dict[int, tuple[str, str, str]] = {}
        for feature_id, content, content_hash, policy_path in rows:
            latest[feature_id] = (content, content_hash, policy_path)
        by_id = {f.id: f for f in self.features.values()}
        for feature_id, (content, content_hash, policy_path) in latest.items():
            feature = by_id[feature_id]
            if feature.retired:
                continue
            snap = json.loads(content)
            name = feature.name
            files = self.index.deps(
                policy_path, snap["prompt"]["path"], list(snap.get("partials", {}))
            )
            self.index.set(name, policy_path, files)
            self.hashes[name] = content_hash
            self.present.add(name)
        folders = [self.layout.prompts_dir, self.layout.policies_dir]
        tree = MappedTree(list_files(self.git, last, folders), self.blobs)
        loader = RegistryLoader(tree, self.layout)
        for name, path in loader.policy_files().items():
            if name not in self.hashes:
                self.index.broken.add(name)
                self.index.policy_of.setdefault(name, path)
        if self.run_row is not None:
            self.index.broken.update(self._unresolved_errors())

    def _unresolved_errors(self) -> set[str]:
        s = self.summary
        # The newest run that applied commits: a run with nothing new re-checks nothing and
        # so records no errors, but the features broken before it are still broken.
        previous = self.session.exec(
            select(SyncRun)
            .where(SyncRun.repo == s.repo, SyncRun.ref == s.ref, SyncRun.label == s.label)
            .where(col(SyncRun.id) != (self.run_row.id if self.run_row else None))
            .where(
                or_(
                    col(SyncRun.from_commit).is_(None),
                    col(SyncRun.from_commit) != col(SyncRun.to_commit),
                )
            )
            .order_by(col(SyncRun.id).desc())
            .limit(1)
        ).first()
        if previous is None:
            return set()
        names = self.session.exec(
            select(SyncError.feature).where(SyncError.sync_run_id == previous.id)
        ).all()
        return {n for n in names if n}

    # -- apply ---------------------------------------------------------------------
    def _apply(self, shas: list[str], *, full_first: bool) -> None:
        folders = [self.layout.prompts_dir, self.layout.policies_dir]
        if not shas:
            return
        # One git call lists the files before the first commit, one lists every commit's
        # changes; each commit's tree is then the previous map with its changes applied,
        # and a blob is read from git once for the whole sync.
        first = self.git.commit(shas[0])
        parent = first.parents[0].hexsha if first.parents and not full_first else None
        files = list_files(self.git, parent, folders) if parent else {}
        changes = changed_entries(self.git, shas, folders)
        if full_first:
            files = list_files(self.git, shas[0], folders)
        total = len(shas)
        for i, sha in enumerate(shas):
            paths = [path for path, _ in changes.get(sha, [])]
            if not (i == 0 and full_first):
                for path, entry in changes.get(sha, []):
                    if entry is None:
                        files.pop(path, None)
                    else:
                        files[path] = entry
            tree = MappedTree(files, self.blobs)
            loader = RegistryLoader(tree, self.layout, cache=self.cache)
            commit = commit_meta(self.git.commit(sha))
            info = CommitInfo(
                sha=commit.sha,
                author=commit.author,
                email=commit.email,
                message=commit.message,
                committed_at=commit.committed_at,
            )
            if i == 0 and full_first:
                names = {
                    **{n: self.index.policy_of.get(n, "") for n in self.present},
                    **loader.policy_files(),
                }
                problems = loader.check_links(
                    [*tree.walk(self.layout.prompts_dir), *tree.walk(self.layout.policies_dir)]
                )
            else:
                names = self.index.affected(paths)
                problems = loader.check_links(paths)
            for problem in problems:
                self._error(sha, problem)
            self._apply_commit(loader, info, names)
            self.summary.commits += 1
            if self.progress:
                self.progress(i + 1, total, sha)

    def _apply_commit(
        self, loader: RegistryLoader, commit: CommitInfo, names: dict[str, str]
    ) -> None:
        if not names:
            return
        for problem in loader.catalog_problems():
            self._error(commit.sha, problem)
        for name, path in sorted(names.items()):
            if not path or not loader.exists(path):
                self._retire(name, commit)
                continue
            self.touched.add(name)
            result = loader.load_feature(name, path)
            if isinstance(result, LoadedFeature):
                self._accept(result, commit)
            else:
                self.index.broken.add(name)
                self.index.policy_of[name] = path
                self.present.add(name)
                for problem in result:
                    self._error(commit.sha, problem)

    def _accept(self, loaded: LoadedFeature, commit: CommitInfo) -> None:
        name = loaded.name
        self.index.broken.discard(name)
        files = self.index.deps(
            loaded.policy_path,
            loaded.prompt_path,
            [f"{self.layout.prompts_dir}/{p}" for p in loaded.partials],
        )
        self.index.set(name, loaded.policy_path, files)
        self.present.add(name)
        feature = self.features.get(name)
        if feature is None:
            feature = crud.get_or_create_feature(session=self.session, name=name)
            self.features[name] = feature
        if feature.retired:
            crud.set_retired(
                session=self.session,
                feature=feature,
                retired=False,
                label=self.label,
                actor=self.actor,
                reason=f"policy restored in {commit.sha[:12]}",
            )
            self.summary.unretired.append(name)
        content_hash = loaded.content_hash
        self.hashes[name] = content_hash
        latest = crud.latest_version(session=self.session, feature=feature)
        if latest is not None and latest.content_hash == content_hash:
            return
        same = crud.find_version_by_hash(
            session=self.session, feature=feature, content_hash=content_hash
        )
        if same is not None and same.commit_sha == commit.sha:
            return  # this commit's version exists already (synced into another label)
        crud.add_version(
            session=self.session,
            feature=feature,
            content_hash=content_hash,
            content=loaded.canonical_json(),
            prompt_path=loaded.prompt_path,
            policy_path=loaded.policy_path,
            commit=commit,
        )
        self.summary.versions_created += 1

    def _retire(self, name: str, commit: CommitInfo) -> None:
        self.index.drop(name)
        self.index.broken.discard(name)
        self.present.discard(name)
        self.hashes.pop(name, None)
        feature = self.features.get(name)
        if feature is not None and not feature.retired:
            crud.set_retired(
                session=self.session,
                feature=feature,
                retired=True,
                label=self.label,
                actor=self.actor,
                reason=f"policy deleted in {commit.sha[:12]}",
            )
            self.summary.retired.append(name)

    def _error(self, sha: str, problem: Problem, *, record_only: bool = False) -> None:
        entry = {
            "commit": sha,
            "feature": problem.feature,
            "file": problem.file,
            "line": problem.line,
            "message": problem.message,
        }
        # One record per problem and run: a feature that stays broken over many commits is
        # reported at the first commit that showed it.
        seen = (problem.feature, problem.file, problem.line, problem.message)
        if seen in self.reported:
            return
        self.reported.add(seen)
        if not record_only:
            self.summary.errors.append(entry)
        assert self.run_row is not None
        crud.add_sync_error(
            session=self.session,
            run=self.run_row,
            commit_sha=sha,
            file=problem.file,
            message=problem.message,
            feature=problem.feature,
            line=problem.line,
        )

    # -- finish --------------------------------------------------------------------
    def _move_labels(self) -> None:
        self._move_stale_labels()
        for name in sorted(self.touched & set(self.hashes)):
            feature = self.features.get(name)
            if feature is None or feature.retired:
                continue
            label = crud.get_label(
                session=self.session, feature=feature, name=self.label, for_update=True
            )
            target = crud.find_version_by_hash(
                session=self.session, feature=feature, content_hash=self.hashes[name]
            )
            if target is None:
                continue
            if label is not None and label.pinned:
                if label.version_id != target.id:
                    self.summary.pinned_skipped.append(name)
                continue
            if label is not None and label.version_id == target.id:
                continue
            self._point(feature, target)

    def _point(self, feature: Feature, version: Version) -> None:
        """Move this run's label to `version` (un-pinned), audited as a sync."""
        crud.set_label(
            session=self.session,
            feature=feature,
            name=self.label,
            version=version,
            pinned=False,
            action="sync",
            actor=self.actor,
            reason=f"sync {self.summary.ref}@{self.summary.to_commit[:12]}",
        )
        self.summary.labels_moved += 1

    def _move_stale_labels(self) -> None:
        """Un-pinned labels of features this run did not load, left behind their newest version
        (after a promote to an older one, say): one query finds them all."""
        newest = _newest_versions()
        rows = self.session.exec(
            select(Feature, Version)
            .join(Label, and_(col(Label.feature_id) == Feature.id, col(Label.name) == self.label))
            .join(newest, col(newest.c.feature_id) == Feature.id)
            .join(
                Version,
                and_(
                    col(Version.feature_id) == Feature.id, col(Version.version) == newest.c.number
                ),
            )
            .where(col(Label.pinned).is_(False), col(Feature.retired).is_(False))
            .where(col(Label.version_id) != col(Version.id))
        ).all()
        for feature, version in rows:
            if feature.name in self.touched:
                continue
            self._point(feature, version)

    def _finish(self) -> SyncSummary:
        s = self.summary
        self._move_labels()
        crud.set_sync_state(
            session=self.session, repo=s.repo, ref=s.ref, label=s.label, commit_sha=s.to_commit
        )
        assert self.run_row is not None
        crud.finish_sync_run(
            session=self.session,
            run=self.run_row,
            status="errors" if s.errors else "ok",
            to_commit=s.to_commit,
            versions_created=s.versions_created,
        )
        return s
