"""The migrations create exactly the tables in registry.store.models; bootstrap rules of SPEC §8."""

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import Session, SQLModel

from registry.store import db
from registry.store.db import (
    DatabaseAhead,
    DatabaseBehind,
    MigrationsNotFound,
    current_revision,
    ensure_database,
    head_revision,
    make_engine,
    migrate,
)

TABLES = {
    "features",
    "versions",
    "labels",
    "audit_entries",
    "sync_runs",
    "sync_errors",
    "sync_states",
    "api_tokens",
    "browser_sessions",
    "generation",
    "usage_events",
    "usage_rollups",
    "usage_latency",
    "usage_minutes",
    "usage_minute_latency",
    "rollouts",
}


def test_models_define_the_expected_tables() -> None:
    assert set(SQLModel.metadata.tables) == TABLES


def test_upgrade_empty_database_matches_models(db_url: str) -> None:
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, SQLModel.metadata) == []
        inspector = inspect(engine)
        assert set(inspector.get_table_names()) == TABLES | {"alembic_version"}
        for name, table in SQLModel.metadata.tables.items():
            columns = {c["name"]: c for c in inspector.get_columns(name)}
            assert set(columns) == set(table.columns.keys()), name
            for column in table.columns:
                assert columns[column.name]["nullable"] == column.nullable, (name, column.name)
        unique = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("versions")}
        assert ("feature_id", "version") in unique
        indexes = {tuple(i["column_names"]) for i in inspector.get_indexes("versions")}
        assert ("feature_id", "content_hash") in indexes
        assert current_revision(engine) == head_revision() == "0005"
    finally:
        engine.dispose()


def test_migrate_twice_is_a_no_op(db_url: str) -> None:
    migrate(db_url)
    migrate(db_url)
    engine = make_engine(db_url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_downgrade_to_base_and_back(db_url: str) -> None:
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        config = db.alembic_config()
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        assert current_revision(engine) is None
        migrate(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_ensure_database_creates_and_migrates_a_new_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "registry.db"
    engine = ensure_database(f"sqlite:///{path}")
    try:
        assert path.is_file()
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()
    ensure_database(f"sqlite:///{path}").dispose()  # at head: opens without migrating


def test_ensure_database_accepts_database_at_head(db_url: str) -> None:
    migrate(db_url)
    engine = ensure_database(db_url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_ensure_database_never_migrates_an_existing_database(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE something_else (id INTEGER)"))
    engine.dispose()
    with pytest.raises(DatabaseBehind, match="promptreg db upgrade") as caught:
        ensure_database(db_url)
    assert caught.value.current is None
    assert caught.value.head == head_revision()
    engine = make_engine(db_url)
    assert "features" not in inspect(engine).get_table_names()
    engine.dispose()


def test_ensure_database_refuses_an_empty_postgres_database(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("only PostgreSQL: an empty SQLite file is created and migrated")
    with pytest.raises(DatabaseBehind, match="promptreg db upgrade"):
        ensure_database(db_url)


def test_ensure_database_refuses_a_revision_it_does_not_know(db_url: str) -> None:
    migrate(db_url)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'from_the_future'"))
    engine.dispose()
    with pytest.raises(DatabaseAhead, match="from_the_future"):
        ensure_database(db_url)


def test_database_behind_message_hides_the_password() -> None:
    error = DatabaseBehind("postgresql+psycopg://u:***@h/db", "0001", "0002")
    assert "promptreg db upgrade" in str(error) and "0002" in str(error)


def test_missing_migrations_folder_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "MIGRATIONS_DIR", tmp_path / "nowhere")
    with pytest.raises(MigrationsNotFound, match="nowhere"):
        head_revision()
    with pytest.raises(MigrationsNotFound):
        migrate(f"sqlite:///{tmp_path / 'x.db'}")


def test_every_audit_action_the_models_know_is_accepted_after_migrating(db_url: str) -> None:
    from registry.store import crud
    from registry.store.models import AUDIT_ACTIONS

    migrate(db_url)
    engine = make_engine(db_url)
    try:
        with Session(engine) as session:
            feature = crud.get_or_create_feature(session=session, name="a.x")
            for action in AUDIT_ACTIONS:
                crud.add_audit(
                    session=session,
                    feature=feature,
                    label="production",
                    action=action,
                    from_version=None,
                    to_version=None,
                    actor="ci",
                )
            session.commit()
            assert len(crud.list_audit(session=session, feature=feature)) == len(AUDIT_ACTIONS)
    finally:
        engine.dispose()
