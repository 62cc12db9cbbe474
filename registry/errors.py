"""The exception tree of promptreg.

    PromptregError                  base: every error a user may see, with a clear message
    ├── SpecError                   one or more problems in prompt/policy files (file:line)
    ├── RenderError                 a render failed: sandbox violation, limit, template error
    │   └── InputError              a variable is missing or fails its declared type
    ├── CatalogError                token counting or pricing for a model is impossible
    ├── NotFound                    unknown feature, version, label or token
    ├── Retired                     the feature's policy was deleted; its history remains
    ├── Conflict                    a label move that cannot be made (no earlier target …)
    ├── DatabaseError               the database is missing, behind its migrations, locked
    └── MissingExtra                a command or adapter needs an extra that is not installed

Command-line and HTTP layers translate these into one-line messages and status codes;
nothing below them prints or exits.
"""

from __future__ import annotations

from dataclasses import dataclass


class PromptregError(Exception):
    """Base class: an error with a message fit to show a user."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a file: where (a whole-file problem is on line 1), and what."""

    file: str
    line: int | None
    message: str
    feature: str | None = None

    def __post_init__(self) -> None:
        if self.line is None:
            object.__setattr__(self, "line", 1)

    def sort_key(self) -> tuple[str, int, str, str]:
        """Order by file, line, message."""
        return (self.file, self.line or 0, self.message, self.feature or "")

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


class SpecError(PromptregError):
    """Prompt or policy files are invalid; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=Problem.sort_key)
        super().__init__("\n".join(str(p) for p in self.problems))


class RenderError(PromptregError):
    """A template could not be rendered."""


class InputError(RenderError):
    """A variable passed to a render is missing or invalid."""


class CatalogError(PromptregError):
    """A model is unknown to the catalog or cannot be counted."""


class NotFound(PromptregError):
    """An unknown feature, version, label or token."""


class Retired(PromptregError):
    """The feature was retired: its policy file was deleted."""


class Conflict(PromptregError):
    """A requested label move cannot be made."""


class DatabaseError(PromptregError):
    """The database cannot be used as it is."""


class MissingExtra(PromptregError):
    """Something needs an optional part of promptreg (a pip extra) that is not installed."""

    def __init__(self, extra: str, what: str) -> None:
        self.extra = extra
        super().__init__(f"{what} needs promptreg[{extra}]: pip install 'promptreg[{extra}]'")
