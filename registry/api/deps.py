"""Request dependencies: the database session, the serving cache, and bearer-token auth."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlmodel import Session

from registry.api.serving import Principal, Serving
from registry.config import Settings
from registry.store.db import session_scope


def get_serving(request: Request) -> Serving:
    """The replica's serving cache."""
    serving: Serving = request.app.state.serving
    return serving


def get_settings(request: Request) -> Settings:
    """The server's settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """A transaction for one request: committed on success, rolled back on error."""
    with session_scope(request.app.state.engine) as session:
        yield session


def reader(request: Request) -> Principal:
    """Any valid token (401 when missing or unknown: not FastAPI's default 403)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            401, "missing bearer token", headers={"WWW-Authenticate": 'Bearer realm="promptreg"'}
        )
    principal = get_serving(request).principal(token.strip())
    if principal is None:
        raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
    return principal


def admin(principal: Annotated[Principal, Depends(reader)]) -> Principal:
    """A token with the admin role (403 for a reader token)."""
    if principal.role != "admin":
        raise HTTPException(403, f"token {principal.name!r} has role reader; this needs admin")
    return principal


SessionDep = Annotated[Session, Depends(get_session)]
ServingDep = Annotated[Serving, Depends(get_serving)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ReaderDep = Annotated[Principal, Depends(reader)]
AdminDep = Annotated[Principal, Depends(admin)]
