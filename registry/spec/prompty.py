"""Prompty files (`.prompty`): placeholder until the dialect translation lands."""

from __future__ import annotations

from collections.abc import Callable

from registry.errors import Problem
from registry.spec.prompt import PromptFileError, PromptTemplate


def parse_prompty(
    data: bytes, path: str, name: str, *, read: Callable[[str], bytes]
) -> PromptTemplate:
    """Parse a Prompty file into a PromptTemplate."""
    raise PromptFileError([Problem(path, 1, "Prompty files are not supported yet")])
