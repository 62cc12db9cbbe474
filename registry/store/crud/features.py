"""Features: look up, create, list with a label, mark retired."""

from datetime import datetime

from sqlmodel import Session, and_, col, select

from registry.store.models import (
    ACTIVE_STATES,
    Feature,
    FeatureSummary,
    Label,
    Rollout,
    Version,
    utcnow,
)


def get_feature(*, session: Session, name: str) -> Feature | None:
    """The feature with this name, or None."""
    return session.exec(select(Feature).where(Feature.name == name)).first()


def get_or_create_feature(*, session: Session, name: str, at: datetime | None = None) -> Feature:
    """The feature with this name, created if it does not exist yet."""
    feature = get_feature(session=session, name=name)
    if feature is None:
        feature = Feature(name=name, created_at=at or utcnow())
        session.add(feature)
        session.flush()
    return feature


def list_features_with_label(*, session: Session, label: str) -> list[FeatureSummary]:
    """Every feature by name, with the version ``label`` points it at (None when unset)."""
    stmt = (
        select(Feature, Label, Version)
        .outerjoin(Label, and_(col(Label.feature_id) == Feature.id, col(Label.name) == label))
        .outerjoin(Version, col(Version.id) == Label.version_id)
        .order_by(col(Feature.name))
    )
    rolling = dict(
        session.exec(
            select(Rollout.feature_id, Rollout.percent).where(
                Rollout.label == label, col(Rollout.state).in_(ACTIVE_STATES)
            )
        ).all()
    )
    return [
        FeatureSummary(
            name=feature.name,
            label=label,
            version=version.version if version else None,
            pinned=bool(row_label and row_label.pinned),
            updated_at=row_label.updated_at if row_label else None,
            retired=feature.retired,
            rollout_percent=rolling.get(feature.id) if feature.id is not None else None,
        )
        for feature, row_label, version in session.exec(stmt).all()
    ]


def mark_retired(*, session: Session, feature: Feature, retired: bool, at: datetime) -> None:
    """Set the feature's retired flag (the audit entry is `labels.retire`'s job)."""
    feature.retired, feature.retired_at = retired, at if retired else None
    session.add(feature)


def all_features(*, session: Session) -> list[Feature]:
    """Every feature, retired or not."""
    return list(session.exec(select(Feature)).all())


def live_policy_paths(*, session: Session) -> list[tuple[str, str]]:
    """(feature name, policy path) of every version of every live feature."""
    stmt = (
        select(Feature.name, Version.policy_path)
        .join(Version, col(Version.feature_id) == Feature.id)
        .where(col(Feature.retired).is_(False))
    )
    return [(name, path) for name, path in session.exec(stmt).all()]
