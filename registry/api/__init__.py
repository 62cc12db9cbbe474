"""The HTTP API (SPEC §4): `create_app()` builds it; `promptreg serve` runs it."""

from registry.api.app import create_app

__all__ = ["create_app"]
