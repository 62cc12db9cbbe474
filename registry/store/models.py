"""The database schema: features, versions, labels, audit log, sync runs and state, tokens, usage.

Each entity is a family: ``XBase`` (shared fields) -> ``X(table=True)`` -> ``XPublic`` (what
the API and CLI show). ``migrations/`` must create exactly these tables; a test compares them.
Timestamps are timezone-aware UTC on every backend (see ``UTCDateTime``).
"""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import PlainSerializer
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Index,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

# Named constraints, so Alembic (and its SQLite batch mode) can address them later.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

AUDIT_ACTIONS = ("sync", "rollback", "promote", "retire", "unretire")
TOKEN_ROLES = ("reader", "admin")
SYNC_STATUSES = ("running", "ok", "errors", "failed")

NAME_LENGTH = 200
MAX_VERSION = 2**31 - 1  # version numbers are 32-bit integers on every backend
SHA_LENGTH = 64  # a sha256 content hash; also holds SHA-1 and SHA-256 git object ids


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def pk(row: SQLModel) -> int:
    """The primary key of a stored row (add and flush it first)."""
    value = getattr(row, "id", None)
    if not isinstance(value, int):
        raise ValueError(f"{type(row).__name__} has no id yet: add and flush it first")
    return value


# A timestamp as the API shows it: ISO 8601 with its offset (+00:00), as `isoformat` writes.
Timestamp = Annotated[datetime, PlainSerializer(datetime.isoformat, when_used="json")]


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware, on SQLite and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; store UTC (naive on SQLite, which has no time zones)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: pass a timezone-aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to what SQLite returns; normalise PostgreSQL's session time zone to UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- features -----------------------------------------------------------------------------


class FeatureBase(SQLModel):
    name: str = Field(max_length=NAME_LENGTH, unique=True)
    retired: bool = False
    retired_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class Feature(FeatureBase, table=True):
    __tablename__ = "features"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class FeaturePublic(FeatureBase):
    created_at: datetime


class FeatureSummary(SQLModel):
    """One row of the features list: a feature and where one label points it."""

    name: str
    label: str
    version: int | None
    pinned: bool
    updated_at: Timestamp | None
    retired: bool


# --- versions -----------------------------------------------------------------------------


class CommitInfo(SQLModel):
    sha: str
    author: str
    email: str
    message: str
    committed_at: Timestamp


class VersionBase(SQLModel):
    version: int
    content_hash: str = Field(max_length=SHA_LENGTH)
    prompt_path: str
    policy_path: str


class Version(VersionBase, table=True):
    """An immutable snapshot of a feature; ``content`` is its canonical JSON, stored verbatim."""

    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("feature_id", "version"),
        Index("ix_versions_feature_id_content_hash", "feature_id", "content_hash"),
    )

    id: int | None = Field(default=None, primary_key=True)
    feature_id: int = Field(foreign_key="features.id")
    content: str = Field(sa_type=Text())
    commit_sha: str = Field(max_length=SHA_LENGTH)
    commit_author: str
    commit_email: str
    committed_at: datetime = Field(sa_type=UTCDateTime())
    commit_message: str = Field(sa_type=Text())
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())

    @property
    def commit(self) -> CommitInfo:
        """The git commit that produced this version."""
        return CommitInfo(
            sha=self.commit_sha,
            author=self.commit_author,
            email=self.commit_email,
            message=self.commit_message,
            committed_at=self.committed_at,
        )


class VersionPublic(VersionBase):
    feature: str
    commit: CommitInfo
    created_at: Timestamp
    labels: list[str]


# --- labels -------------------------------------------------------------------------------


class LabelBase(SQLModel):
    name: str = Field(max_length=NAME_LENGTH)
    pinned: bool = False


