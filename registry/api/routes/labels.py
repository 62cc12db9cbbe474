"""Moving labels: rollback, promote; and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from registry import labels
from registry.api.deps import LabelChangeDep, ReaderDep, SessionDep
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
def rollback(name: str, body: RollbackIn, change: LabelChangeDep) -> LabelMove:
    """Move the label back (previous target or `to_version`) and pin it."""
    return change.published(change.apply(labels.rollback, name, body, to_version=body.to_version))


@router.post("/features/{name}/promote", response_model=LabelMove)
def promote(name: str, body: PromoteIn, change: LabelChangeDep) -> LabelMove:
    """Move the label to the newest version (or `version`) and unpin it."""
    return change.published(change.apply(labels.promote, name, body, version=body.version))


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
