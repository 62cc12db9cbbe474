"""PostgreSQL for the `postgres` half of the suite: a server, and a fresh database per test.

The server is PROMPTREG_TEST_POSTGRES_URL when that is set (an external server), else a
throwaway cluster that `Cluster` starts with pytest-postgresql's `PostgreSQLExecutor`
(pg_ctl initdb, pg_ctl start -w, pg_ctl stop): in a new temp folder, on 127.0.0.1 and a
free port, trusting local connections, without durability (fsync off), deleted at the
end. `Cluster.find()` raises `Unavailable`, with the reason, where no PostgreSQL server
is installed; the suite then skips its PostgreSQL half and says why.

initdb and postgres refuse to run as root (CI runs as root): as root, pg_ctl runs as the
unprivileged `postgres` system user (which the server package creates) through
`runuser`, in a temp folder that user owns. Databases are made and dropped with
pytest-postgresql's `DatabaseJanitor`, which disconnects whatever a test left connected
(a killed child process, say) before it drops.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mirakuru.exceptions import AlreadyRunning
from pytest_postgresql.executors import PostgreSQLExecutor
from pytest_postgresql.janitor import DatabaseJanitor
from sqlalchemy.engine import make_url

from .server import HOST, free_port

URL_ENV = "PROMPTREG_TEST_POSTGRES_URL"
DEBIAN_BINARIES = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"  # the system user the server runs as when we are root
SUPERUSER = "postgres"  # the database role initdb creates
# A test database dies with the test: no durability. Some tests open many connections.
SERVER_OPTIONS = (
    f"-c listen_addresses={HOST} -c fsync=off -c synchronous_commit=off "
    "-c full_page_writes=off -c max_connections=200"
)
START_ATTEMPTS = 3


class Unavailable(Exception):
    """No PostgreSQL server can be started here; the message says why and what to do."""


class PortTaken(RuntimeError):
    """The server could not listen on the port it was given: another process took it."""


def find_pg_ctl(configured: str | None = None) -> Path | None:
    """pg_ctl: `configured` (--postgresql-exec), else on PATH, else under /usr/lib/postgresql."""
    if configured:
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            raise FileNotFoundError(f"--postgresql-exec={configured}: not an executable file")
        return Path(configured)
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path)
    found = [p for p in DEBIAN_BINARIES.glob("*/bin/pg_ctl") if os.access(p, os.X_OK)]
    return max(found, key=_major_version, default=None)


def _major_version(pg_ctl: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin/pg_ctl -> (15,): 15 sorts after 9.6, not before
    return tuple(int(n) for n in re.findall(r"\d+", pg_ctl.parent.parent.name))


class Cluster:
    """A throwaway PostgreSQL cluster; `with` starts it and stops and deletes it."""

    def __init__(self, pg_ctl: Path, run_as: pwd.struct_passwd | None) -> None:
        self.pg_ctl = pg_ctl
        self.run_as = run_as
        self.port = 0
        self.folder: Path | None = None
        self.executor: PostgreSQLExecutor | None = None

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the cluster's `postgres` database, as its superuser."""
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/postgres"

    @classmethod
    def find(cls, configured_pg_ctl: str | None = None) -> Cluster:
        """A cluster to start with the installed server; `Unavailable` where there is none."""
        pg_ctl = find_pg_ctl(configured_pg_ctl)
        if pg_ctl is None:
            raise Unavailable(
                "no PostgreSQL server installed (no pg_ctl on PATH or under "
                f"{DEBIAN_BINARIES}/*/bin); install one (Debian: apt-get install postgresql) "
                f"or set {URL_ENV} to a server's URL"
            )
        if os.geteuid() != 0:
            return cls(pg_ctl, None)
        try:
            run_as = pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise Unavailable(
                f"running as root, and PostgreSQL refuses to: there is no '{SERVER_USER}' user "
                f"to run it as (create one: useradd --system {SERVER_USER})"
            ) from None
        if shutil.which("runuser") is None:
            raise Unavailable("running as root, and `runuser` (util-linux) is not installed")
        return cls(pg_ctl, run_as)

    def __enter__(self) -> Cluster:
        for attempt in range(1, START_ATTEMPTS + 1):
            self.folder = Path(tempfile.mkdtemp(prefix="promptreg-test-pg-"))
            self.port = free_port()
            try:
                self._start(self.folder)
                return self
            except PortTaken:
                self.__exit__()
                if attempt == START_ATTEMPTS:
                    raise
            except BaseException:
                self.__exit__()
                raise
        raise AssertionError("unreachable")

    def _start(self, folder: Path) -> None:
        pg_ctl = self.pg_ctl
        if self.run_as is not None:
            os.chown(folder, self.run_as.pw_uid, self.run_as.pw_gid)
            pg_ctl = folder / "pg_ctl-as-user"
            pg_ctl.write_text(
                "#!/bin/sh\n"
                f"# initdb and postgres refuse to run as root: pg_ctl runs as '{SERVER_USER}'.\n"
                f'cd "{folder}" || exit 1\n'
                f'exec runuser -u {SERVER_USER} -- "{self.pg_ctl}" "$@"\n'
            )
            pg_ctl.chmod(0o755)
        self.executor = PostgreSQLExecutor(
            executable=str(pg_ctl),
            host=HOST,
            port=self.port,
            datadir=str(folder / "data"),
            unixsocketdir=str(folder),
            logfile=str(folder / "server.log"),
            startparams="-w -t 60",
            dbname="postgres",
            user=SUPERUSER,
            postgres_options=SERVER_OPTIONS,
        )
        try:
            self.executor.start()
        except Exception as err:
            log = folder / "server.log"
            output = log.read_text(errors="replace") if log.exists() else "(no server log)"
            # free_port() raced with another process (another test run, say)
            taken = isinstance(err, AlreadyRunning) or "address already in use" in output.lower()
            problem = PortTaken if taken else RuntimeError
            raise problem(f"PostgreSQL did not start ({err}); its log:\n{output}") from err

    def __exit__(self, *exc: object) -> None:
        try:
            if self.executor is not None and self.executor.running():
                self.executor.stop()
        finally:
            self.executor = None
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)
                self.folder = None


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server at `server_url`, dropped afterwards; its URL."""
    server = make_url(server_url)
    name = f"test_{uuid.uuid4().hex[:16]}"
    janitor = DatabaseJanitor(
        user=server.username or SUPERUSER,
        password=server.password,
        host=server.host,  # None: libpq's default (PGHOST, else the local socket)
        port=server.port,
        dbname=name,
        maintenance_dbname=server.database or "postgres",
    )
    with janitor:
        yield server.set(database=name).render_as_string(hide_password=False)
