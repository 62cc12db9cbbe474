"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from registry.api.deps import ServingDep
from registry.api.schemas import ErrorOut, HealthOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut, responses={503: {"model": ErrorOut}})
def healthz(serving: ServingDep) -> Any:
    """The process is up; `database` says whether the database answers."""
    try:
        generation = serving.check()
    except Exception as exc:
        return JSONResponse({"detail": f"database not ready: {exc.__class__.__name__}"}, 503)
    return {"status": "ok", "database": "ok", "generation": generation}
