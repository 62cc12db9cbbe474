"""API tokens: created once in plaintext, stored as a sha256, revoked, never deleted."""

import hashlib
import secrets
from datetime import datetime

from sqlmodel import Session, col, select

from registry.store.crud.labels import bump_generation
from registry.store.models import TOKEN_ROLES, ApiToken, utcnow

TOKEN_PREFIX = "prt_"


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
