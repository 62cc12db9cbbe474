"""Labels, the audit log and the change marker: the rows behind `registry.labels`.

Moving a label is `registry.labels.move`, which calls `write_label`, `add_audit` and
`bump_generation` in one transaction; nothing else writes labels.
"""

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, and_, col, select

from registry.store.crud.versions import newest_versions
from registry.store.models import (
    AUDIT_ACTIONS,
    AuditEntry,
    AuditEntryPublic,
    Feature,
    Generation,
    Label,
    Version,
    utcnow,
)
from registry.store.models import pk as _pk

MOVES = ("sync", "rollback", "promote")  # audit actions that moved a label


def get_label(
    *, session: Session, feature: Feature, name: str, for_update: bool = False
) -> Label | None:
    """The feature's label ``name`` or None; ``for_update`` locks and re-reads the row."""
    # A decision on `pinned` must not race a concurrent rollback: on PostgreSQL the locked
    # re-read waits for it and sees it; on SQLite a write from a stale snapshot fails instead.
    stmt = select(Label).where(Label.feature_id == _pk(feature), Label.name == name)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return session.exec(stmt).first()


def resolve_label(*, session: Session, feature: Feature, name: str) -> tuple[Label, Version] | None:
    """The label and the version it points at, or None when the label was never set."""
    stmt = (
        select(Label, Version)
        .join(Version, col(Version.id) == Label.version_id)
        .where(Label.feature_id == _pk(feature), Label.name == name)
    )
    row = session.exec(stmt).first()
    return (row[0], row[1]) if row else None


def write_label(
    *,
    session: Session,
    feature: Feature,
    label: Label | None,
    name: str,
    version: Version,
    pinned: bool,
    at: datetime,
) -> tuple[Label, int | None]:
    """Point label ``name`` (its row ``label``, read for update; None: a new label) at
    ``version``; returns the row and the version number it left.

    ``previous_version_id`` remembers the version left behind. Only `labels.move` calls
    this: it writes the audit entry and the change marker in the same transaction.
    """
    if version.feature_id != _pk(feature):
        raise ValueError(f"version {version.version} does not belong to {feature.name}")
    if label is None:
        label = Label(
            feature_id=_pk(feature),
            name=name,
            version_id=_pk(version),
            pinned=pinned,
            updated_at=at,
        )
        left = None
    else:
        left = session.get_one(Version, label.version_id).version
        if label.version_id != version.id:
            label.previous_version_id = label.version_id
        label.version_id, label.pinned, label.updated_at = _pk(version), pinned, at
    session.add(label)
    session.flush()
    return label, left


def bump_generation(*, session: Session) -> None:
    """Tell every API replica that what it serves may have changed (commits with the caller)."""
    session.execute(
        update(Generation).where(col(Generation.id) == 1).values(value=Generation.value + 1)
    )


def get_generation(*, session: Session) -> int:
    """The change marker's current value."""
    value = session.exec(select(Generation.value).where(Generation.id == 1)).first()
    return int(value or 0)


def add_audit(
    *,
    session: Session,
    feature: Feature,
    label: str,
    action: str,
    from_version: int | None,
    to_version: int | None,
    actor: str,
    reason: str | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry to the audit log."""
    if action not in AUDIT_ACTIONS:
        raise ValueError(f"audit action must be one of {', '.join(AUDIT_ACTIONS)}, got {action!r}")
    entry = AuditEntry(
        feature_id=_pk(feature),
        label=label,
        action=action,
        from_version=from_version,
        to_version=to_version,
        actor=actor,
        reason=reason,
        at=at or utcnow(),
    )
    session.add(entry)
    session.flush()
    return entry


def list_audit(
    *,
    session: Session,
    feature: Feature | None = None,
    label: str | None = None,
    limit: int = 100,
) -> list[AuditEntryPublic]:
    """Audit entries, newest first, optionally for one feature and/or one label."""
    stmt = select(AuditEntry, Feature.name).join(Feature, col(Feature.id) == AuditEntry.feature_id)
    if feature is not None:
        stmt = stmt.where(AuditEntry.feature_id == _pk(feature))
    if label is not None:
        stmt = stmt.where(AuditEntry.label == label)
    stmt = stmt.order_by(col(AuditEntry.id).desc()).limit(limit)
    return [
        AuditEntryPublic.model_validate(entry, update={"feature": feature_name})
        for entry, feature_name in session.exec(stmt).all()
    ]


def label_moves(*, session: Session, feature: Feature, label: str) -> list[AuditEntry]:
    """The audit entries that moved this label (sync, rollback, promote), newest first."""
    stmt = (
        select(AuditEntry)
        .where(AuditEntry.feature_id == _pk(feature), AuditEntry.label == label)
        .where(col(AuditEntry.action).in_(MOVES))
        .order_by(col(AuditEntry.id).desc())
    )
    return list(session.exec(stmt).all())


def labelled_features(*, session: Session, label: str) -> list[tuple[Feature, Label]]:
    """Every live feature that has ``label``, with its label row, by name."""
    stmt = (
        select(Feature, Label)
        .join(Label, col(Label.feature_id) == Feature.id)
        .where(Label.name == label, col(Feature.retired).is_(False))
        .order_by(col(Feature.name))
    )
    return [(f, row) for f, row in session.exec(stmt).all()]


def labels_behind_newest(*, session: Session, label: str) -> list[tuple[Feature, Version]]:
    """Live features whose un-pinned ``label`` is not on their newest version, with it."""
    newest = newest_versions()
    stmt = (
        select(Feature, Version)
        .join(Label, and_(col(Label.feature_id) == Feature.id, col(Label.name) == label))
        .join(newest, col(newest.c.feature_id) == Feature.id)
        .join(
            Version,
            and_(col(Version.feature_id) == Feature.id, col(Version.version) == newest.c.number),
        )
        .where(col(Label.pinned).is_(False), col(Feature.retired).is_(False))
        .where(col(Label.version_id) != col(Version.id))
    )
    return [(f, v) for f, v in session.exec(stmt).all()]
