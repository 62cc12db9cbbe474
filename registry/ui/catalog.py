"""The features page's catalog: every feature, where the label points it, its newest
rollout on the label. Three queries whatever the number of features; it changes only when
the change marker moves, so `overview.Overview` keeps it until then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from registry.store import crud
from registry.store.models import ACTIVE_STATES, Feature, Label, Rollout, Version


@dataclass(frozen=True)
class RolloutBrief:
    """A feature's latest rollout on the label, as the list shows it."""

    state: str
    percent: int
    stable: int
    candidate: int

    @property
    def active(self) -> bool:
        """Running or paused."""
        return self.state in ACTIVE_STATES


@dataclass(frozen=True)
class Entry:
    """One feature of the catalog: where the label points it, and the live policy."""

    feature_id: int
    name: str
    retired: bool
    version: int | None
    version_id: int | None
    pinned: bool
    updated_at: datetime | None
    rollout: RolloutBrief | None


def read_entries(session: Session, label: str) -> list[Entry]:
    """Every feature by name, where `label` points it, and its newest rollout on `label`."""
    stmt = (
        sa_select(
            col(Feature.id),
            col(Feature.name),
            col(Feature.retired),
            col(Label.pinned),
            col(Label.updated_at),
            col(Label.version_id),
            col(Version.version),
        )
        .outerjoin(Label, and_(col(Label.feature_id) == Feature.id, col(Label.name) == label))
        .outerjoin(Version, col(Version.id) == Label.version_id)
        .order_by(col(Feature.name))
    )
    rollouts = latest_rollouts(session, label)
    return [
        Entry(
            feature_id=int(fid or 0),
            name=name,
            retired=bool(retired),
            version=version,
            version_id=version_id,
            pinned=bool(pinned),
            updated_at=updated_at,
            rollout=rollouts.get(int(fid or 0)),
        )
        for fid, name, retired, pinned, updated_at, version_id, version in session.execute(stmt)
    ]


def latest_rollouts(session: Session, label: str) -> dict[int, RolloutBrief]:
    """Each feature's newest rollout on `label`, by feature id (one query)."""
    newest = crud.newest_rollouts(label)
    stable, candidate = aliased(Version), aliased(Version)
    stmt = (
        sa_select(
            col(Rollout.feature_id),
            col(Rollout.state),
            col(Rollout.percent),
            col(stable.version),
            col(candidate.version),
        )
        .join(newest, col(Rollout.id) == newest.c.id)
        .join(stable, col(stable.id) == Rollout.stable_version_id)
        .join(candidate, col(candidate.id) == Rollout.candidate_version_id)
    )
    return {
        int(fid): RolloutBrief(state, int(percent), int(old), int(new))
        for fid, state, percent, old, new in session.execute(stmt)
    }


def newest_version_ids(session: Session, feature_ids: list[int]) -> dict[int, int]:
    """The newest version id of each feature without the label (stats falls back to it)."""
    if not feature_ids:
        return {}
    newest = crud.newest_versions(feature_ids)
    stmt = select(Version.feature_id, Version.id).join(
        newest,
        and_(
            col(Version.feature_id) == newest.c.feature_id,
            col(Version.version) == newest.c.number,
        ),
    )
    return {int(fid): int(vid or 0) for fid, vid in session.exec(stmt)}
