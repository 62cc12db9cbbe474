"""YAML loading that remembers where every key and item came from.

Policies and frontmatter arrive through pull requests, so every error must name
`file:line`. ruamel.yaml's round-trip loader keeps positions; this module turns its
tree into plain Python data plus a map from key paths to 1-based line numbers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from registry.errors import Problem

Loc = tuple[str | int, ...]


@dataclass
class Located:
    """Plain data loaded from YAML, with the line of each key path."""

    data: Any
    file: str
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int | None:
        """The line of `loc`, or of its nearest ancestor that has one."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return None


class YamlProblem(Exception):
    """The text is not valid YAML; carries the problem with its position."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


def _plain(node: Any, loc: Loc, lines: dict[Loc, int], offset: int) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            child = (*loc, str(key))
            with contextlib.suppress(KeyError, TypeError, AttributeError):
                lines[child] = node.lc.key(key)[0] + 1 + offset
            out[str(key) if not isinstance(key, int | float | bool) else key] = _plain(
                value, child, lines, offset
            )
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for i, value in enumerate(node):
            child = (*loc, i)
            with contextlib.suppress(KeyError, TypeError, AttributeError):
                lines[child] = node.lc.item(i)[0] + 1 + offset
            items.append(_plain(value, child, lines, offset))
        return items
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, dt.datetime | dt.date):
        return node.isoformat()
    return node


def load_yaml(text: str, file: str, *, line_offset: int = 0) -> Located:
    """Parse one YAML document; `line_offset` shifts lines (for frontmatter)."""
    # Imported here: the client library rebuilds versions from JSON and never reads YAML.
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt", pure=True)
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 + line_offset if mark is not None else None
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise YamlProblem(Problem(file, line, f"invalid YAML: {what}")) from None
    except YAMLError as exc:
        raise YamlProblem(Problem(file, None, f"invalid YAML: {exc}")) from None
    lines: dict[Loc, int] = {(): 1 + line_offset}
    return Located(_plain(tree, (), lines, line_offset), file, lines)
