"""Applying a sync's versions: every un-pinned feature's label moves to its newest version.

Moves go through `registry.labels.move` (audited as `sync`). A pinned label (after a
rollback) stays where it is; the feature is reported in `pinned_skipped` when a newer
version is waiting. Un-pinned labels of features this run did not load but that lag
behind their newest version (after a promote to an older one, say) follow too.
"""

from __future__ import annotations

from sqlmodel import Session

from registry import labels
from registry.store import crud
from registry.store.models import Feature, Version
from registry.sync.summary import SyncSummary
from registry.sync.versions import Versions


def publish(session: Session, versions: Versions, actor: str) -> None:
    """Move the summary's label for every feature whose newest version it does not serve."""
    summary = versions.summary

    def point(feature: Feature, version: Version) -> None:
        moved = labels.move(
            session,
            feature,
            summary.label,
            version,
            pinned=False,
            action="sync",
            actor=actor,
            reason=f"sync {summary.ref}@{summary.to_commit[:12]}",
        )
        if moved is not None:
            summary.labels_moved += 1

    for lagging, newest in crud.labels_behind_newest(session=session, label=summary.label):
        if lagging.name not in versions.touched:
            point(lagging, newest)
    for name in sorted(versions.touched & set(versions.hashes)):
        feature = versions.features.get(name)
        if feature is None or feature.retired:
            continue
        label = crud.get_label(
            session=session, feature=feature, name=summary.label, for_update=True
        )
        target = crud.find_version_by_hash(
            session=session, feature=feature, content_hash=versions.hashes[name]
        )
        if target is None or (label is not None and label.version_id == target.id):
            continue
        if label is not None and label.pinned:
            summary.pinned_skipped.append(name)
            continue
        point(feature, target)


def finish(session: Session, summary: SyncSummary, versions: Versions) -> SyncSummary:
    """Record where this sync stopped and how the run ended."""
    crud.set_sync_state(
        session=session,
        repo=summary.repo,
        ref=summary.ref,
        label=summary.label,
        commit_sha=summary.to_commit,
    )
    crud.finish_sync_run(
        session=session,
        run=versions.run,
        status="errors" if summary.errors else "ok",
        to_commit=summary.to_commit,
        versions_created=summary.versions_created,
    )
    return summary
