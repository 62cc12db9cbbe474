"""Keyword-only queries over the store: ``f(*, session, ...)``, never opening a session.

The CLI, the sync job and the API share these. Writes ``flush`` (so ids exist) but never
commit: the caller's transaction decides. Label moves always write their audit entry here,
so no caller can move a label without leaving a trace.
"""

import hashlib
import re
import secrets
from collections import defaultdict
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, and_, col, func, select

from registry.store.models import (
    AUDIT_ACTIONS,
    SYNC_STATUSES,
    TOKEN_ROLES,
    ApiToken,
    AuditEntry,
    AuditEntryPublic,
    CommitInfo,
    Feature,
    FeatureSummary,
    Generation,
    Label,
    SyncError,
    SyncRun,
    SyncState,
    Version,
    VersionPublic,
    utcnow,
)

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
TOKEN_PREFIX = "prt_"


def _pk(row: Feature | Version | SyncRun) -> int:
    if row.id is None:
        raise ValueError(f"{type(row).__name__} has no id yet: add and flush it first")
    return row.id


# --- features -----------------------------------------------------------------------------


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
    return [
        FeatureSummary(
            name=feature.name,
            label=label,
            version=version.version if version else None,
            pinned=bool(row_label and row_label.pinned),
            updated_at=row_label.updated_at if row_label else None,
            retired=feature.retired,
        )
        for feature, row_label, version in session.exec(stmt).all()
    ]


def set_retired(
    *,
    session: Session,
    feature: Feature,
    retired: bool,
    label: str,
    actor: str,
    reason: str | None = None,
    at: datetime | None = None,
) -> Feature:
    """Retire or un-retire a feature, auditing the change; nothing happens when unchanged."""
    if feature.retired == retired:
        return feature
    at = at or utcnow()
    feature.retired, feature.retired_at = retired, at if retired else None
    session.add(feature)
    resolved = resolve_label(session=session, feature=feature, name=label)
    number = resolved[1].version if resolved else None
    add_audit(
        session=session,
        feature=feature,
        label=label,
        action="retire" if retired else "unretire",
        from_version=number,
        to_version=number,
        actor=actor,
        reason=reason,
        at=at,
    )
    return feature


# --- versions -----------------------------------------------------------------------------


def get_version(*, session: Session, feature: Feature, version: int) -> Version | None:
    """Version number ``version`` of the feature, or None."""
    stmt = select(Version).where(Version.feature_id == _pk(feature), Version.version == version)
    return session.exec(stmt).first()


def latest_version(*, session: Session, feature: Feature) -> Version | None:
    """The feature's newest version, or None before its first."""
    stmt = (
        select(Version)
        .where(Version.feature_id == _pk(feature))
        .order_by(col(Version.version).desc())
        .limit(1)
    )
    return session.exec(stmt).first()


def find_version_by_hash(
    *, session: Session, feature: Feature, content_hash: str
) -> Version | None:
    """The newest version of the feature with this content hash, or None."""
    stmt = (
        select(Version)
        .where(Version.feature_id == _pk(feature), Version.content_hash == content_hash)
        .order_by(col(Version.version).desc())
        .limit(1)
    )
    return session.exec(stmt).first()


def versions_of(*, session: Session, feature: Feature) -> list[VersionPublic]:
    """All versions of the feature, newest first, each with the label names pointing at it."""
    labels: defaultdict[int, list[str]] = defaultdict(list)
    label_rows = session.exec(
        select(Label.version_id, Label.name)
        .where(Label.feature_id == _pk(feature))
        .order_by(col(Label.name))
    ).all()
    for version_id, name in label_rows:
        labels[version_id].append(name)
    stmt = (
        select(Version)
        .where(Version.feature_id == _pk(feature))
        .order_by(col(Version.version).desc())
    )
    return [
        VersionPublic(
            feature=feature.name,
            version=v.version,
            content_hash=v.content_hash,
            prompt_path=v.prompt_path,
            policy_path=v.policy_path,
            commit=v.commit,
            created_at=v.created_at,
            labels=labels[_pk(v)],
        )
        for v in session.exec(stmt).all()
    ]


def add_version(
    *,
    session: Session,
    feature: Feature,
    content_hash: str,
    content: str,
    prompt_path: str,
    policy_path: str,
    commit: CommitInfo,
    at: datetime | None = None,
) -> Version:
    """Store a new version of the feature under the next number (1, 2, 3… per feature)."""
    if not _SHA256_HEX.fullmatch(content_hash):
        raise ValueError(f"content_hash must be 64 lowercase hex digits, got {content_hash!r}")
    newest = session.exec(
        select(func.max(Version.version)).where(Version.feature_id == _pk(feature))
    ).one()
    version = Version(
        feature_id=_pk(feature),
        version=(newest or 0) + 1,
        content_hash=content_hash,
        content=content,
        prompt_path=prompt_path,
        policy_path=policy_path,
        commit_sha=commit.sha,
        commit_author=commit.author,
        commit_email=commit.email,
        committed_at=commit.committed_at,
        commit_message=commit.message,
        created_at=at or utcnow(),
    )
    session.add(version)
    session.flush()
    return version


