"""Request dependencies: the database session, the serving cache, bearer-token auth, and
what an admin route that moves a label needs (`LabelChangeDep`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session

from registry.api.serving import Principal, Serving
from registry.config import Settings
from registry.store.db import session_scope


async def get_serving(request: Request) -> Serving:
    """The replica's serving cache."""
    serving: Serving = request.app.state.serving
    return serving


async def get_settings(request: Request) -> Settings:
    """The server's settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """A transaction for one request: committed on success, rolled back on error."""
    with session_scope(request.app.state.engine) as session:
        yield session


async def authorize(request: Request, *, role: str = "reader") -> Principal:
    """The caller's token: 401 when missing or unknown (not FastAPI's 403), 403 for a reader
    token where admin is needed. A known token is a dict lookup; only a miss reads the store."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(
            401, "missing bearer token", headers={"WWW-Authenticate": 'Bearer realm="promptreg"'}
        )
    serving: Serving = request.app.state.serving
    found, principal = serving.cached_principal(token)
    if not found:
        principal = await run_in_threadpool(serving.principal, token)
    if principal is None:
        raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
    if role == "admin" and principal.role != "admin":
        raise HTTPException(403, f"token {principal.name!r} has role reader; this needs admin")
    return principal


async def reader(request: Request) -> Principal:
    """Any valid token."""
    return await authorize(request)


async def admin(request: Request) -> Principal:
    """A token with the admin role."""
    return await authorize(request, role="admin")


SessionDep = Annotated[Session, Depends(get_session)]
ServingDep = Annotated[Serving, Depends(get_serving)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ReaderDep = Annotated[Principal, Depends(reader)]
AdminDep = Annotated[Principal, Depends(admin)]


T = TypeVar("T")


def published(request: Request, session: Session) -> None:
    """Commit the move and serve it from this replica at once (others follow the marker)."""
    session.commit()
    request.app.state.serving.check()


class Asked(Protocol):
    """A label change's request body: which label (else the default), and why."""

    @property
    def label(self) -> str | None: ...
    @property
    def reason(self) -> str | None: ...


@dataclass(frozen=True)
class LabelChange:
    """A label move or rollout action asked of the API: by whom, in which transaction."""

    who: Principal
    session: Session
    settings: Settings
    request: Request

    def label(self, asked: str | None) -> str:
        """The label the body names, else the server's default."""
        return asked or self.settings.label

    def published(self, answer: T) -> T:
        """Commit and publish the change (see `published`); `answer`, read before that."""
        published(self.request, self.session)
        return answer

    def apply(self, do: Callable[..., T], name: str, body: Asked, *args: Any, **kwargs: Any) -> T:
        """`do(session, name, *args, **kwargs)` on the body's label, by this admin, and why."""
        return do(
            self.session,
            name,
            *args,
            label=self.label(body.label),
            actor=self.who.name,
            reason=body.reason,
            **kwargs,
        )


async def label_change(
    who: AdminDep, session: SessionDep, settings: SettingsDep, request: Request
) -> LabelChange:
    """An admin's label change (auth first, as when routes took these one by one)."""
    return LabelChange(who, session, settings, request)


LabelChangeDep = Annotated[LabelChange, Depends(label_change)]
