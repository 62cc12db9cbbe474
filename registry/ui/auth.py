"""Signing in to the dashboard, the session it opens, CSRF and roles.

Sign-in takes an API token once, checks it as the API does, and opens a server-side
session: the browser keeps only a random cookie (`HttpOnly`, `SameSite=Strict`, `Secure`
under HTTPS, path /ui), the database only its sha256 (`browser_sessions`). The token is
never stored, echoed, put in a URL or logged. A session acts as its token's name and role
and stops working the moment the token is revoked, it expires, or its owner signs out.

Every POST is checked here before anything else runs: its origin must be this server's,
it needs a live session, and its form must carry the session's CSRF token (an HMAC of the
cookie, so it needs no storage); the sign-in form itself carries a nonce matched with a
short-lived cookie. Roles are checked on the server for every action: a reader's page has
no buttons, and a reader's POST is refused all the same.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine
from sqlmodel import Session

from registry.store import crud
from registry.store.db import session_scope
from registry.ui.views import PREFIX, PageRoute, SignInRequired, page, see_other

SESSION_COOKIE = "promptreg_session"
SIGNIN_COOKIE = "promptreg_signin"
SESSION_LIFETIME = timedelta(hours=12)
SIGNIN_LIFETIME = timedelta(hours=1)
MAX_FORM_BYTES = 16_384
MAX_COOKIE = 100  # ours are 43 characters; anything longer is not ours

router = APIRouter(prefix=PREFIX, route_class=PageRoute, include_in_schema=False)


@dataclass(frozen=True)
class Visitor:
    """Who is signed in: the token's name and role, and the session's CSRF token."""

    name: str
    role: str
    csrf: str

    @property
    def admin(self) -> bool:
        """Whether this visitor may move labels and act on rollouts."""
        return self.role == "admin"


@dataclass(frozen=True)
class Posted:
    """A form posted by a signed-in visitor, its origin and CSRF token checked."""

    visitor: Visitor
    fields: dict[str, str]


def csrf_for(cookie: str) -> str:
    """The CSRF token of the session behind `cookie`."""
    return hmac.new(cookie.encode(), b"promptreg dashboard csrf", hashlib.sha256).hexdigest()


def _visitor(engine: Engine, cookie: str | None) -> Visitor | None:
    if not cookie or len(cookie) > MAX_COOKIE:
        return None
    with Session(engine) as session:
        token = crud.browser_session_token(session=session, plaintext=cookie)
    return None if token is None else Visitor(token.name, token.role, csrf_for(cookie))


def signed_in(request: Request) -> Visitor:
    """A page's visitor; without a live session the page answers with the sign-in form."""
    visitor = _visitor(request.app.state.engine, request.cookies.get(SESSION_COOKIE))
    if visitor is None:
        raise SignInRequired
    request.state.visitor = visitor
    return visitor


def signed_in_admin(request: Request) -> Visitor:
    """A page only admins may open (the confirmation of an action)."""
    visitor = signed_in(request)
    _require_admin(visitor)
    return visitor


def _require_admin(visitor: Visitor) -> None:
    if not visitor.admin:
        raise HTTPException(
            403, f"token {visitor.name!r} has role {visitor.role}; this needs an admin token"
        )


