"""Alembic environment for promptreg.

``registry.store.db.migrate`` hands over an open connection in ``config.attributes``; the
``alembic`` command line (no alembic.ini is shipped) falls back to ``sqlalchemy.url`` or
``PROMPTREG_DATABASE_URL``. SQLite uses batch mode so later migrations can alter tables.
"""

import os
from typing import Any, Literal

from alembic import context
from sqlalchemy import Connection, TypeDecorator
from sqlmodel import SQLModel

import registry.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from registry.store.db import make_engine

config = context.config
target_metadata = SQLModel.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("PROMPTREG_DATABASE_URL")
    if not url:
        raise RuntimeError("no database: set PROMPTREG_DATABASE_URL or sqlalchemy.url")
    return url


def _render_item(kind: str, obj: Any, _autogen_context: Any) -> str | Literal[False]:
    """Autogenerate plain ``sa.`` types, so migrations never import promptreg's own types."""
    if kind == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl!r}"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Print the SQL instead of running it (``alembic upgrade --sql``)."""
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate the given connection, or one opened from the configured URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
