"""Database plumbing: engines for SQLite and PostgreSQL, sessions, migrations, the sync lock.

SQLite runs in WAL mode with foreign keys on, and its transactions are begun by us (``BEGIN``
or ``BEGIN IMMEDIATE``) rather than by the sqlite3 module, so a writer can take the write lock
up front. The sync lock is held for the rest of one transaction on both databases, so "one
sync is one transaction" and "two syncs are serialised" are the same fact.
"""

import hashlib
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from registry.errors import (
    DatabaseAhead,
    DatabaseBehind,
    DatabaseError,
    MigrationsNotFound,
    SyncLockTimeout,
)
from registry.extras import require


def _migrations_dir() -> Path:
    """Where the Alembic scripts are: the `registry.migrations` package (the repository's
    top-level migrations/ folder, mapped into the package by pyproject.toml)."""
    spec = importlib.util.find_spec("registry.migrations")
    locations = spec.submodule_search_locations if spec is not None else None
    if not locations:
        raise MigrationsNotFound("the registry.migrations package is missing from this install")
    return Path(next(iter(locations)))


DEFAULT_BUSY_TIMEOUT_S = 30.0
DEFAULT_SYNC_LOCK_TIMEOUT_S = 300.0

# Execution option carrying the busy timeout (ms) for a transaction begun with BEGIN IMMEDIATE.
_IMMEDIATE = "promptreg_begin_immediate"
# Connection.info key recording how the current SQLite transaction began.
_BEGUN = "promptreg_begun"
# One advisory-lock key for all syncs (advisory locks are scoped per database already).
SYNC_LOCK_KEY = int.from_bytes(hashlib.sha256(b"promptreg.sync").digest()[:8], "big", signed=True)


MIGRATIONS_DIR = _migrations_dir()