def same_origin(request: Request) -> None:
    """Refuse a POST that a page of another site made (403)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise HTTPException(403, "refused: this form was posted from another site")
    origin = request.headers.get("origin")
    # The host, not the scheme: behind a TLS proxy this server may see plain HTTP.
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, "refused: this form was posted from another origin")


async def form_fields(request: Request) -> dict[str, str]:
    """The fields of a URL-encoded form (the only kind the dashboard's forms send)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise HTTPException(415, "the dashboard's forms are sent URL-encoded")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, f"a form of more than {MAX_FORM_BYTES} bytes")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(422, "the form could not be read") from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        fields.setdefault(key, value)
    return fields


async def posted(request: Request) -> Posted:
    """A state-changing form: same origin, a live session, the session's CSRF token."""
    same_origin(request)
    fields = await form_fields(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    visitor = await run_in_threadpool(_visitor, request.app.state.engine, cookie)
    if visitor is None:
        raise HTTPException(403, "refused: sign in first (no live session sent this form)")
    if not hmac.compare_digest(fields.get("csrf", "").encode(), visitor.csrf.encode()):
        raise HTTPException(403, "refused: the form's CSRF token is missing or wrong")
    request.state.visitor = visitor
    return Posted(visitor, fields)


async def posted_by_admin(request: Request) -> Posted:
    """A form that moves a label or acts on a rollout: `posted`, by an admin token."""
    form = await posted(request)
    _require_admin(form.visitor)
    return form


VisitorDep = Annotated[Visitor, Depends(signed_in)]
AdminVisitorDep = Annotated[Visitor, Depends(signed_in_admin)]
PostedDep = Annotated[Posted, Depends(posted)]
AdminPostedDep = Annotated[Posted, Depends(posted_by_admin)]


# -- signing in and out ------------------------------------------------------------------------


def _next(target: str | None) -> str:
    """Where to go after signing in: a dashboard path, never another site."""
    if not target or not target.startswith(PREFIX) or target.startswith(("//", "/\\")):
        return PREFIX
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return PREFIX
    return target


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _sign_in_page(
    request: Request, target: str, *, error: str | None = None, status: int = 200
) -> Response:
    nonce = secrets.token_urlsafe(24)
    response = page(
        request,
        "login.html",
        {"title": "Sign in", "nonce": nonce, "next": target, "error": error},
        status=status,
    )
    response.set_cookie(
        SIGNIN_COOKIE,
        nonce,
        max_age=int(SIGNIN_LIFETIME.total_seconds()),
        path=f"{PREFIX}/login",
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )
    return response


@router.get("/login")
def sign_in_form(request: Request, next: str | None = None) -> Response:
    """The sign-in form (or straight on, when already signed in)."""
    target = _next(next)
    if _visitor(request.app.state.engine, request.cookies.get(SESSION_COOKIE)) is not None:
        return see_other(target)
    return _sign_in_page(request, target)


def _open_session(engine: Engine, plaintext: str) -> str | None:
    with session_scope(engine, write=True) as session:
        token = crud.get_token(session=session, plaintext=plaintext)
        if token is None:
            return None
        crud.drop_expired_browser_sessions(session=session)
        return crud.open_browser_session(session=session, token=token, lifetime=SESSION_LIFETIME)


@router.post("/login")
async def sign_in(request: Request) -> Response:
    """Check the token, open a session, set its cookie; the token goes no further."""
    same_origin(request)
    fields = await form_fields(request)
    target = _next(fields.get("next"))
    nonce = request.cookies.get(SIGNIN_COOKIE, "")
    if not nonce or not hmac.compare_digest(fields.get("csrf", "").encode(), nonce.encode()):
        raise HTTPException(403, "refused: the sign-in form is stale or was not ours; reload it")
    plaintext = fields.get("token", "").strip()
    engine: Engine = request.app.state.engine
    cookie = await run_in_threadpool(_open_session, engine, plaintext) if plaintext else None
    if cookie is None:
        return _sign_in_page(
            request, target, error="That token is unknown or was revoked.", status=401
        )
    old = request.cookies.get(SESSION_COOKIE)
    if old and len(old) <= MAX_COOKIE:
        await run_in_threadpool(_end_session, engine, old)
    response = see_other(target)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path=PREFIX,
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )
    response.delete_cookie(
        SIGNIN_COOKIE,
        path=f"{PREFIX}/login",
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )
    return response


def _end_session(engine: Engine, cookie: str) -> None:
    with session_scope(engine) as session:
        crud.end_browser_session(session=session, plaintext=cookie)


@router.post("/logout")
async def sign_out(request: Request, form: PostedDep) -> Response:
    """End the session here and in the database; the cookie is cleared."""
    await run_in_threadpool(
        _end_session, request.app.state.engine, request.cookies.get(SESSION_COOKIE, "")
    )
    response = see_other(f"{PREFIX}/login")
    response.delete_cookie(
        SESSION_COOKIE, path=PREFIX, secure=_secure(request), httponly=True, samesite="strict"
    )
    return response
