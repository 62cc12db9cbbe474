"""Sync runs, their errors, and where each (repo, ref, label) sync stopped."""

from datetime import datetime

from sqlmodel import Session, col, or_, select

from registry.store.models import SYNC_STATUSES, SyncError, SyncRun, SyncState, utcnow
from registry.store.models import pk as _pk


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


def last_applying_run(
    *, session: Session, repo: str, ref: str, label: str, before: int
) -> SyncRun | None:
    """The newest run of (repo, ref, label) before run id ``before`` that applied commits."""
    # A run with nothing new re-checks nothing and records no errors: the features broken
    # before it are still broken, so look past it.
    stmt = (
        select(SyncRun)
        .where(SyncRun.repo == repo, SyncRun.ref == ref, SyncRun.label == label)
        .where(col(SyncRun.id) != before)
        .where(
            or_(
                col(SyncRun.from_commit).is_(None),
                col(SyncRun.from_commit) != col(SyncRun.to_commit),
            )
        )
        .order_by(col(SyncRun.id).desc())
        .limit(1)
    )
    return session.exec(stmt).first()


def features_with_errors(*, session: Session, run: SyncRun) -> set[str]:
    """The features a sync run recorded errors for."""
    names = session.exec(select(SyncError.feature).where(SyncError.sync_run_id == _pk(run))).all()
    return {n for n in names if n}