class Label(LabelBase, table=True):
    """Where a label points a feature; ``previous_version_id`` is where it pointed before."""

    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("feature_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    feature_id: int = Field(foreign_key="features.id")
    version_id: int = Field(foreign_key="versions.id")
    previous_version_id: int | None = Field(default=None, foreign_key="versions.id")
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class LabelPublic(LabelBase):
    feature: str
    version: int
    previous_version: int | None
    updated_at: datetime


# --- audit log ----------------------------------------------------------------------------


class AuditEntryBase(SQLModel):
    label: str = Field(max_length=NAME_LENGTH)
    action: str = Field(max_length=16)
    from_version: int | None = None
    to_version: int | None = None
    actor: str = Field(max_length=NAME_LENGTH)
    reason: str | None = Field(default=None, sa_type=Text())
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


class AuditEntry(AuditEntryBase, table=True):
    """One label move or retirement; rows are only ever inserted."""

    __tablename__ = "audit_entries"
    __table_args__ = (CheckConstraint(_in("action", AUDIT_ACTIONS), name="action"),)

    id: int | None = Field(default=None, primary_key=True)
    feature_id: int = Field(foreign_key="features.id", index=True)


class AuditEntryPublic(AuditEntryBase):
    feature: str
    at: Timestamp


# --- sync ---------------------------------------------------------------------------------


class SyncRunBase(SQLModel):
    repo: str
    ref: str
    label: str = Field(max_length=NAME_LENGTH)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    from_commit: str | None = Field(default=None, max_length=SHA_LENGTH)
    to_commit: str | None = Field(default=None, max_length=SHA_LENGTH)
    status: str = Field(default="running", max_length=16)
    versions_created: int = 0
    error_count: int = 0


class SyncRun(SyncRunBase, table=True):
    __tablename__ = "sync_runs"
    __table_args__ = (CheckConstraint(_in("status", SYNC_STATUSES), name="status"),)

    id: int | None = Field(default=None, primary_key=True)


class SyncRunPublic(SyncRunBase):
    id: int


class SyncErrorBase(SQLModel):
    commit_sha: str = Field(max_length=SHA_LENGTH)
    feature: str | None = Field(default=None, max_length=NAME_LENGTH)
    file: str
    line: int | None = None
    message: str = Field(sa_type=Text())


class SyncError(SyncErrorBase, table=True):
    __tablename__ = "sync_errors"

    id: int | None = Field(default=None, primary_key=True)
    sync_run_id: int = Field(foreign_key="sync_runs.id", index=True)


class SyncErrorPublic(SyncErrorBase):
    pass


class SyncState(SQLModel, table=True):
    """The last commit synced from a (repo, ref) into a label."""

    __tablename__ = "sync_states"
    __table_args__ = (UniqueConstraint("repo", "ref", "label"),)

    id: int | None = Field(default=None, primary_key=True)
    repo: str
    ref: str
    label: str = Field(max_length=NAME_LENGTH)
    commit_sha: str = Field(max_length=SHA_LENGTH)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())


# --- API tokens ---------------------------------------------------------------------------


class ApiTokenBase(SQLModel):
    name: str = Field(max_length=NAME_LENGTH, unique=True)
    role: str = Field(max_length=16)


class ApiToken(ApiTokenBase, table=True):
    """A bearer token; only the sha256 of the plaintext is stored."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint(_in("role", TOKEN_ROLES), name="role"),)

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=SHA_LENGTH, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class ApiTokenPublic(ApiTokenBase):
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


# --- change marker ------------------------------------------------------------------------


class Generation(SQLModel, table=True):
    """One row whose counter grows with every change a server must see (label moves, tokens).

    API replicas poll it (a single-row primary-key read) and drop their caches when it
    moves, so a rollback made through one replica is served by all of them at once.
    """

    __tablename__ = "generation"

    id: int = Field(default=1, primary_key=True)
    value: int = 0


# --- usage --------------------------------------------------------------------------------

USAGE_OUTCOMES = ("ok", "error", "timeout", "fallback", "degraded", "rejected")
EVENT_ID_LENGTH = 200


class UsageEvent(SQLModel, table=True):
    """One model call reported by a client; ``event_id`` (client-generated) makes retries safe."""

    __tablename__ = "usage_events"
    __table_args__ = (
        CheckConstraint(_in("outcome", USAGE_OUTCOMES), name="outcome"),
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


class UsageRollup(SQLModel, table=True):
    """Usage of one feature version on one model in one UTC hour, summed at ingestion.

    Hours add up to days and windows; a stats query reads a few rows per hour instead of
    every event. One count column per outcome keeps the upsert a plain ``x = x + excluded.x``.
    """

    __tablename__ = "usage_rollups"
    __table_args__ = (UniqueConstraint("feature_id", "hour", "version", "model"),)

    id: int | None = Field(default=None, primary_key=True)
    feature_id: int = Field(foreign_key="features.id")
    hour: datetime = Field(sa_type=UTCDateTime())
    version: int
    model: str = Field(max_length=NAME_LENGTH)
    requests: int = 0
    ok: int = 0
    error: int = 0
    timeout: int = 0
    fallback: int = 0
    degraded: int = 0
    rejected: int = 0
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


class UsageLatency(SQLModel, table=True):
    """A latency histogram per rollup row: how many calls fell in each log-spaced bucket.

    Budget rejections made no call and are left out.
    """

    __tablename__ = "usage_latency"
    __table_args__ = (UniqueConstraint("feature_id", "hour", "version", "model", "bucket"),)

    id: int | None = Field(default=None, primary_key=True)
    feature_id: int = Field(foreign_key="features.id")
    hour: datetime = Field(sa_type=UTCDateTime())
    version: int
    model: str = Field(max_length=NAME_LENGTH)
    bucket: int
    count: int = 0
