"""The exception tree of promptreg, and the HTTP status each error answers with.

    PromptregError                  base: every error a user may see, with a clear message
    ├── SpecError                   one or more problems in prompt/policy files (file:line)
    ├── RenderError                 a render failed: sandbox violation, limit, template error
    │   └── InputError              a variable is missing or fails its declared type
    ├── CatalogError                token counting or pricing for a model is impossible
    ├── BadRequest                  a value a request or command carries cannot be used
    │   └── BadWindow               a stats window that is not like 90m, 24h or 7d
    ├── NotFound                    unknown feature, version, label or token
    ├── Retired                     the feature's policy was deleted; its history remains
    ├── Conflict                    a label move that cannot be made (no earlier target …)
    ├── RepoError                   the repository or ref cannot be read
    ├── DatabaseError               the database cannot be used as it is
    │   ├── MigrationsNotFound      the install lacks its migrations
    │   ├── DatabaseBehind          older than the newest migration: run `promptreg db upgrade`
    │   ├── DatabaseAhead           migrated by a newer promptreg
    │   └── SyncLockTimeout         another sync held the lock for too long
    ├── ClientError                 the client library's own failures
    │   ├── RegistryUnavailable     never fetched, and the registry cannot be reached
    │   ├── SnapshotError           a snapshot (file or answer) is unreadable or does not match
    │   └── StreamInterrupted       a stream broke after its first chunk
    ├── RemoteError                 a promptreg server could not be reached or refused
    └── MissingExtra                a command or adapter needs an extra that is not installed

The API answers each with the status `http_status` gives (SPEC §4); the remote CLI and
the client library turn a status back into the same error with `from_status`. Command
line and HTTP layers translate these into one-line messages; nothing below them prints
or exits. A test walks the subclasses and compares them with this drawing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from registry.client.result import Result


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


class BadRequest(PromptregError):
    """A value a request or command carries cannot be used."""


class BadWindow(BadRequest):
    """A stats window that is not like `24h`, `90m` or `7d`, or is out of range."""


class NotFound(PromptregError):
    """An unknown feature, version, label or token."""


class Retired(PromptregError):
    """The feature was retired: its policy file was deleted."""


class Conflict(PromptregError):
    """A requested label move cannot be made."""


class RepoError(PromptregError):
    """The repository or ref cannot be read."""


class DatabaseError(PromptregError):
    """The database cannot be used as it is."""


class MigrationsNotFound(DatabaseError):
    """The migrations are not where the package expects them."""


class DatabaseBehind(DatabaseError):
    """The database has not been migrated to the newest revision."""

    def __init__(self, url: str, current: str | None, head: str) -> None:
        self.url, self.current, self.head = url, current, head
        at = f"migration {current}" if current else "no promptreg migration"
        super().__init__(
            f"The database {url} is at {at}, behind the newest ({head}). "
            "Run `promptreg db upgrade` to migrate it."
        )


class DatabaseAhead(DatabaseError):
    """The database was migrated by a newer promptreg than this one."""

    def __init__(self, url: str, current: str, head: str) -> None:
        self.url, self.current, self.head = url, current, head
        super().__init__(
            f"The database {url} is at migration {current}, which this promptreg does not know "
            f"(its newest is {head}). Upgrade promptreg."
        )


class SyncLockTimeout(DatabaseError):
    """Another sync held the sync lock for longer than the timeout."""


class ClientError(PromptregError):
    """Base of the client library's own errors."""


class RegistryUnavailable(ClientError):
    """A feature was never fetched and the registry cannot be reached (start from a snapshot)."""


class SnapshotError(ClientError):
    """A snapshot file (or a resolve answer) is unreadable or does not match its hash."""


class StreamInterrupted(ClientError):
    """A stream broke after its first chunk: the chunks already yielded are all there is."""

    def __init__(self, message: str, *, result: Result) -> None:
        super().__init__(message)
        self.result = result


class RemoteError(PromptregError):
    """A promptreg server could not be reached or refused the request."""


class MissingExtra(PromptregError):
    """Something needs an optional part of promptreg (a pip extra) that is not installed."""

    def __init__(self, extra: str, what: str) -> None:
        self.extra = extra
        super().__init__(f"{what} needs promptreg[{extra}]: pip install 'promptreg[{extra}]'")


# The status of each error in answers (first match wins); any other error answers 422.
HTTP_STATUS: tuple[tuple[type[PromptregError], int], ...] = (
    (NotFound, 404),
    (Retired, 410),
    (Conflict, 409),
    (RepoError, 502),  # the server could not read the repository it syncs: an upstream fault
    (DatabaseError, 503),
)
# The error each status of an answer means, for the remote CLI and the client library.
FROM_STATUS: dict[int, type[PromptregError]] = {
    404: NotFound,
    410: Retired,
    409: Conflict,
    422: BadRequest,
}


def http_status(exc: PromptregError) -> int:
    """The HTTP status that answers `exc`."""
    return next((status for kind, status in HTTP_STATUS if isinstance(exc, kind)), 422)


def from_status(status: int, detail: str) -> PromptregError | None:
    """The error an answer's status means, with the server's detail; None for statuses the
    caller words itself (authentication, server faults)."""
    kind = FROM_STATUS.get(status)
    return kind(detail) if kind is not None else None
