"""The exception tree drawn in registry/errors.py is the tree the code raises."""

from __future__ import annotations

import importlib
import pkgutil
import re

import registry
from registry import errors
from registry.errors import PromptregError, from_status, http_status


def _all_modules() -> None:
    """Import every module of the package, so every subclass is defined."""
    for info in pkgutil.walk_packages(registry.__path__, "registry."):
        # Alembic scripts and `python -m registry` run on import
        if not info.name.startswith(("registry.migrations", "registry.__main__")):
            importlib.import_module(info.name)


def _drawn() -> dict[str, str | None]:
    """Class name -> parent name, from the drawing in the module docstring."""
    assert errors.__doc__ is not None
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in errors.__doc__.splitlines():
        match = re.match(r"^(\s*)(?:[│ ]*[├└]── )?([A-Z]\w+)\s{2,}", line)
        if not match or not line.startswith("    "):
            continue
        name = match.group(2)
        depth = line.index(name)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[name] = stack[-1][1] if stack else None
        stack.append((depth, name))
    return parents


def _defined() -> dict[str, str | None]:
    out: dict[str, str | None] = {"PromptregError": None}
    todo = [PromptregError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            out[sub.__name__] = cls.__name__
            todo.append(sub)
    return out


def test_the_drawn_tree_is_the_tree_of_subclasses() -> None:
    _all_modules()
    assert _drawn() == _defined()


def test_every_error_lives_in_the_errors_module() -> None:
    _all_modules()
    homes = {name: getattr(errors, name, None) for name in _defined()}
    assert [name for name, cls in homes.items() if cls is None] == []


def test_statuses_round_trip_between_the_api_and_its_clients() -> None:
    for cls in (errors.NotFound, errors.Retired, errors.Conflict, errors.BadRequest):
        status = http_status(cls("x"))
        again = from_status(status, "x")
        assert type(again) is cls, (cls, status)
    assert http_status(errors.BadWindow("x")) == 422
    assert http_status(errors.InputError("x")) == 422
    assert http_status(errors.RepoError("x")) == 502
    assert http_status(errors.DatabaseBehind("db", None, "0004")) == 503
    assert from_status(401, "x") is None and from_status(500, "x") is None
