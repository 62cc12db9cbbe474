"""Applying a sync's versions: every un-pinned feature's label moves to its newest version,
or, when the new version's policy has a `rollout` section, starts a guarded rollout to it.

Moves go through `registry.labels.move` (audited as `sync`), rollouts through
`registry.rollouts.machine`. A pinned label (after a rollback or an abort) stays where it
is; the feature is reported in `pinned_skipped` when a newer version is waiting. A
feature's first version, and a change to the `rollout` section alone, move at once. A
newer version during a rollout supersedes it with a new rollout from the same stable
version; a tip that is the stable version again ends it. Un-pinned labels of features this
run did not load but that lag behind their newest version (after a promote to an older
one, say) follow too, unless a rollout is taking them there.
"""

from __future__ import annotations

from sqlmodel import Session

from registry import labels
from registry.definitions.content import VersionContent
from registry.definitions.policy import RolloutPlan
from registry.rollouts import machine
from registry.store import crud
from registry.store.models import Feature, Label, Version
from registry.sync.summary import SyncSummary
from registry.sync.versions import Versions


def publish(session: Session, versions: Versions, actor: str) -> None:
    """Bring the summary's label to every feature's newest version, directly or by rollout."""
    summary = versions.summary
    reason = f"sync {summary.ref}@{summary.to_commit[:12]}"
    for lagging, newest in crud.labels_behind_newest(session=session, label=summary.label):
        if lagging.name in versions.touched:
            continue
        if crud.active_rollout(session=session, feature=lagging, label=summary.label) is None:
            _point(session, summary, lagging, newest, actor, reason)
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
        if target is None:
            continue
        active = crud.active_rollout(
            session=session, feature=feature, label=summary.label, for_update=True
        )
        if label is not None and label.version_id == target.id:
            if active is not None:  # the tip went back to the stable version: stop rolling out
                machine.supersede(session, active, reason=f"{reason} is v{target.version} again")
            continue
        if label is not None and label.pinned:
            summary.pinned_skipped.append(name)
            continue
        if active is not None and active.candidate_version_id == target.id:
            continue  # already rolling out
        plan = _rollout_plan(session, label, target) if label is not None else None
        if label is not None and plan is not None:
            stable = crud.version_by_id(session=session, version_id=label.version_id)
            machine.start(
                session,
                feature,
                summary.label,
                stable=stable,
                candidate=target,
                plan=plan,
                actor=actor,
                reason=reason,
            )
            summary.rollouts_started.append(name)
            continue
        if active is not None:
            machine.supersede(session, active, reason=f"{reason} moved the label at once")
        _point(session, summary, feature, target, actor, reason)


def _rollout_plan(session: Session, label: Label, target: Version) -> RolloutPlan | None:
    """The target's rollout plan when moving `label` to it should be a rollout (its policy
    has a `rollout` section and something besides that section changed), else None."""
    new = VersionContent.from_json(target.content)
    plan = new.policy_model.rollout
    if plan is None:
        return None
    old = VersionContent.from_json(
        crud.version_by_id(session=session, version_id=label.version_id).content
    )

    def without_plan(content: VersionContent) -> dict[str, object]:
        data = content.as_dict()
        data["policy"] = {k: v for k, v in content.policy.items() if k != "rollout"}
        return data

    return plan if without_plan(old) != without_plan(new) else None


def _point(
    session: Session,
    summary: SyncSummary,
    feature: Feature,
    version: Version,
    actor: str,
    reason: str,
) -> None:
    moved = labels.move(
        session,
        feature,
        summary.label,
        version,
        pinned=False,
        action="sync",
        actor=actor,
        reason=reason,
    )
    if moved is not None:
        summary.labels_moved += 1


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
