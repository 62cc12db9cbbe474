"""Settings: every environment variable promptreg reads, documented in one place.

Command-line options win over these; every command falls back to them.

PROMPTREG_DATABASE_URL     SQLAlchemy URL of the database (default: sqlite:///promptreg.db,
                           in the current folder)
PROMPTREG_URL              a promptreg server: label commands work through its API instead
                           of the database (default: unset, database mode)
PROMPTREG_TOKEN            API token for PROMPTREG_URL
PROMPTREG_REPO             repository path or URL that sync and serve read (default: .)
PROMPTREG_REF              branch that sync reads (default: the checked-out branch)
PROMPTREG_LABEL            the label commands read and move, sync moves and serve serves
                           (default: production)
PROMPTREG_WEBHOOK_SECRET   secret of the push webhook's HMAC signature (unset: hook refused)
PROMPTREG_PROMPTS_DIR      prompts folder inside the repository (default: prompts)
PROMPTREG_POLICIES_DIR     policies folder inside the repository (default: policies)
PROMPTREG_EVALS_DIR        eval cases folder inside the repository (default: evals)
PROMPTREG_USAGE_RETENTION  how long raw usage events are kept, like 30d or 12h (default: 30d;
                           rollups are kept)
PROMPTREG_CACHE_DIR        where repository URLs are cloned and `eval` keeps its answer cache
                           (default: the platform's cache folder, e.g.
                           $XDG_CACHE_HOME/promptreg or ~/.cache/promptreg on Linux,
                           ~/Library/Caches/promptreg on macOS)

Read by libraries promptreg runs on:
OPENAI_API_KEY             key for an OpenAI-compatible provider (`openai_call`, `promptreg eval`;
                           any value for a local server)
OPENAI_BASE_URL            `promptreg eval`'s provider when `--provider` is not given (read by
                           the openai SDK; default: OpenAI)
PROMETHEUS_MULTIPROC_DIR   metrics folder shared by `serve --workers N` (default: a temp folder)
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_LABEL = "production"
_SPAN = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def span(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `45s` as a timedelta (ValueError otherwise)."""
    match = _SPAN.match(text)
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration like 30d, 12h or 90m")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _cache_dir() -> Path:
    import platformdirs

    return platformdirs.user_cache_path("promptreg", appauthor=False)


class Settings(BaseSettings):
    """promptreg's configuration, from `PROMPTREG_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="PROMPTREG_", extra="ignore")

    database_url: str = "sqlite:///promptreg.db"
    url: str | None = None
    token: str | None = None
    repo: str = "."
    ref: str | None = None
    label: str = DEFAULT_LABEL
    webhook_secret: str | None = None
    prompts_dir: str = "prompts"
    policies_dir: str = "policies"
    evals_dir: str = "evals"
    cache_dir: Path = Field(default_factory=_cache_dir)
    usage_retention: str = "30d"

    @field_validator("usage_retention")
    @classmethod
    def _retention_is_a_span(cls, value: str) -> str:
        span(value)
        return value


def get_settings() -> Settings:
    """Settings read from the environment now."""
    return Settings()
