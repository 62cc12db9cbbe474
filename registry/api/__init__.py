"""The HTTP API (SPEC §4): `create_app()` builds it; `promptreg serve` runs it."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Lazy: the CLI's database mode reads `registry.api.schemas` without loading FastAPI.
    if name == "create_app":
        from registry.api.app import create_app

        return create_app
    raise AttributeError(f"module 'registry.api' has no attribute {name!r}")
