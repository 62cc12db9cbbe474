"""The label state machine: resolve, rollback, promote, pin, and the read side around them.

A label points each feature at one version (SPEC §2). Sync moves un-pinned labels
forward; `rollback` moves a label back and pins it, so the next merge does not undo the
rollback; `promote` moves it forward and unpins. Every move is written to the audit log
by `crud.set_label`. The functions here take a session and never commit: the caller's
transaction decides, so `rollback_all` is all-or-nothing.

"Previous" means the newest version this label pointed at before, older than the
current one: two rollbacks in a row go back two steps instead of toggling.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, func, select

from registry.errors import Conflict, NotFound, Retired
from registry.store import crud
from registry.store.models import AuditEntry, CommitInfo, Feature, Label, Version


@dataclass(frozen=True)
class LabelMove:
    """The result of a rollback or promote."""

    feature: str
    label: str
    from_version: int | None
    to_version: int
    pinned: bool

    def as_dict(self) -> dict[str, Any]:
        """The wire form."""
        return asdict(self)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def commit_dict(commit: CommitInfo) -> dict[str, Any]:
    """The commit that produced a version, in the API's shape."""
    return {
        "sha": commit.sha,
        "author": commit.author,
        "email": commit.email,
        "message": commit.message,
        "committed_at": _iso(commit.committed_at),
    }


MAX_VERSION = 2**31 - 1


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
    session: Session, name: str, *, label: str = "production", version: int | None = None
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
    return feature, session.get_one(Version, label_row.version_id), label_row


def version_dict(
    feature: Feature, version: Version, label: str | None, label_row: Label | None
) -> dict[str, Any]:
    """A resolved version in the API's shape (SPEC §4)."""
    content = json.loads(version.content)
    prompt = content["prompt"]
    return {
        "feature": feature.name,
        "version": version.version,
        "label": label,
        "content_hash": version.content_hash,
        "commit": commit_dict(version.commit),
        "pinned": bool(label_row and label_row.pinned and label_row.version_id == version.id),
        "retired": feature.retired,
        "prompt": {
            "path": prompt["path"],
            "source": prompt["source"],
            "inputs": prompt.get("inputs", {}),
        },
        "partials": content.get("partials", {}),
        "policy": content["policy"],
        "models": content.get("models", {}),
        "created_at": _iso(version.created_at),
        # the stored canonical snapshot: clients rebuild the feature from it, checking its hash
        "snapshot": content,
    }


def list_features(session: Session, *, label: str = "production") -> list[dict[str, Any]]:
    """Every feature with its label's version, pinned flag and update time."""
    return [
        {
            "name": row.name,
            "label": row.label,
            "version": row.version,
            "pinned": row.pinned,
            "updated_at": _iso(row.updated_at),
            "retired": row.retired,
        }
        for row in crud.list_features_with_label(session=session, label=label)
    ]


def history(session: Session, name: str) -> list[dict[str, Any]]:
    """All versions of a feature, newest first, with commit info and labels."""
    feature = feature_or_404(session, name)
    return [
        {
            "version": v.version,
            "content_hash": v.content_hash,
            "commit": commit_dict(v.commit),
            "created_at": _iso(v.created_at),
            "labels": v.labels,
        }
        for v in crud.versions_of(session=session, feature=feature)
    ]


def audit(
    session: Session, *, feature: str | None = None, label: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Label moves, newest first."""
    row = feature_or_404(session, feature) if feature else None
    return [
        {
            "feature": e.feature,
            "label": e.label,
            "action": e.action,
            "from_version": e.from_version,
            "to_version": e.to_version,
            "actor": e.actor,
            "reason": e.reason,
            "at": _iso(e.at),
        }
        for e in crud.list_audit(session=session, feature=row, label=label, limit=limit)
    ]


def _previous_target(session: Session, feature: Feature, label: str, current: int) -> int | None:
    """The newest version the label pointed at before that is older than `current`."""
    entries = session.exec(
        select(AuditEntry)
        .where(AuditEntry.feature_id == feature.id, AuditEntry.label == label)
        .where(col(AuditEntry.action).in_(("sync", "rollback", "promote")))
        .order_by(col(AuditEntry.id).desc())
    ).all()
    for entry in entries:
        for number in (entry.to_version, entry.from_version):
            if number is not None and number < current:
                return number
    # The label never pointed lower (a first sync imported the history at once): the
    # newest older version is what "back" means.
    older = session.exec(
        select(func.max(Version.version)).where(
            Version.feature_id == feature.id, Version.version < current
        )
    ).one()
    return int(older) if older is not None else None


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
    label: str = "production",
    to_version: int | None = None,
    actor: str,
    reason: str | None = None,
) -> LabelMove:
    """Move `label` back (to the previous target or `to_version`) and pin it."""
    feature, current = _movable(session, name, label)
    if current is None:
        raise NotFound(f"feature {name!r} has no version labelled {label!r}")
    now = session.get_one(Version, current.version_id)
    if to_version is None:
        target_number = _previous_target(session, feature, label, now.version)
        if target_number is None:
            raise Conflict(
                f"{name} {label} is at version {now.version} and has no earlier target to "
                "roll back to; use --to N to pick a version"
            )
    else:
        target_number = to_version
    target = version_or_404(session, feature, target_number)
    crud.set_label(
        session=session,
        feature=feature,
        name=label,
        version=target,
        pinned=True,
        action="rollback",
        actor=actor,
        reason=reason,
    )
    return LabelMove(name, label, now.version, target.version, True)


def promote(
    session: Session,
    name: str,
    *,
    label: str = "production",
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
    before = session.get_one(Version, current.version_id).version if current else None
    crud.set_label(
        session=session,
        feature=feature,
        name=label,
        version=target,
        pinned=False,
        action="promote",
        actor=actor,
        reason=reason,
    )
    return LabelMove(name, label, before, target.version, False)


def rollback_all(
    session: Session,
    *,
    commit: str,
    ancestors: set[str],
    label: str = "production",
    actor: str,
    reason: str | None = None,
) -> list[LabelMove]:
    """Roll back every feature whose labelled version came after `commit` (one transaction).

    `ancestors` is the set of commit shas reachable from `commit`, itself included. Each
    feature goes to its newest version made at or before that commit; a feature that did
    not exist then is left alone.
    """
    moves: list[LabelMove] = []
    rows = session.exec(
        select(Feature, Label)
        .join(Label, col(Label.feature_id) == Feature.id)
        .where(Label.name == label, col(Feature.retired).is_(False))
        .order_by(col(Feature.name))
    ).all()
    for feature, label_row in rows:
        current = session.get_one(Version, label_row.version_id)
        if current.commit_sha in ancestors:
            continue
        versions = session.exec(
            select(Version)
            .where(Version.feature_id == feature.id)
            .order_by(col(Version.version).desc())
        ).all()
        target = next((v for v in versions if v.commit_sha in ancestors), None)
        if target is None:
            continue
        crud.set_label(
            session=session,
            feature=feature,
            name=label,
            version=target,
            pinned=True,
            action="rollback",
            actor=actor,
            reason=reason or f"rollback --all --to-commit {commit[:12]}",
        )
        moves.append(LabelMove(feature.name, label, current.version, target.version, True))
    return moves
