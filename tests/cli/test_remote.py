"""Label commands against a running server (`--url`/`--token`, PROMPTREG_URL/PROMPTREG_TOKEN):
the same output as database mode, and one-line errors (SPEC §5).

The server is a real uvicorn on 127.0.0.1 (in a thread of the test process) over the
registry `api.harness` builds; database mode reads the same database, so both modes must
print exactly the same bytes. Error paths run the installed `promptreg` in a child
process, as a user would, to see stderr and the exit code.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api.harness import Registry, new_registry, tone
from sqlalchemy import Engine
from support.server import PROMPTREG, AppServer, app_of, free_port
from test_packaging import LOADED_AFTER_COMMAND, SERVER_MODULES, TOKENIZERS, loaded_modules
from typer.testing import CliRunner, Result

from registry.cli import app as cli
from registry.cli import backend
from registry.cli import remote as remote_module
from registry.cli.remote import RemoteBackend

runner = CliRunner()


class Remote:
    """A registry, a server over it, and how to run a command in either mode."""

    def __init__(self, registry: Registry, server: AppServer) -> None:
        self.registry = registry
        self.url = server.url

    def db(self, *args: str) -> Result:
        """Run a command in database mode."""
        return run(*args, "--database-url", self.registry.db_url)

    def remote(self, *args: str, token: str | None = None) -> Result:
        """Run a command through the server (admin token unless told)."""
        return run(*args, "--url", self.url, "--token", token or self.registry.admin_token)


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(cli, list(args), env=env)


@pytest.fixture
def remote(
    db_url: str,
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli_engines: list[Engine],
) -> Iterator[Remote]:
    """A synced registry served by uvicorn on 127.0.0.1."""
    # The commands never close their backend (the process ends instead). In-process, a
    # pooled PostgreSQL connection (see `cli_engines`) or an httpx socket would be
    # garbage-collected open, a ResourceWarning: keep them alive and close them at the end.
    clients: list[RemoteBackend] = []

    class RecordedRemote(RemoteBackend):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            clients.append(self)

    monkeypatch.setattr(remote_module, "RemoteBackend", RecordedRemote)
    registry = new_registry(db_url, engine, tmp_path)
    try:
        with app_of(registry.settings(), poll_s=0.02) as app, AppServer(app) as server:
            yield Remote(registry, server)
    finally:
        for client in clients:
            client.client.close()


def same(db: Result, remote: Result) -> str:
    """Assert both runs succeeded with identical stdout; that stdout."""
    assert db.exit_code == 0, db.output
    assert remote.exit_code == 0, remote.output
    assert remote.stdout == db.stdout
    return db.stdout


READS = [
    ("features",),
    ("features", "--label", "staging"),
    ("show", "support.reply"),
    ("show", "support.reply", "--version", "1"),
    ("show", "kb.answer"),
    ("history", "support.reply"),
    ("audit",),
    ("audit", "--feature", "support.reply", "--limit", "2"),
]


def test_reads_print_the_same_as_database_mode(remote: Remote):
    for args in READS:
        for extra in ((), ("--json",)):
            out = same(remote.db(*args, *extra), remote.remote(*args, *extra))
            assert out.strip(), args
    assert "support.reply" in remote.db("features").stdout
    assert '"version": 3' in remote.db("show", "support.reply", "--json").stdout


def test_rollback_and_promote_print_the_same_as_database_mode(remote: Remote):
    # Each move is made once through the server and once in database mode, from the same
    # state (promote undoes rollback; the previous target is the same both times).
    for extra in (("--json",), ()):
        rolled = remote.remote("rollback", "support.reply", "--reason", "remote", *extra)
        promoted = remote.remote("promote", "support.reply", *extra)
        same(remote.db("rollback", "support.reply", "--reason", "db", *extra), rolled)
        same(remote.db("promote", "support.reply", *extra), promoted)
    assert rolled.stdout == "support.reply production: rolled back version 3 → 2 (pinned)\n"
    assert promoted.stdout == "support.reply production: promoted version 2 → 3 (unpinned)\n"

    to_one = remote.remote("rollback", "support.reply", "--to", "1", "--json")
    remote.remote("promote", "support.reply", "--version", "3")
    same(remote.db("rollback", "support.reply", "--to", "1", "--json"), to_one)

    audit = same(remote.db("audit", "--json"), remote.remote("audit", "--json"))
    actors = {(row["reason"], row["actor"]) for row in _json(audit) if row["reason"]}
    assert ("remote", "oncall") in actors
    assert ("db", backend.os_user()) in actors


@pytest.mark.parametrize("command", [("rollback", "support.reply"), ("sync",)], ids=" ".join)
def test_a_remote_command_loads_no_orm_web_framework_or_tokenizer(
    remote: Remote, command: tuple[str, ...]
):
    token = remote.registry.admin_token
    if command == ("sync",):  # a new version, so the sync moves the label as `oncall`
        remote.registry.repo.commit("Brief", {"prompts/partials/tone.jinja": tone("Be brief.")})
    loaded = loaded_modules(LOADED_AFTER_COMMAND, *command, "--url", remote.url, "--token", token)
    forbidden = (
        *SERVER_MODULES,
        *TOKENIZERS,
        "registry.definitions",
        "registry.labels",
        "registry.sync",
        "git",
    )
    assert sorted(m for m in loaded if m.split(".")[0] in forbidden or m in forbidden) == []
    assert "httpx" in loaded
    done = json.loads(remote.db("audit", "--json").stdout)[0]
    assert (done["action"], done["actor"]) == (command[0], "oncall")


@pytest.mark.parametrize("command", ["features", "show", "export", "checklist", "stats"])
def test_promptreg_label_is_every_commands_default_label(remote: Remote, command: str):
    args = {
        "features": ("features", "--json"),
        "show": ("show", "support.reply", "--json"),
        "export": ("export", "--out", "snap.json", "--json"),
        "checklist": ("checklist", "support.reply", "--json"),
        "stats": ("stats", "support.reply", "--json"),
    }[command]
    remote.registry.sync(label="staging")
    assert remote.db("rollback", "support.reply").exit_code == 0  # production differs now
    env = {"PROMPTREG_LABEL": "staging"}
    for mode in (remote.db, remote.remote):
        default = _timeless(mode(*args).stdout)
        named = _timeless(mode(*args, "--label", "staging").stdout)
        assert _timeless(run(*mode_args(remote, mode, args), env=env).stdout) == named
        if command in ("features", "show", "export"):
            assert named != default  # staging and production differ in this registry


def _timeless(out: str) -> Any:
    """JSON output without the moment it was made (stats' window ends now)."""
    data = json.loads(out)
    if isinstance(data, dict):
        data.pop("until", None)
        data.pop("since", None)
    return data


def mode_args(remote: Remote, mode: Any, args: tuple[str, ...]) -> tuple[str, ...]:
    """`args` as `mode` runs them, without the label (the environment names it)."""
    if mode == remote.db:
        return (*args, "--database-url", remote.registry.db_url)
    return (*args, "--url", remote.url, "--token", remote.registry.admin_token)


def test_environment_variables_select_remote_mode(remote: Remote):
    env = {"PROMPTREG_URL": remote.url, "PROMPTREG_TOKEN": remote.registry.admin_token}
    for args in (("features", "--json"), ("history", "support.reply")):
        same(remote.db(*args), run(*args, env=env))
    moved = run("rollback", "support.reply", "--reason", "via env", "--json", env=env)
    assert moved.exit_code == 0, moved.output
    audit = _json(remote.db("audit", "--feature", "support.reply", "--json").stdout)
    assert (audit[0]["action"], audit[0]["actor"], audit[0]["reason"]) == (
        "rollback",
        "oncall",
        "via env",
    )


def test_errors_are_the_same_in_both_modes(remote: Remote):
    for args in (
        ("show", "nope"),
        ("show", "support.reply", "--version", "9"),
        ("history", "nope"),
        ("rollback", "kb.answer"),
        ("promote", "support.reply", "--version", "9"),
    ):
        db, far = remote.db(*args), remote.remote(*args)
        assert db.exit_code != 0 and far.exit_code != 0, args
        assert type(far.exception) is type(db.exception), args
        assert str(far.exception) == str(db.exception), args


# -- what a user sees on stderr: one line, exit 1, no traceback ----------------------------


def promptreg(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PROMPTREG), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_server_down_is_one_line(tmp_path: Path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    line = one_line_error(
        promptreg("rollback", "support.reply", "--url", url, "--token", "x", cwd=tmp_path)
    )
    assert line.startswith(f"error: cannot reach {url}")


def test_unauthorized_and_forbidden_are_one_line(remote: Remote, tmp_path: Path):
    line = one_line_error(
        promptreg("features", "--url", remote.url, "--token", "prt_wrong", cwd=tmp_path)
    )
    assert line == (
        f"error: {remote.url}: unauthorized (unknown or revoked token); "
        "check --token/PROMPTREG_TOKEN"
    )
    line = one_line_error(
        promptreg(
            "rollback",
            "support.reply",
            "--url",
            remote.url,
            "--token",
            remote.registry.reader_token,
            cwd=tmp_path,
        )
    )
    assert line == (
        f"error: {remote.url}: forbidden (token 'dashboard' has role reader; this needs admin)"
    )
    assert _json(remote.db("show", "support.reply", "--json").stdout)["version"] == 3


def _json(text: str) -> Any:
    return json.loads(text)


def test_sync_through_the_server_syncs_its_repository(remote: Remote):
    remote.registry.repo.commit("Brief tone", {"prompts/partials/tone.jinja": tone("Be brief.")})
    synced = remote.remote("sync")
    assert synced.exit_code == 0, synced.output
    assert "→ production: 1 commit(s)" in synced.stdout and "1 new version(s)" in synced.stdout
    history = _json(remote.db("history", "support.reply", "--json").stdout)
    assert history[0]["version"] == 4
    again = _json(remote.remote("sync", "--json").stdout)
    assert (again["commits"], again["versions_created"], again["ok"]) == (0, 0, True)


def test_sync_through_the_server_refuses_local_options(remote: Remote):
    for args in (("--repo", "."), ("--ref", "main", "--no-history"), ("--label", "staging")):
        refused = remote.remote("sync", *args)
        assert refused.exit_code == 2
        assert "through --url the server syncs the repository, ref and label" in refused.stderr
        assert args[0] in refused.stderr
    reader = remote.remote("sync", token=remote.registry.reader_token)
    assert reader.exit_code == 1 and "has role reader; this needs admin" in str(reader.exception)
