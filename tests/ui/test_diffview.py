"""Diff lines for the diff page: classified, and paired for the side-by-side view."""

from registry.diff import unified
from registry.ui.diffview import Line, Row, lines, side_by_side

OLD = "system:\nBe brief.\nuser:\n{{ q }}\n"
NEW = "system:\nBe brief and kind.\nAsk first.\nuser:\n{{ q }}\n"


def test_lines_are_classified() -> None:
    kinds = [line.kind for line in lines(unified(OLD, NEW, "a", "b"))]
    assert kinds == ["file", "file", "hunk", "same", "del", "add", "add", "same", "same"]


def test_removals_face_the_additions_after_them() -> None:
    rows = side_by_side(unified(OLD, NEW, "a", "b"))
    assert rows[1] == Row(Line("same", "system:"), Line("same", "system:"))
    assert rows[2] == Row(Line("del", "Be brief."), Line("add", "Be brief and kind."))
    assert rows[3] == Row(None, Line("add", "Ask first."))
    assert rows[0].old is not None and rows[0].old.kind == "hunk"
    assert side_by_side("") == []
