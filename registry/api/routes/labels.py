"""Moving labels: rollback, promote; and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlmodel import Session

from registry import labels
from registry.api.deps import AdminDep, ReaderDep, SessionDep, SettingsDep
from registry.api.schemas import (
    LABEL_PATTERN,
    NO_NUL,
    AuditList,
    LabelMove,
    PromoteIn,
    RollbackIn,
)

router = APIRouter(prefix="/v1", tags=["labels"])


@router.post("/features/{name}/rollback", response_model=LabelMove)
def rollback(
    name: str,
    body: RollbackIn,
    who: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
) -> LabelMove:
    """Move the label back (previous target or `to_version`) and pin it."""
    move = labels.rollback(
        session,
        name,
        label=body.label or settings.label,
        to_version=body.to_version,
        actor=who.name,
        reason=body.reason,
    )
    published(request, session)
    return move


@router.post("/features/{name}/promote", response_model=LabelMove)
def promote(
    name: str,
    body: PromoteIn,
    who: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
) -> LabelMove:
    """Move the label to the newest version (or `version`) and unpin it."""
    move = labels.promote(
        session,
        name,
        label=body.label or settings.label,
        version=body.version,
        actor=who.name,
        reason=body.reason,
    )
    published(request, session)
    return move


def published(request: Request, session: Session) -> None:
    """Commit the move and serve it from this replica at once (others follow the marker)."""
    session.commit()
    request.app.state.serving.check()


@router.get("/audit", response_model=AuditList)
def audit(
    _: ReaderDep,
    session: SessionDep,
    feature: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    label: Annotated[str | None, Query(max_length=200, pattern=LABEL_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditList:
    """Label moves, newest first."""
    rows = labels.audit(session, feature=feature, label=label, limit=limit)
    return AuditList(data=rows, count=len(rows))
