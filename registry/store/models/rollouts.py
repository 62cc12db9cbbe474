"""Rollouts: a candidate version reaching a label's users a slice at a time (SPEC §10).

One row per rollout, finished or not. While it runs, the label still points at the
stable version; `percent` of requests get the candidate. Every decision the controller
makes is appended to `decisions` with the numbers behind it, so a rollout's history reads
from its row. The plan (steps, interval, minimum requests, guards) is copied from the
candidate's policy when the rollout starts.
"""

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Text
from sqlmodel import Field, SQLModel

from registry.store.models.base import NAME_LENGTH, Timestamp, UTCDateTime, check_in, utcnow

ROLLOUT_STATES = ("running", "paused", "completed", "aborted", "superseded")
ACTIVE_STATES = ("running", "paused")


class RolloutBase(SQLModel):
    label: str = Field(max_length=NAME_LENGTH)
    state: str = Field(default="running", max_length=16)
    step: int = 0  # index into steps
    percent: int = 0  # of requests on the candidate, 0-100
    interval_s: float
    min_requests: int
    reason: str | None = Field(default=None, sa_type=Text())  # why it ended, or was paused
    actor: str = Field(max_length=NAME_LENGTH)


class Rollout(RolloutBase, table=True):
    __tablename__ = "rollouts"
    __table_args__ = (
        CheckConstraint(check_in("state", ROLLOUT_STATES), name="state"),
        CheckConstraint("percent >= 0 AND percent <= 100", name="percent"),
        Index("ix_rollouts_feature_id_label", "feature_id", "label"),
    )

    id: int | None = Field(default=None, primary_key=True)
    feature_id: int = Field(foreign_key="features.id")
    stable_version_id: int = Field(foreign_key="versions.id")
    candidate_version_id: int = Field(foreign_key="versions.id")
    steps: str = Field(sa_type=Text())  # JSON list of percents
    guards: str = Field(sa_type=Text())  # JSON object: guard name -> threshold
    waited: int = 0  # intervals waited at this step for each arm's minimum requests
    decisions: str = Field(default="[]", sa_type=Text())  # JSON list, oldest first
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    step_started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class RolloutPublic(RolloutBase):
    """A rollout as the API and CLI show it (versions as numbers)."""

    feature: str
    candidate: int
    stable: int
    steps: list[int]
    guards: dict[str, float | None]
    started_at: Timestamp
    step_started_at: Timestamp
    decided_at: Timestamp | None
    decisions: list[dict[str, object]]
