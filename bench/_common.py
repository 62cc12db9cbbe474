"""What several benchmarks set up alike: a free port, a fresh database, a small registry.

The scripts import it as `_common` (a script's own folder, bench/, is on sys.path). It
imports only the standard library up front: bench/api.py times its own first render.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def fresh_database(kind: str, workdir: Path, *, bench: str) -> Iterator[str]:
    """A new, migrated, empty database URL: a SQLite file in `workdir`, or a PostgreSQL
    database `bench_<bench>_…` on PROMPTREG_TEST_POSTGRES_URL's server, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from registry.store.db import migrate

    if kind == "sqlite":
        url = f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        migrate(url)
        yield url
        return
    server_url = os.environ["PROMPTREG_TEST_POSTGRES_URL"]
    name = f"bench_{bench}_{uuid.uuid4().hex[:12]}"
    server = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        try:
            migrate(url)
            yield url
        finally:
            with server.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        server.dispose()


def two_commit_registry(root: Path, names: Iterable[str], *, policy: str, prompt_head: str) -> None:
    """A git repository at `root` with `policy` and a prompt (`prompt_head`, then a system
    and a user message) for each feature name, committed twice with a different system
    message: every feature has two versions."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)

    names = list(names)
    root.mkdir(parents=True)
    git("init", "--quiet", "--initial-branch=main")
    for attempt in ("Be helpful.", "Be helpful and brief."):
        for name in names:
            rel = name.replace(".", "/")
            path = root / "policies" / f"{rel}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(policy)
            prompt = root / "prompts" / f"{rel}.jinja"
            prompt.parent.mkdir(parents=True, exist_ok=True)
            prompt.write_text(f"{prompt_head}system:\n{attempt}\nuser:\n{{{{ q }}}}\n")
        git("add", "--all")
        git("commit", "--quiet", "-m", attempt)
