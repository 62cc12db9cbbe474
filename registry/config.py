"""Settings: every environment variable promptreg reads, documented in one place.

PROMPTREG_DATABASE_URL     SQLAlchemy URL of the database (default: sqlite:///promptreg.db)
PROMPTREG_URL              a promptreg server, for the remote CLI (default: database mode)
PROMPTREG_TOKEN            API token for PROMPTREG_URL
PROMPTREG_REPO             repository path or URL that sync and serve read (default: .)
PROMPTREG_REF              branch that sync reads (default: the checked-out branch)
PROMPTREG_LABEL            label that sync moves (default: production)
PROMPTREG_WEBHOOK_SECRET   secret of the push webhook's HMAC signature (unset: hook refused)
PROMPTREG_PROMPTS_DIR      prompts folder inside the repository (default: prompts)
PROMPTREG_POLICIES_DIR     policies folder inside the repository (default: policies)
PROMPTREG_EVALS_DIR        eval cases folder inside the repository (default: evals)
PROMPTREG_CACHE_DIR        where repository URLs are cloned and `eval` keeps its answer cache
                           (default: ~/.cache/promptreg)
OPENAI_API_KEY             key `promptreg eval` sends to its provider (any value for a local
                           server; needed for OpenAI itself)
OPENAI_BASE_URL            `promptreg eval`'s provider when `--provider` is not given (read by
                           the openai SDK; default: OpenAI)
PROMETHEUS_MULTIPROC_DIR   metrics folder shared by `serve --workers N` (default: a temp folder)
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """promptreg's configuration, from `PROMPTREG_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="PROMPTREG_", extra="ignore")

    database_url: str = "sqlite:///promptreg.db"
    url: str | None = None
    token: str | None = None
    repo: str = "."
    ref: str | None = None
    label: str = "production"
    webhook_secret: str | None = None
    prompts_dir: str = "prompts"
    policies_dir: str = "policies"
    evals_dir: str = "evals"
    cache_dir: Path = Path.home() / ".cache" / "promptreg"


def get_settings() -> Settings:
    """Settings read from the environment now."""
    return Settings()
