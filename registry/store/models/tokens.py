"""API tokens: a name, a role and the sha256 of the secret; the dashboard's sign-ins on them."""

from datetime import datetime

from sqlalchemy import CheckConstraint
from sqlmodel import Field, SQLModel

from registry.store.models.base import NAME_LENGTH, SHA_LENGTH, UTCDateTime, check_in, utcnow

TOKEN_ROLES = ("reader", "admin")


# --- API tokens ---------------------------------------------------------------------------


class ApiTokenBase(SQLModel):
    name: str = Field(max_length=NAME_LENGTH, unique=True)
    role: str = Field(max_length=16)


class ApiToken(ApiTokenBase, table=True):
    """A bearer token; only the sha256 of the plaintext is stored."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint(check_in("role", TOKEN_ROLES), name="role"),)

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=SHA_LENGTH, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class ApiTokenPublic(ApiTokenBase):
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


# --- dashboard sign-ins ---------------------------------------------------------------------


class BrowserSession(SQLModel, table=True):
    """A dashboard sign-in with an API token: only the sha256 of its cookie is stored.

    The cookie never carries the token; the session acts as the token's name and role for
    as long as the token is not revoked and the session has not expired or been ended.
    """

    __tablename__ = "browser_sessions"

    id: int | None = Field(default=None, primary_key=True)
    session_hash: str = Field(max_length=SHA_LENGTH, unique=True)
    token_id: int = Field(foreign_key="api_tokens.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
    expires_at: datetime = Field(sa_type=UTCDateTime())
