"""Rollouts: the active one of a label, the latest of a feature, the running ones."""

import json
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from registry.store.models import (
    ACTIVE_STATES,
    Feature,
    Rollout,
    RolloutPublic,
    Version,
)
from registry.store.models import pk as _pk


def active_rollout(
    *, session: Session, feature: Feature, label: str, for_update: bool = False
) -> Rollout | None:
    """The running or paused rollout on the feature's label, or None."""
    stmt = (
        select(Rollout)
        .where(Rollout.feature_id == _pk(feature), Rollout.label == label)
        .where(col(Rollout.state).in_(ACTIVE_STATES))
        .order_by(col(Rollout.id).desc())
        .limit(1)
    )
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return session.exec(stmt).first()


def latest_rollout(
    *, session: Session, feature: Feature, label: str | None = None
) -> Rollout | None:
    """The feature's newest rollout (on `label`, when given), finished or not."""
    stmt = select(Rollout).where(Rollout.feature_id == _pk(feature))
    if label is not None:
        stmt = stmt.where(Rollout.label == label)
    return session.exec(stmt.order_by(col(Rollout.id).desc()).limit(1)).first()


def active_rollouts(*, session: Session, feature: Feature | None = None) -> list[Rollout]:
    """Every running or paused rollout (of one feature, when given), oldest first."""
    stmt = select(Rollout).where(col(Rollout.state).in_(ACTIVE_STATES))
    if feature is not None:
        stmt = stmt.where(Rollout.feature_id == _pk(feature))
    return list(session.exec(stmt.order_by(col(Rollout.id))).all())


def newest_rollouts(label: str | None = None) -> Any:
    """A subquery: the id (`id`) of each feature's newest rollout per label (on `label`
    only, when given)."""
    stmt = select(func.max(Rollout.id).label("id")).group_by(
        col(Rollout.feature_id), col(Rollout.label)
    )
    if label is not None:
        stmt = stmt.where(Rollout.label == label)
    return stmt.subquery()


def latest_rollouts(*, session: Session, label: str | None = None) -> list[Rollout]:
    """Each feature's newest rollout (per label), by feature id."""
    newest = newest_rollouts(label)
    stmt = (
        select(Rollout)
        .join(newest, col(Rollout.id) == newest.c.id)
        .order_by(col(Rollout.feature_id), col(Rollout.label))
    )
    return list(session.exec(stmt).all())


def save_rollout(*, session: Session, rollout: Rollout) -> Rollout:
    """Store a new rollout, or write a rollout's changed fields."""
    session.add(rollout)
    session.flush()
    return rollout


def append_decision(rollout: Rollout, decision: dict[str, Any], at: datetime) -> None:
    """Add one decision record to the rollout's history (caller saves)."""
    history = json.loads(rollout.decisions)
    history.append({"at": at.isoformat(), **decision})
    rollout.decisions = json.dumps(history, separators=(",", ":"), default=str)
    rollout.decided_at = at


def rollout_public(*, session: Session, rollout: Rollout) -> RolloutPublic:
    """A rollout as the API shows it: version numbers, parsed plan and history."""
    feature = session.get_one(Feature, rollout.feature_id)
    stable = session.get_one(Version, rollout.stable_version_id)
    candidate = session.get_one(Version, rollout.candidate_version_id)
    return RolloutPublic(
        feature=feature.name,
        label=rollout.label,
        state=rollout.state,
        step=rollout.step,
        percent=rollout.percent,
        interval_s=rollout.interval_s,
        min_requests=rollout.min_requests,
        reason=rollout.reason,
        actor=rollout.actor,
        candidate=candidate.version,
        stable=stable.version,
        steps=json.loads(rollout.steps),
        guards=json.loads(rollout.guards),
        started_at=rollout.started_at,
        step_started_at=rollout.step_started_at,
        decided_at=rollout.decided_at,
        decisions=json.loads(rollout.decisions),
    )
