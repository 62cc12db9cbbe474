"""Real promptreg servers for tests, on 127.0.0.1 and a free port.

Two ways to run one, both `Server`s: ready once GET /healthz answers 200 (polled with a
deadline; a server that dies while starting fails at once, with its output), stopped
cleanly on exit whatever happens.

- `AppServer(app)`: uvicorn serving an app object from a thread of the test process, so
  the test can hand it an engine or settings of its own; `stop()` closes the port (what
  a client sees when the registry goes down).
- `ServeProcess(database_url, cwd)`: `promptreg serve` in a child process, as deployed
  (a replica; `workers=` for several worker processes, `env=` for variables to set), its
  output in a log file under `cwd`.
- `replicas(database_url, cwd, count)`: several `ServeProcess` on one database, started
  side by side.

`app_of(settings, ...)` makes the app an `AppServer` or a `TestClient` runs, and disposes
of the engine it opened when the block ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from registry.api.app import create_app
from registry.config import Settings

from .wait import wait_for

HOST = "127.0.0.1"
PROMPTREG = Path(sys.executable).with_name("promptreg")
READY_S = 60.0  # a first start imports litellm and loads tokenizers: seconds on a busy machine
STOP_S = 20.0


@contextmanager
def app_of(settings: Settings, **options: Any) -> Iterator[FastAPI]:
    """`create_app(settings, **options)`; the engine it opens is disposed when the block ends."""
    app = create_app(settings, **options)
    try:
        yield app
    finally:
        app.state.engine.dispose()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """A server at `url`; a context manager that waits until it is ready and stops it."""

    url: str

    def healthy(self) -> bool:
        """Whether GET /healthz answers 200 now."""
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def check_alive(self) -> None:
        """Raise AssertionError, with what is known, if the server has died."""

    def wait_ready(self, timeout_s: float = READY_S) -> None:
        """Wait until /healthz answers 200."""

        def ready() -> bool:
            self.check_alive()
            return self.healthy()

        wait_for(ready, timeout_s, f"{self} to answer /healthz")

    def start(self) -> Server:
        """Start serving, without waiting (see `wait_ready`)."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        raise NotImplementedError

    def __enter__(self) -> Server:
        try:
            self.start()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AppServer(Server):
    """uvicorn serving `app` from a thread of this process."""

    def __init__(self, app: Any) -> None:
        # Bound here and handed to uvicorn: the port cannot be taken in between.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, 0))
        self.url = f"http://{HOST}:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="uvicorn", daemon=True
        )

    def __str__(self) -> str:
        return f"uvicorn at {self.url}"

    def __enter__(self) -> AppServer:
        super().__enter__()
        return self

    def start(self) -> AppServer:
        self.thread.start()
        return self

    def check_alive(self) -> None:
        if not self.thread.is_alive():
            raise AssertionError(f"{self} stopped while starting (see the log above)")

    def stop(self) -> None:
        """Stop serving and close the port: connections are refused from now on."""
        if self.thread.is_alive():
            self.server.should_exit = True
            self.thread.join(timeout=STOP_S)
            assert not self.thread.is_alive(), f"{self} did not stop within {STOP_S:g} s"
        self.sock.close()


class ServeProcess(Server):
    """`promptreg serve` in a child process (its own process group), output in a log file."""

    def __init__(
        self,
        database_url: str,
        cwd: Path,
        *,
        workers: int = 1,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.database_url = database_url
        self.cwd = cwd
        self.workers = workers
        self.env = {**os.environ, **(env or {})}
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self._listen_on(free_port())

    def _listen_on(self, port: int) -> None:
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.log = self.cwd / f"serve-{port}.log"

    def __str__(self) -> str:
        return f"`promptreg serve` at {self.url}"

    def __enter__(self) -> ServeProcess:
        super().__enter__()
        return self

    @property
    def command(self) -> list[str]:
        """The command line of the server."""
        return [
            str(PROMPTREG),
            "serve",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--database-url",
            self.database_url,
            *self.args,
        ]

    def start(self) -> ServeProcess:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # workers included: stopped as one group
            )
        return self

    def check_alive(self) -> None:
        assert self.process is not None, "not started"
        if self.process.poll() is None:
            return
        output = self.log.read_text(errors="replace")
        if "address already in use" in output.lower():
            # free_port() raced with another process: try again on another port.
            self._listen_on(free_port())
            self.start()
            return
        raise AssertionError(f"{self} exited with {self.process.returncode}:\n{output}")

    def stop(self) -> None:
        """SIGTERM to the server and its workers; SIGKILL if they do not stop in time."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_S)


@contextmanager
def replicas(database_url: str, cwd: Path, count: int = 2) -> Iterator[list[ServeProcess]]:
    """`count` servers on one database, started side by side; all stopped on exit."""
    servers = [ServeProcess(database_url, cwd) for _ in range(count)]
    with ExitStack() as stack:
        for server in servers:
            stack.callback(server.stop)
            server.start()
        for server in servers:
            server.wait_ready()
        yield servers