# --- labels and audit ---------------------------------------------------------------------


def get_label(
    *, session: Session, feature: Feature, name: str, for_update: bool = False
) -> Label | None:
    """The feature's label ``name`` or None; ``for_update`` locks and re-reads the row."""
    # A decision on `pinned` must not race a concurrent rollback: on PostgreSQL the locked
    # re-read waits for it and sees it; on SQLite a write from a stale snapshot fails instead.
    stmt = select(Label).where(Label.feature_id == _pk(feature), Label.name == name)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return session.exec(stmt).first()


def resolve_label(*, session: Session, feature: Feature, name: str) -> tuple[Label, Version] | None:
    """The label and the version it points at, or None when the label was never set."""
    stmt = (
        select(Label, Version)
        .join(Version, col(Version.id) == Label.version_id)
        .where(Label.feature_id == _pk(feature), Label.name == name)
    )
    row = session.exec(stmt).first()
    return (row[0], row[1]) if row else None


def set_label(
    *,
    session: Session,
    feature: Feature,
    name: str,
    version: Version,
    pinned: bool,
    action: str,
    actor: str,
    reason: str | None = None,
    at: datetime | None = None,
) -> Label:
    """Point the label at ``version`` (pinned or not) and audit it; unchanged → no-op."""
    # previous_version_id remembers the version left behind, for "rollback to previous".
    if version.feature_id != _pk(feature):
        raise ValueError(f"version {version.version} does not belong to {feature.name}")
    at = at or utcnow()
    label = get_label(session=session, feature=feature, name=name, for_update=True)
    if label is None:
        label = Label(
            feature_id=_pk(feature),
            name=name,
            version_id=_pk(version),
            pinned=pinned,
            updated_at=at,
        )
        from_version = None
    else:
        if label.version_id == version.id and label.pinned == pinned:
            return label
        old = session.get_one(Version, label.version_id)
        if label.version_id != version.id:
            label.previous_version_id = label.version_id
        label.version_id, label.pinned, label.updated_at = _pk(version), pinned, at
        from_version = old.version
    session.add(label)
    add_audit(
        session=session,
        feature=feature,
        label=name,
        action=action,
        from_version=from_version,
        to_version=version.version,
        actor=actor,
        reason=reason,
        at=at,
    )
    return label


def bump_generation(*, session: Session) -> None:
    """Tell every API replica that what it serves may have changed (commits with the caller)."""
    session.execute(
        update(Generation).where(col(Generation.id) == 1).values(value=Generation.value + 1)
    )


def get_generation(*, session: Session) -> int:
    """The change marker's current value."""
    value = session.exec(select(Generation.value).where(Generation.id == 1)).first()
    return int(value or 0)


