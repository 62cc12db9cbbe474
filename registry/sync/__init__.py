"""Git history → immutable versions: `promptreg sync` (SPEC §3).

One sync is one database transaction under the cross-process sync lock. The first sync
of a (repo, ref, label) walks the ref's first-parent history oldest first; later syncs
walk only the commits after the last synced one. Per commit, only the features whose
files changed are loaded again (a reverse index from file to features), so the work
grows with the change, not with the history. A feature whose files are invalid in a
commit gets no version for it and its errors are recorded; everything valid applies.
At the end every un-pinned feature's label moves to the version of the ref's tip.

Three steps, one module each: `history` reads git, `versions` builds versions, `publish`
applies them to the label; `index` tracks which files each feature depends on.
"""

from __future__ import annotations

import getpass
from pathlib import Path

from sqlalchemy import Engine

from registry.config import DEFAULT_LABEL
from registry.definitions.content import Layout
from registry.errors import Problem
from registry.gitrepo import open_repo, resolve_ref
from registry.store import crud
from registry.store.db import session_scope, sync_lock
from registry.sync.history import History, plan
from registry.sync.publish import finish, publish
from registry.sync.summary import Progress, SyncSummary
from registry.sync.versions import Versions

__all__ = ["Progress", "SyncSummary", "sync_ref"]


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def sync_ref(
    engine: Engine,
    *,
    repo: str,
    ref: str | None = None,
    label: str = DEFAULT_LABEL,
    layout: Layout | None = None,
    no_history: bool = False,
    cache_dir: Path,
    lock_timeout_s: float = 300.0,
    actor: str | None = None,
    progress: Progress | None = None,
) -> SyncSummary:
    """Import new commits of `ref` into versions and move `label`; one transaction."""
    layout = layout or Layout()
    actor = actor or _os_user()
    gitrepo, repo_key = open_repo(repo, cache_dir=cache_dir)
    ref_name, tip = resolve_ref(gitrepo, ref)
    with session_scope(engine) as session:
        sync_lock(session, timeout_s=lock_timeout_s)
        state = crud.get_sync_state(session=session, repo=repo_key, ref=ref_name, label=label)
        last = state.commit_sha if state else None
        summary = SyncSummary(repo_key, ref_name, label, last, tip)
        run = crud.start_sync_run(
            session=session, repo=repo_key, ref=ref_name, label=label, from_commit=last
        )
        versions = Versions(session, layout, summary, run, actor)
        todo = plan(gitrepo, last, tip, no_history=no_history)
        history = History(gitrepo, layout)
        if todo.rewritten:
            summary.rewritten = True
            assert last is not None
            why = (
                f"history was rewritten: last synced commit {last[:12]} is no longer on "
                f"{ref_name}; synced the new tip {tip[:12]} (no version was deleted)"
            )
            versions.error(tip, Problem(ref_name, None, why), record_only=True)
        if todo.shas and todo.full:
            versions.know_stored()
        elif todo.shas:
            assert last is not None
            versions.resume(history.loader_at(last))
        for done, step in enumerate(history.steps(todo), 1):
            versions.apply(step)
            summary.commits += 1
            if progress:
                progress(done, len(todo.shas), step.sha)
        publish(session, versions, actor)
        return finish(session, summary, versions)