def database_url(url: str | URL) -> URL:
    """Parse a database URL, choosing psycopg 3 for a bare ``postgresql://``."""
    if isinstance(url, str) and url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys, a busy timeout and explicit BEGINs."""
    parsed = database_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "psycopg":
        require("postgres", f"the database {parsed.render_as_string(hide_password=True)}")
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    in_memory = parsed.database in (None, "", ":memory:")
    if not in_memory and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        parsed,
        connect_args={"check_same_thread": False},
        poolclass=StaticPool if in_memory else None,
    )
    busy_ms = int(busy_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver level: our "begin" listener issues BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        wait_ms = conn.get_execution_options().get(_IMMEDIATE)
        if wait_ms is None:
            conn.exec_driver_sql("BEGIN")
            conn.info[_BEGUN] = "DEFERRED"
            return
        if wait_ms < 0:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(wait_ms)}")
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            finally:
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {busy_ms}")
        conn.info[_BEGUN] = "IMMEDIATE"

    return engine


def _begin_immediate(session: Session, wait_s: float | None) -> None:
    """Begin the SQLite transaction with the write lock; wait_s=None: the busy timeout."""
    wait_ms = -1 if wait_s is None else max(1, int(wait_s * 1000))
    try:
        session.connection(execution_options={_IMMEDIATE: wait_ms})
    except OperationalError as err:
        session.rollback()
        if "locked" not in str(err.orig) and "busy" not in str(err.orig):
            raise
        waited = "the busy timeout" if wait_s is None else f"{wait_s:g} s"
        raise SyncLockTimeout(f"another writer held the database for more than {waited}") from err


@contextmanager
def session_scope(engine: Engine, *, write: bool = False) -> Iterator[Session]:
    """A session that commits on success and rolls back on error; ``write`` locks up front."""
    # write=True takes SQLite's write lock at BEGIN (waiting up to the busy timeout), so the
    # transaction cannot fail half-way because another writer committed after its first read.
    with Session(engine) as session:
        if write and engine.dialect.name == "sqlite":
            _begin_immediate(session, None)
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def sync_lock(session: Session, *, timeout_s: float = DEFAULT_SYNC_LOCK_TIMEOUT_S) -> None:
    """Hold the cross-process sync lock until the session's transaction ends; call it first."""
    # PostgreSQL: a transaction-level advisory lock, waited for under lock_timeout. SQLite: the
    # database write lock (BEGIN IMMEDIATE), waited for under busy_timeout. Either way a killed
    # process releases it with its connection, and commit/rollback releases it. Not granted
    # within timeout_s: the session is rolled back and SyncLockTimeout raised.
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        if not session.in_transaction():
            _begin_immediate(session, timeout_s)
            return
        if session.connection().info.get(_BEGUN) != "IMMEDIATE":
            raise RuntimeError("sync_lock() must come before any query in the transaction")
        return
    if dialect != "postgresql":
        raise DatabaseError(f"no sync lock for database dialect {dialect!r}")
    previous = session.execute(text("SELECT current_setting('lock_timeout')")).scalar_one()
    wait = f"{max(1, int(timeout_s * 1000))}ms"
    session.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": wait})
    try:
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SYNC_LOCK_KEY})
    except OperationalError as err:
        if getattr(err.orig, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        session.rollback()
        raise SyncLockTimeout(f"another sync held the lock for more than {timeout_s:g} s") from err
    session.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": previous})


# --- migrations ---------------------------------------------------------------------------


def alembic_config() -> Config:
    """An Alembic configuration pointing at migrations/, without an alembic.ini."""
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise MigrationsNotFound(
            f"Alembic migrations not found at {MIGRATIONS_DIR}: this promptreg install is "
            "incomplete; reinstall it (pip install --force-reinstall 'promptreg[server]')."
        )
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest migration revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise MigrationsNotFound(f"no migration revisions in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is migrated to, or None for a database never migrated."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _outside_transaction(conn: Connection, statement: str) -> None:
    """Run a statement on the driver's connection, bypassing our BEGIN (SQLite pragmas)."""
    driver = conn.connection.driver_connection
    if driver is None:
        raise DatabaseError("connection is closed")
    driver.execute(statement)


def migrate(target: str | URL | Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` (default: the newest), in one transaction."""
    engine = target if isinstance(target, Engine) else make_engine(target)
    sqlite = engine.dialect.name == "sqlite"
    try:
        config = alembic_config()
        with engine.connect() as conn:
            # SQLite batch migrations copy and drop tables, which enforced foreign keys would
            # refuse; the pragma only changes outside a transaction, so it is set around it.
            if sqlite:
                _outside_transaction(conn, "PRAGMA foreign_keys = OFF")
            try:
                with conn.begin():
                    config.attributes["connection"] = conn
                    command.upgrade(config, revision)
                    if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                        raise DatabaseError(f"migration to {revision} broke a foreign key")
            finally:
                if sqlite:
                    _outside_transaction(conn, "PRAGMA foreign_keys = ON")
    finally:
        if engine is not target:
            engine.dispose()


def _display(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _is_empty(engine: Engine) -> bool:
    return not set(inspect(engine).get_table_names()) - {"alembic_version"}


def ensure_database(url: str | URL) -> Engine:
    """An engine on a database at the newest migration (SPEC §8 "Database bootstrap")."""
    # A new, empty SQLite database is created and migrated here; any other database behind
    # head raises DatabaseBehind (run `promptreg db upgrade`), one ahead DatabaseAhead.
    engine = make_engine(url)
    try:
        head = head_revision()
        current = current_revision(engine)
        if current == head:
            return engine
        if current is None and engine.dialect.name == "sqlite" and _is_empty(engine):
            migrate(engine)
            return engine
        if current is not None:
            try:
                ScriptDirectory.from_config(alembic_config()).get_revision(current)
            except CommandError:
                raise DatabaseAhead(_display(engine), current, head) from None
        raise DatabaseBehind(_display(engine), current, head)
    except BaseException:
        engine.dispose()
        raise