def add_audit(
    *,
    session: Session,
    feature: Feature,
    label: str,
    action: str,
    from_version: int | None,
    to_version: int | None,
    actor: str,
    reason: str | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry to the audit log."""
    if action not in AUDIT_ACTIONS:
        raise ValueError(f"audit action must be one of {', '.join(AUDIT_ACTIONS)}, got {action!r}")
    entry = AuditEntry(
        feature_id=_pk(feature),
        label=label,
        action=action,
        from_version=from_version,
        to_version=to_version,
        actor=actor,
        reason=reason,
        at=at or utcnow(),
    )
    session.add(entry)
    session.flush()
    bump_generation(session=session)
    return entry


def list_audit(
    *,
    session: Session,
    feature: Feature | None = None,
    label: str | None = None,
    limit: int = 100,
) -> list[AuditEntryPublic]:
    """Audit entries, newest first, optionally for one feature and/or one label."""
    stmt = select(AuditEntry, Feature.name).join(Feature, col(Feature.id) == AuditEntry.feature_id)
    if feature is not None:
        stmt = stmt.where(AuditEntry.feature_id == _pk(feature))
    if label is not None:
        stmt = stmt.where(AuditEntry.label == label)
    stmt = stmt.order_by(col(AuditEntry.id).desc()).limit(limit)
    return [
        AuditEntryPublic.model_validate(entry, update={"feature": feature_name})
        for entry, feature_name in session.exec(stmt).all()
    ]


# --- sync state and runs ------------------------------------------------------------------


def get_sync_state(*, session: Session, repo: str, ref: str, label: str) -> SyncState | None:
    """Where the last sync of (repo, ref) into ``label`` stopped, or None before the first."""
    stmt = select(SyncState).where(
        SyncState.repo == repo, SyncState.ref == ref, SyncState.label == label
    )
    return session.exec(stmt).first()


def set_sync_state(
    *,
    session: Session,
    repo: str,
    ref: str,
    label: str,
    commit_sha: str,
    at: datetime | None = None,
) -> SyncState:
    """Record ``commit_sha`` as the last commit synced from (repo, ref) into ``label``."""
    state = get_sync_state(session=session, repo=repo, ref=ref, label=label)
    if state is None:
        state = SyncState(repo=repo, ref=ref, label=label, commit_sha=commit_sha)
    state.commit_sha, state.updated_at = commit_sha, at or utcnow()
    session.add(state)
    session.flush()
    return state


def start_sync_run(
    *,
    session: Session,
    repo: str,
    ref: str,
    label: str,
    from_commit: str | None = None,
    at: datetime | None = None,
) -> SyncRun:
    """Record the start of a sync run."""
    run = SyncRun(
        repo=repo, ref=ref, label=label, from_commit=from_commit, started_at=at or utcnow()
    )
    session.add(run)
    session.flush()
    return run


def add_sync_error(
    *,
    session: Session,
    run: SyncRun,
    commit_sha: str,
    file: str,
    message: str,
    feature: str | None = None,
    line: int | None = None,
) -> SyncError:
    """Record one validation error found by a sync run, and count it on the run."""
    error = SyncError(
        sync_run_id=_pk(run),
        commit_sha=commit_sha,
        feature=feature,
        file=file,
        line=line,
        message=message,
    )
    run.error_count += 1
    session.add_all([error, run])
    session.flush()
    return error


def finish_sync_run(
    *,
    session: Session,
    run: SyncRun,
    status: str,
    to_commit: str | None,
    versions_created: int,
    at: datetime | None = None,
) -> SyncRun:
    """Record how a sync run ended."""
    if status not in SYNC_STATUSES:
        raise ValueError(f"sync status must be one of {', '.join(SYNC_STATUSES)}, got {status!r}")
    run.status, run.to_commit, run.versions_created = status, to_commit, versions_created
    run.finished_at = at or utcnow()
    session.add(run)
    session.flush()
    return run


def sync_errors_of(*, session: Session, run: SyncRun) -> list[SyncError]:
    """The errors a sync run recorded, in the order found."""
    stmt = select(SyncError).where(SyncError.sync_run_id == _pk(run)).order_by(col(SyncError.id))
    return list(session.exec(stmt).all())


def list_sync_runs(*, session: Session, limit: int = 20) -> list[SyncRun]:
    """The most recent sync runs, newest first."""
    stmt = select(SyncRun).order_by(col(SyncRun.id).desc()).limit(limit)
    return list(session.exec(stmt).all())


# --- API tokens ---------------------------------------------------------------------------


def hash_token(plaintext: str) -> str:
    """The stored form of a token: lowercase hex sha256 of its plaintext."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def create_token(
    *, session: Session, name: str, role: str, at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Create a token; the plaintext is returned here once and never stored."""
    if role not in TOKEN_ROLES:
        raise ValueError(f"token role must be one of {', '.join(TOKEN_ROLES)}, got {role!r}")
    if session.exec(select(ApiToken).where(ApiToken.name == name)).first() is not None:
        raise ValueError(f"a token named {name!r} already exists")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name, role=role, token_hash=hash_token(plaintext), created_at=at or utcnow()
    )
    session.add(token)
    session.flush()
    bump_generation(session=session)
    return token, plaintext


def get_token(*, session: Session, plaintext: str) -> ApiToken | None:
    """The active (not revoked) token with this plaintext, or None. Read-only."""
    stmt = select(ApiToken).where(
        ApiToken.token_hash == hash_token(plaintext), col(ApiToken.revoked_at).is_(None)
    )
    return session.exec(stmt).first()


def get_token_by_name(*, session: Session, name: str) -> ApiToken | None:
    """The token called ``name`` (revoked or not), or None."""
    return session.exec(select(ApiToken).where(ApiToken.name == name)).first()


def touch_token(*, session: Session, token: ApiToken, at: datetime | None = None) -> None:
    """Record that the token was just used."""
    token.last_used_at = at or utcnow()
    session.add(token)
    session.flush()


def revoke_token(*, session: Session, name: str, at: datetime | None = None) -> ApiToken | None:
    """Revoke the token called ``name`` (revoking twice keeps the first time); None if unknown."""
    token = session.exec(select(ApiToken).where(ApiToken.name == name)).first()
    if token is not None and token.revoked_at is None:
        token.revoked_at = at or utcnow()
        session.add(token)
        session.flush()
        bump_generation(session=session)
    return token


def list_tokens(*, session: Session, include_revoked: bool = True) -> list[ApiToken]:
    """Tokens by name (hashes included: convert to ApiTokenPublic before showing them)."""
    stmt = select(ApiToken).order_by(col(ApiToken.name))
    if not include_revoked:
        stmt = stmt.where(col(ApiToken.revoked_at).is_(None))
    return list(session.exec(stmt).all())
