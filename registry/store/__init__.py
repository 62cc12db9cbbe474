"""The storage layer: SQLModel tables (models), engines/migrations/locks (db), queries (crud)."""

from registry.errors import DatabaseAhead, DatabaseBehind, MigrationsNotFound, SyncLockTimeout
from registry.store.db import (
    current_revision,
    ensure_database,
    head_revision,
    make_engine,
    migrate,
    session_scope,
    sync_lock,
)
from registry.store.models import (
    ApiToken,
    AuditEntry,
    CommitInfo,
    Feature,
    Label,
    SyncError,
    SyncRun,
    SyncState,
    Version,
)

__all__ = [
    "ApiToken",
    "AuditEntry",
    "CommitInfo",
    "Feature",
    "Label",
    "SyncError",
    "SyncRun",
    "SyncState",
    "Version",
    "DatabaseAhead",
    "DatabaseBehind",
    "MigrationsNotFound",
    "SyncLockTimeout",
    "current_revision",
    "ensure_database",
    "head_revision",
    "make_engine",
    "migrate",
    "session_scope",
    "sync_lock",
]
