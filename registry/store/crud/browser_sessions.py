"""Dashboard sign-ins: opened with a live API token, found by cookie, ended, expired.

Only the sha256 of a cookie is stored, so reading the table does not sign anyone in; a
session acts for its token only while the token is not revoked.
"""

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Session, col, select

from registry.store.crud.tokens import hash_token
from registry.store.models import ApiToken, BrowserSession, utcnow
from registry.store.models import pk as _pk


def open_browser_session(
    *, session: Session, token: ApiToken, lifetime: timedelta, at: datetime | None = None
) -> str:
    """Start a sign-in for `token`; the cookie value is returned here once, never stored."""
    at = at or utcnow()
    plaintext = secrets.token_urlsafe(32)
    session.add(
        BrowserSession(
            session_hash=hash_token(plaintext),
            token_id=_pk(token),
            created_at=at,
            expires_at=at + lifetime,
        )
    )
    session.flush()
    return plaintext


def browser_session_token(
    *, session: Session, plaintext: str, at: datetime | None = None
) -> ApiToken | None:
    """The token a cookie's session acts for; None when unknown, expired, or revoked."""
    stmt = (
        select(ApiToken)
        .join(BrowserSession, col(BrowserSession.token_id) == ApiToken.id)
        .where(BrowserSession.session_hash == hash_token(plaintext))
        .where(col(BrowserSession.expires_at) > (at or utcnow()))
        .where(col(ApiToken.revoked_at).is_(None))
    )
    return session.exec(stmt).first()


def end_browser_session(*, session: Session, plaintext: str) -> None:
    """Sign a cookie's session out (nothing happens for an unknown one)."""
    session.execute(
        delete(BrowserSession).where(col(BrowserSession.session_hash) == hash_token(plaintext))
    )


def drop_expired_browser_sessions(*, session: Session, at: datetime | None = None) -> int:
    """Delete sessions past their expiry; how many were deleted."""
    result = session.execute(
        delete(BrowserSession).where(col(BrowserSession.expires_at) <= (at or utcnow()))
    )
    return int(getattr(result, "rowcount", 0) or 0)
