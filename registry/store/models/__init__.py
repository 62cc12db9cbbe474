"""The database schema, one module per family of tables; every name is re-exported here.

Each entity is a family: ``XBase`` (shared fields) -> ``X(table=True)`` -> ``XPublic`` (what
the API and CLI show). ``migrations/`` must create exactly these tables; a test compares them.
Timestamps are timezone-aware UTC on every backend (see ``UTCDateTime``).
"""

from registry.store.models.base import (
    MAX_VERSION,
    NAME_LENGTH,
    SHA_LENGTH,
    Timestamp,
    UTCDateTime,
    pk,
    utcnow,
)
from registry.store.models.features import (
    AUDIT_ACTIONS,
    AuditEntry,
    AuditEntryPublic,
    CommitInfo,
    Feature,
    FeaturePublic,
    FeatureSummary,
    Generation,
    Label,
    LabelPublic,
    Version,
    VersionPublic,
)
from registry.store.models.rollouts import (
    ACTIVE_STATES,
    ROLLOUT_STATES,
    Rollout,
    RolloutPublic,
)
from registry.store.models.sync import (
    SYNC_STATUSES,
    SyncError,
    SyncErrorPublic,
    SyncRun,
    SyncRunPublic,
    SyncState,
)
from registry.store.models.tokens import TOKEN_ROLES, ApiToken, ApiTokenPublic, BrowserSession
from registry.store.models.usage import (
    EVENT_ID_LENGTH,
    MINUTE_SUMS,
    ROLLUP_SUMS,
    USAGE_OUTCOMES,
    UsageEvent,
    UsageLatency,
    UsageMinute,
    UsageMinuteLatency,
    UsageRollup,
)

__all__ = [
    "ACTIVE_STATES",
    "AUDIT_ACTIONS",
    "EVENT_ID_LENGTH",
    "MAX_VERSION",
    "MINUTE_SUMS",
    "NAME_LENGTH",
    "ROLLOUT_STATES",
    "ROLLUP_SUMS",
    "SHA_LENGTH",
    "SYNC_STATUSES",
    "TOKEN_ROLES",
    "USAGE_OUTCOMES",
    "ApiToken",
    "ApiTokenPublic",
    "AuditEntry",
    "AuditEntryPublic",
    "BrowserSession",
    "CommitInfo",
    "Feature",
    "FeaturePublic",
    "FeatureSummary",
    "Generation",
    "Label",
    "LabelPublic",
    "Rollout",
    "RolloutPublic",
    "SyncError",
    "SyncErrorPublic",
    "SyncRun",
    "SyncRunPublic",
    "SyncState",
    "Timestamp",
    "UTCDateTime",
    "UsageEvent",
    "UsageLatency",
    "UsageMinute",
    "UsageMinuteLatency",
    "UsageRollup",
    "Version",
    "VersionPublic",
    "pk",
    "utcnow",
]
