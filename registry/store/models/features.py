"""The registry's own rows: features, their versions, the labels on them, the audit log.

``Generation`` is the change marker every replica watches.
"""

from datetime import datetime

from pydantic import Field as PydanticField
from sqlalchemy import CheckConstraint, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from registry.store.models.base import (
    NAME_LENGTH,
    SHA_LENGTH,
    Timestamp,
    UTCDateTime,
    check_in,
    utcnow,
)

AUDIT_ACTIONS = (
    "sync",
    "rollback",
    "promote",
    "retire",
    "unretire",
    "rollout_start",
    "rollout_pause",
    "rollout_resume",
    "rollout_abort",
)


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
    # While a rollout runs: the candidate's share of requests (absent otherwise).
    rollout_percent: int | None = PydanticField(default=None, exclude_if=lambda v: v is None)


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
    __table_args__ = (CheckConstraint(check_in("action", AUDIT_ACTIONS), name="action"),)

    id: int | None = Field(default=None, primary_key=True)
    feature_id: int = Field(foreign_key="features.id", index=True)


class AuditEntryPublic(AuditEntryBase):
    feature: str
    at: Timestamp


# --- change marker ------------------------------------------------------------------------


class Generation(SQLModel, table=True):
    """One row whose counter grows with every change a server must see (label moves, tokens).

    API replicas poll it (a single-row primary-key read) and drop their caches when it
    moves, so a rollback made through one replica is served by all of them at once.
    """

    __tablename__ = "generation"

    id: int = Field(default=1, primary_key=True)
    value: int = 0
