"""Sync runs, the errors they recorded, and where each (repo, ref, label) sync stopped."""

from datetime import datetime

from sqlalchemy import CheckConstraint, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from registry.store.models.base import NAME_LENGTH, SHA_LENGTH, UTCDateTime, check_in, utcnow

SYNC_STATUSES = ("running", "ok", "errors", "failed")


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
    __table_args__ = (CheckConstraint(check_in("status", SYNC_STATUSES), name="status"),)

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
