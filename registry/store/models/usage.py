"""Usage: raw events as clients report them, and the rollups stats and guards read.

Hourly rollups (per feature, version and model) answer stats over hours and days; minute
rollups (per feature and version) answer the rollout guards' short windows. Both are
summed at ingestion, so reading them costs the same at 100 M events as at 1 M.
"""

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from registry.outcomes import OUTCOMES
from registry.store.models.base import NAME_LENGTH, UTCDateTime, check_in, utcnow

USAGE_OUTCOMES = OUTCOMES
EVENT_ID_LENGTH = 200


class UsageEvent(SQLModel, table=True):
    """One model call reported by a client; ``event_id`` (client-generated) makes retries safe."""

    __tablename__ = "usage_events"
    __table_args__ = (
        CheckConstraint(check_in("outcome", USAGE_OUTCOMES), name="outcome"),
        Index("ix_usage_events_feature_id_at", "feature_id", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    event_id: str | None = Field(default=None, max_length=EVENT_ID_LENGTH, unique=True)
    feature_id: int = Field(foreign_key="features.id")
    version: int
    model: str = Field(max_length=NAME_LENGTH)
    outcome: str = Field(max_length=16)
    input_tokens: int
    output_tokens: int
    estimated_input_tokens: int
    latency_ms: float
    cost_usd: float | None = None
    at: datetime = Field(sa_type=UTCDateTime())
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class HourRow(SQLModel):
    """The key columns of an hourly table: one feature version on one model in one UTC hour."""

    id: int | None = Field(default=None, primary_key=True)
    feature_id: int = Field(foreign_key="features.id")
    hour: datetime = Field(sa_type=UTCDateTime())
    version: int
    model: str = Field(max_length=NAME_LENGTH)


class MinuteRow(SQLModel):
    """The key columns of a minute table: one feature version in one UTC minute."""

    id: int | None = Field(default=None, primary_key=True)
    feature_id: int = Field(foreign_key="features.id")
    minute: datetime = Field(sa_type=UTCDateTime())
    version: int


class OutcomeCounts(SQLModel):
    """Requests and one count column per outcome (USAGE_OUTCOMES), for the rollup tables.

    Name it before the key mixin (``UsageRollup(OutcomeCounts, HourRow)``): the key
    columns then come first, as the migrations create them.
    """

    requests: int = 0
    ok: int = 0
    error: int = 0
    timeout: int = 0
    fallback: int = 0
    degraded: int = 0
    rejected: int = 0


class UsageRollup(OutcomeCounts, HourRow, table=True):
    """Usage of one feature version on one model in one UTC hour, summed at ingestion.

    Hours add up to days and windows; a stats query reads a few rows per hour instead of
    every event. One count column per outcome keeps the upsert a plain ``x = x + excluded.x``.
    """

    __tablename__ = "usage_rollups"
    __table_args__ = (
        UniqueConstraint("feature_id", "hour", "version", "model"),
        # the dashboard's features page sums the last hours of every feature at once
        Index("ix_usage_rollups_hour", "hour"),
    )

    input_tokens: int = Field(default=0, sa_type=BigInteger())
    output_tokens: int = Field(default=0, sa_type=BigInteger())
    estimated_input_tokens: int = Field(default=0, sa_type=BigInteger())
    # Drift compares only answered calls (ok, fallback) that carried an estimate: a budget
    # rejection or a failed call has no real input count to compare.
    drift_input_tokens: int = Field(default=0, sa_type=BigInteger())
    drift_estimated_tokens: int = Field(default=0, sa_type=BigInteger())
    cost_usd: float = 0.0
    latency_ms_sum: float = 0.0  # over calls made (budget rejections made none)


ROLLUP_SUMS = (
    "requests",
    *USAGE_OUTCOMES,
    "input_tokens",
    "output_tokens",
    "estimated_input_tokens",
    "drift_input_tokens",
    "drift_estimated_tokens",
    "cost_usd",
    "latency_ms_sum",
)  # the columns of usage_rollups that ingestion adds to


class UsageLatency(HourRow, table=True):
    """A latency histogram per rollup row: how many calls fell in each log-spaced bucket.

    Budget rejections made no call and are left out.
    """

    __tablename__ = "usage_latency"
    __table_args__ = (
        UniqueConstraint("feature_id", "hour", "version", "model", "bucket"),
        Index("ix_usage_latency_hour", "hour"),
    )

    bucket: int
    count: int = 0


class UsageMinute(OutcomeCounts, MinuteRow, table=True):
    """Usage of one feature version in one UTC minute: what the rollout guards compare.

    No model dimension (guards compare versions), and sums of squared cost so a guard can
    bound the difference of mean costs.
    """

    __tablename__ = "usage_minutes"
    __table_args__ = (
        UniqueConstraint("feature_id", "minute", "version"),
        Index("ix_usage_minutes_minute", "minute"),
    )

    cost_usd: float = 0.0
    cost_usd_sq: float = 0.0
    cost_n: int = 0  # calls that carried a cost
    latency_ms_sum: float = 0.0
    drift_input_tokens: int = Field(default=0, sa_type=BigInteger())
    drift_estimated_tokens: int = Field(default=0, sa_type=BigInteger())


MINUTE_SUMS = (
    "requests",
    *USAGE_OUTCOMES,
    "cost_usd",
    "cost_usd_sq",
    "cost_n",
    "latency_ms_sum",
    "drift_input_tokens",
    "drift_estimated_tokens",
)  # the columns of usage_minutes that ingestion adds to


class UsageMinuteLatency(MinuteRow, table=True):
    """The latency histogram of one feature version in one UTC minute."""

    __tablename__ = "usage_minute_latency"
    __table_args__ = (
        UniqueConstraint("feature_id", "minute", "version", "bucket"),
        Index("ix_usage_minute_latency_minute", "minute"),
    )

    bucket: int
    count: int = 0
