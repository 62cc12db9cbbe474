"""Unified diffs as the diff page lays them out: line by line, or side by side.

The diff text comes from `registry.diff` (what `promptreg diff` and the API show); this
module only classifies its lines and pairs removals with additions for the two-column
view. Lines stay text: the template escapes them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Line:
    """One line of a unified diff: `kind` is add, del, hunk, file or same."""

    kind: str
    text: str


@dataclass(frozen=True)
class Row:
    """One row of the side-by-side view: the old line and the new one (None: no line)."""

    old: Line | None
    new: Line | None


def lines(diff: str) -> list[Line]:
    """The diff's lines, each with its kind."""
    out = []
    for text in diff.splitlines():
        if text.startswith(("---", "+++")):
            kind = "file"
        elif text.startswith("@@"):
            kind = "hunk"
        elif text.startswith("+"):
            kind = "add"
        elif text.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        out.append(Line(kind, text))
    return out


def side_by_side(diff: str) -> list[Row]:
    """Old and new next to each other: a run of removals faces the additions after it."""
    rows: list[Row] = []
    removed: list[Line] = []
    added: list[Line] = []

    def flush() -> None:
        for index in range(max(len(removed), len(added))):
            rows.append(
                Row(
                    removed[index] if index < len(removed) else None,
                    added[index] if index < len(added) else None,
                )
            )
        removed.clear()
        added.clear()

    for line in lines(diff):
        if line.kind == "file":
            continue
        if line.kind == "del":
            if added:
                flush()
            removed.append(Line("del", line.text[1:]))
        elif line.kind == "add":
            added.append(Line("add", line.text[1:]))
        else:
            flush()
            if line.kind == "hunk":
                rows.append(Row(line, line))
            else:
                same = Line("same", line.text[1:])
                rows.append(Row(same, same))
    flush()
    return rows
