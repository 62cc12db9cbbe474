"""Where label commands read and write: the database directly, or a promptreg server.

Both backends return the API's JSON shapes, so every command prints the same thing in
database mode and in remote mode (`--url`), and the on-call engineer's laptop needs no
database access to roll back production. `@backend_options()` gives such a command its
shared options (`--label --json --database-url --url --token`) as one `Target`.
"""

from __future__ import annotations

import functools
import getpass
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar

import typer

if TYPE_CHECKING:
    from registry.cli.database import DatabaseBackend
    from registry.cli.remote import RemoteBackend

# Defaults come from `registry.config.Settings` (PROMPTREG_* variables), read when a
# command runs: one place knows the environment.
DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Database URL (default: PROMPTREG_DATABASE_URL, else sqlite:///promptreg.db here).",
        show_default=False,
    ),
]
ServerUrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="A promptreg server: work through its API (default: PROMPTREG_URL).",
        show_default=False,
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token", help="API token for --url (default: PROMPTREG_TOKEN).", show_default=False
    ),
]
LabelOption = Annotated[
    str | None,
    typer.Option(
        "--label",
        help="Label to read or move (default: PROMPTREG_LABEL, else production).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ReasonOption = Annotated[str | None, typer.Option("--reason", help="Why (recorded).")]


class Backend(Protocol):
    """The label commands' operations, in the API's shapes."""

    def features(self, label: str) -> list[dict[str, Any]]: ...
    def show(self, name: str, label: str, version: int | None) -> dict[str, Any]: ...
    def history(self, name: str) -> list[dict[str, Any]]: ...
    def audit(self, feature: str | None, label: str | None, limit: int) -> list[dict[str, Any]]: ...
    def rollback(
        self, name: str, label: str, to_version: int | None, reason: str | None
    ) -> dict[str, Any]: ...
    def promote(
        self, name: str, label: str, version: int | None, reason: str | None
    ) -> dict[str, Any]: ...
    def stats(self, name: str, label: str, window: str) -> dict[str, Any]: ...
    def rollouts(self, label: str) -> list[dict[str, Any]]: ...
    def rollout(self, name: str, label: str) -> dict[str, Any]: ...
    def rollout_start(
        self,
        name: str,
        label: str,
        to_version: int,
        steps: list[int] | None,
        interval: str | None,
        reason: str | None,
    ) -> dict[str, Any]: ...
    def rollout_act(
        self, name: str, action: str, label: str, reason: str | None
    ) -> dict[str, Any]: ...
    def close(self) -> None: ...


def os_user() -> str:
    """The actor of database-mode label moves."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


B = TypeVar("B", bound=Backend)


_open: list[Backend] = []


def closed_with_command(backend: B) -> B:
    """Close `backend` when the running command ends (see `close_backends`)."""
    _open.append(backend)
    return backend


def close_backends() -> None:
    """Close every backend the command opened; the app calls it when a command ends."""
    while _open:
        _open.pop().close()


def label_or_default(label: str | None) -> str:
    """The label an option names, else PROMPTREG_LABEL, else production."""
    if label:
        return label
    from registry.config import get_settings

    return get_settings().label


def database_backend(database_url: str | None) -> DatabaseBackend:
    """The database backend, closed when the command ends (needs promptreg[server])."""
    from registry.cli.output import command_path
    from registry.config import get_settings
    from registry.extras import require

    require("server", f"`{command_path()}` on a database (without --url)")
    from registry.cli.database import DatabaseBackend

    return closed_with_command(DatabaseBackend(database_url or get_settings().database_url))


def remote_backend(url: str | None, token: str | None) -> RemoteBackend | None:
    """The server backend when a server URL is given (option or PROMPTREG_URL), closed
    with the command; None without one."""
    from registry.config import get_settings

    settings = get_settings()
    url = url or settings.url
    if not url:
        return None
    from registry.cli.remote import RemoteBackend

    return closed_with_command(RemoteBackend(url, token or settings.token))


def backend_for(database_url: str | None, url: str | None, token: str | None) -> Backend:
    """The remote backend when a server URL is given (option or PROMPTREG_URL), else the
    database; closed with the command."""
    return remote_backend(url, token) or database_backend(database_url)


@dataclass(frozen=True)
class Target:
    """The options every label and rollout command shares: where it works, how it answers."""

    label_option: str | None
    as_json: bool
    database_url: str | None
    url: str | None
    token: str | None

    @property
    def label(self) -> str:
        """The label to read or move: --label, else PROMPTREG_LABEL, else production."""
        return label_or_default(self.label_option)

    def backend(self) -> Backend:
        """The server with --url (or PROMPTREG_URL), else the database (see `backend_for`)."""
        return backend_for(self.database_url, self.url, self.token)


Command = Callable[..., None]

# (parameter, its Typer option, default), in the order --help lists them
_SHARED_OPTIONS: tuple[tuple[str, Any, Any], ...] = (
    ("label", LabelOption, None),
    ("as_json", JsonOption, False),
    ("database_url", DatabaseUrlOption, None),
    ("url", ServerUrlOption, None),
    ("token", TokenOption, None),
)


def backend_options(*, label: bool = True) -> Callable[[Command], Command]:
    """Give a command, after its own options, --label (unless `label=False`), --json,
    --database-url, --url and --token; it receives them as one keyword `target: Target`."""
    shared = [option for option in _SHARED_OPTIONS if label or option[0] != "label"]

    def decorate(command: Command) -> Command:
        own = inspect.signature(command, eval_str=True)
        parameters = [p for p in own.parameters.values() if p.name != "target"]
        parameters += [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind
            )
            for name, kind, default in shared
        ]

        @functools.wraps(command)
        def run(**options: Any) -> None:
            target = Target(
                label_option=options.pop("label") if label else None,
                as_json=options.pop("as_json"),
                database_url=options.pop("database_url"),
                url=options.pop("url"),
                token=options.pop("token"),
            )
            command(**options, target=target)

        # what Typer reads to build the command's options
        run.__signature__ = own.replace(parameters=parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
        return run

    return decorate
