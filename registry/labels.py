"""The label state machine: the one place a label moves, and rollback, promote, retire.

A label points each feature at one version (SPEC §2). `move` is the only writer of
labels: it points the label, sets or clears the pin, appends the audit entry and bumps
the change marker that every replica watches, in the caller's transaction. Sync,
rollback, promote, `rollback --all` and rollouts all move labels through it; `retire`
audits a feature's retirement the same way. Nothing here commits: the caller's
transaction decides, so `rollback_all` is all-or-nothing.

Sync moves un-pinned labels forward; `rollback` moves a label back and pins it, so the
next merge does not undo the rollback; `promote` moves it forward and unpins.
"Previous" means the newest version this label pointed at before, older than the
current one: two rollbacks in a row go back two steps instead of toggling.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session

from registry.config import DEFAULT_LABEL
from registry.errors import Conflict, NotFound, Retired
from registry.store import crud
from registry.store.models import (
    MAX_VERSION,
    AuditEntryPublic,
    Feature,
    Label,
    Version,
    VersionPublic,
    utcnow,
)

if TYPE_CHECKING:
    from registry.diff import FeatureChange


@dataclass(frozen=True)
class LabelMove:
    """Where a label moved: the answer of rollback and promote."""

    feature: str
    label: str
    from_version: int | None
    to_version: int
    pinned: bool


def move(
    session: Session,
    feature: Feature,
    label: str,
    version: Version,
    *,
    pinned: bool,
    action: str,
    actor: str,
    reason: str | None = None,
    at: datetime | None = None,
) -> LabelMove | None:
    """Point `label` at `version` (pinned or not), audited as `action`; None when unchanged."""
    current = crud.get_label(session=session, feature=feature, name=label, for_update=True)
    if current is not None and current.version_id == version.id and current.pinned == pinned:
        return None
    at = at or utcnow()
    _, left = crud.write_label(
        session=session,
        feature=feature,
        label=current,
        name=label,
        version=version,
        pinned=pinned,
        at=at,
    )
    crud.add_audit(
        session=session,
        feature=feature,
        label=label,
        action=action,
        from_version=left,
        to_version=version.version,
        actor=actor,
        reason=reason,
        at=at,
    )
    crud.bump_generation(session=session)
    return LabelMove(
        feature=feature.name,
        label=label,
        from_version=left,
        to_version=version.version,
        pinned=pinned,
    )


def retire(
    session: Session,
    feature: Feature,
    *,
    retired: bool,
    label: str,
    actor: str,
    reason: str | None = None,
) -> None:
    """Retire or un-retire a feature, audited on `label`; nothing happens when unchanged."""
    if feature.retired == retired:
        return
    if retired:
        from registry.rollouts import machine

        for active in crud.active_rollouts(session=session, feature=feature):
            machine.supersede(session, active, reason="the feature was retired")
    at = utcnow()
    crud.mark_retired(session=session, feature=feature, retired=retired, at=at)
    resolved = crud.resolve_label(session=session, feature=feature, name=label)
    number = resolved[1].version if resolved else None
    crud.add_audit(
        session=session,
        feature=feature,
        label=label,
        action="retire" if retired else "unretire",
        from_version=number,
        to_version=number,
        actor=actor,
        reason=reason,
        at=at,
    )
    crud.bump_generation(session=session)


# -- reading -------------------------------------------------------------------------------


def feature_or_404(session: Session, name: str) -> Feature:
    """The feature, or NotFound naming it."""
    feature = None if "\x00" in name else crud.get_feature(session=session, name=name)
    if feature is None:
        raise NotFound(f"unknown feature {name!r}")
    return feature


def version_or_404(session: Session, feature: Feature, number: int) -> Version:
    """Version `number` of the feature, or NotFound naming both."""
    in_range = 1 <= number <= MAX_VERSION
    version = (
        crud.get_version(session=session, feature=feature, version=number) if in_range else None
    )
    if version is None:
        raise NotFound(f"feature {feature.name!r} has no version {number}")
    return version


def resolve(
    session: Session, name: str, *, label: str = DEFAULT_LABEL, version: int | None = None
) -> tuple[Feature, Version, Label | None]:
    """The version a request means: an explicit number, or where `label` points (410 if retired)."""
    feature = feature_or_404(session, name)
    label_row = crud.get_label(session=session, feature=feature, name=label)
    if version is not None:
        return feature, version_or_404(session, feature, version), label_row
    if feature.retired:
        raise Retired(f"feature {name!r} was retired: its policy file was deleted")
    if label_row is None:
        raise NotFound(f"feature {name!r} has no version labelled {label!r}")
    return feature, crud.version_by_id(session=session, version_id=label_row.version_id), label_row


def history(session: Session, name: str) -> list[VersionPublic]:
    """All versions of a feature, newest first, with commit info and labels."""
    return crud.versions_of(session=session, feature=feature_or_404(session, name))


def version_change(session: Session, feature: Feature, old: int, new: int) -> FeatureChange:
    """How two stored versions of the feature differ (NotFound naming a missing one)."""
    from registry.definitions.content import VersionContent
    from registry.diff import between_versions

    old_content, new_content = (
        VersionContent.from_json(version_or_404(session, feature, number).content)
        for number in (old, new)
    )
    return between_versions(feature.name, (old, old_content), (new, new_content))


def audit(
    session: Session, *, feature: str | None = None, label: str | None = None, limit: int = 100
) -> list[AuditEntryPublic]:
    """Label moves, newest first."""
    row = feature_or_404(session, feature) if feature else None
    return crud.list_audit(session=session, feature=row, label=label, limit=limit)


# -- moving --------------------------------------------------------------------------------


def _previous_target(session: Session, feature: Feature, label: str, current: int) -> int | None:
    """The newest version the label pointed at before that is older than `current`."""
    for entry in crud.label_moves(session=session, feature=feature, label=label):
        for number in (entry.to_version, entry.from_version):
            if number is not None and number < current:
                return number
    # The label never pointed lower (a first sync imported the history at once): the
    # newest older version is what "back" means.
    return crud.newest_version_below(session=session, feature=feature, below=current)


def _movable(session: Session, name: str, label: str) -> tuple[Feature, Label | None]:
    """A live feature and its label row, locked for the move."""
    feature = feature_or_404(session, name)
    if feature.retired:
        raise Retired(f"feature {name!r} was retired: its policy file was deleted")
    return feature, crud.get_label(session=session, feature=feature, name=label, for_update=True)


def rollback(
    session: Session,
    name: str,
    *,
    label: str = DEFAULT_LABEL,
    to_version: int | None = None,
    actor: str,
    reason: str | None = None,
) -> LabelMove:
    """Move `label` back (to the previous target or `to_version`) and pin it."""
    feature, current = _movable(session, name, label)
    if current is None:
        raise NotFound(f"feature {name!r} has no version labelled {label!r}")
    now = crud.version_by_id(session=session, version_id=current.version_id)
    active = crud.active_rollout(session=session, feature=feature, label=label, for_update=True)
    if active is not None:
        # A rollback during a rollout aborts it: the label stays on stable, pinned (SPEC §10).
        from registry.rollouts import machine

        why = f"rollback by {actor}" + (f": {reason}" if reason else "")
        machine.abort(session, active, actor=actor, reason=why)
        if to_version is None:
            return LabelMove(name, label, now.version, now.version, True)
    target_number = to_version
    if target_number is None:
        target_number = _previous_target(session, feature, label, now.version)
        if target_number is None:
            raise Conflict(
                f"{name} {label} is at version {now.version} and has no earlier target to "
                "roll back to; use --to N to pick a version"
            )
    target = version_or_404(session, feature, target_number)
    move(
        session, feature, label, target, pinned=True, action="rollback", actor=actor, reason=reason
    )
    return LabelMove(
        feature=name, label=label, from_version=now.version, to_version=target.version, pinned=True
    )


def promote(
    session: Session,
    name: str,
    *,
    label: str = DEFAULT_LABEL,
    version: int | None = None,
    actor: str,
    reason: str | None = None,
) -> LabelMove:
    """Move `label` to `version` (default: the newest) and unpin it."""
    feature, current = _movable(session, name, label)
    if version is None:
        target = crud.latest_version(session=session, feature=feature)
        if target is None:
            raise NotFound(f"feature {name!r} has no versions")
    else:
        target = version_or_404(session, feature, version)
    before = (
        crud.version_by_id(session=session, version_id=current.version_id).version
        if current
        else None
    )
    active = crud.active_rollout(session=session, feature=feature, label=label, for_update=True)
    if active is not None:
        # Promoting the candidate completes the rollout; promoting anything else ends it.
        from registry.rollouts import machine

        why = f"promoted to v{target.version} by {actor}" + (f": {reason}" if reason else "")
        if active.candidate_version_id == target.id:
            machine.complete(session, active, actor=actor, reason=why)
            return LabelMove(name, label, before, target.version, False)
        machine.supersede(session, active, reason=why)
    move(
        session, feature, label, target, pinned=False, action="promote", actor=actor, reason=reason
    )
    return LabelMove(
        feature=name, label=label, from_version=before, to_version=target.version, pinned=False
    )


def rollback_all(
    session: Session,
    *,
    commit: str,
    ancestors: set[str],
    label: str = DEFAULT_LABEL,
    actor: str,
    reason: str | None = None,
) -> list[LabelMove]:
    """Roll back every feature whose labelled version came after `commit` (one transaction).

    `ancestors` is the set of commit shas reachable from `commit`, itself included. Each
    feature goes to its newest version made at or before that commit; a feature that did
    not exist then is left alone. A rollout on the label is aborted when the label moves or
    its candidate came after the commit, as a single rollback aborts it (the label pinned).
    """
    why = reason or f"rollback --all --to-commit {commit[:12]}"
    moves: list[LabelMove] = []
    for feature, label_row in crud.labelled_features(session=session, label=label):
        current = crud.version_by_id(session=session, version_id=label_row.version_id)
        target = None
        if current.commit_sha not in ancestors:
            versions = crud.versions_newest_first(session=session, feature=feature)
            target = next((v for v in versions if v.commit_sha in ancestors), None)
        active = crud.active_rollout(session=session, feature=feature, label=label, for_update=True)
        later = active is not None and (
            crud.version_by_id(session=session, version_id=active.candidate_version_id).commit_sha
            not in ancestors
        )
        if active is not None and (target is not None or later):
            from registry.rollouts import machine

            machine.abort(session, active, actor=actor, reason=f"rollback by {actor}: {why}")
            if target is None:  # stays on stable, now pinned
                moves.append(LabelMove(feature.name, label, current.version, current.version, True))
        if target is None:
            continue
        moved = move(
            session, feature, label, target, pinned=True, action="rollback", actor=actor, reason=why
        )
        if moved is not None:
            moves.append(replace(moved, from_version=current.version))
    return moves
