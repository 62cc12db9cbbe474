"""Guarded rollouts: the rollouts table, minute usage rollups, rollout audit actions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(length=200)
ACTIONS_BEFORE = ("sync", "rollback", "promote", "retire", "unretire")
ACTIONS = (*ACTIONS_BEFORE, "rollout_start", "rollout_pause", "rollout_resume", "rollout_abort")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _minute_key(table: str) -> list[sa.schema.SchemaItem]:
    """The columns both minute tables share: feature, UTC minute, version number."""
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feature_id", sa.Integer(), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
        sa.ForeignKeyConstraint(
            ["feature_id"], ["features.id"], name=f"fk_{table}_feature_id_features"
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feature_id", sa.Integer(), nullable=False),
        sa.Column("label", NAME, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("interval_s", sa.Float(), nullable=False),
        sa.Column("min_requests", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor", NAME, nullable=False),
        sa.Column("stable_version_id", sa.Integer(), nullable=False),
        sa.Column("candidate_version_id", sa.Integer(), nullable=False),
        sa.Column("steps", sa.Text(), nullable=False),
        sa.Column("guards", sa.Text(), nullable=False),
        sa.Column("waited", sa.Integer(), nullable=False),
        sa.Column("decisions", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_rollouts"),
        sa.ForeignKeyConstraint(
            ["feature_id"], ["features.id"], name="fk_rollouts_feature_id_features"
        ),
        sa.ForeignKeyConstraint(
            ["stable_version_id"], ["versions.id"], name="fk_rollouts_stable_version_id_versions"
        ),
        sa.ForeignKeyConstraint(
            ["candidate_version_id"],
            ["versions.id"],
            name="fk_rollouts_candidate_version_id_versions",
        ),
        sa.CheckConstraint(
            "state IN ('running', 'paused', 'completed', 'aborted', 'superseded')",
            name="ck_rollouts_state",
        ),
        sa.CheckConstraint("percent >= 0 AND percent <= 100", name="ck_rollouts_percent"),
    )
    op.create_index("ix_rollouts_feature_id_label", "rollouts", ["feature_id", "label"])
    op.create_table(
        "usage_minutes",
        *_minute_key("usage_minutes"),
        *[
            sa.Column(name, sa.Integer(), nullable=False)
            for name in ("requests", "ok", "error", "timeout", "fallback", "degraded")
        ],
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("cost_usd_sq", sa.Float(), nullable=False),
        sa.Column("cost_n", sa.Integer(), nullable=False),
        sa.Column("latency_ms_sum", sa.Float(), nullable=False),
        sa.Column("drift_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("drift_estimated_tokens", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint(
            "feature_id", "minute", "version", name="uq_usage_minutes_feature_id_minute_version"
        ),
    )
    op.create_index("ix_usage_minutes_minute", "usage_minutes", ["minute"])
    op.create_table(
        "usage_minute_latency",
        *_minute_key("usage_minute_latency"),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.UniqueConstraint(
            "feature_id",
            "minute",
            "version",
            "bucket",
            name="uq_usage_minute_latency_feature_id_minute_version_bucket",
        ),
    )
    op.create_index("ix_usage_minute_latency_minute", "usage_minute_latency", ["minute"])
    _audit_actions(ACTIONS, OLD_CHECK, NEW_CHECK)


# 0001 named the check twice over (the naming convention applied to an already full name).
OLD_CHECK = "ck_audit_entries_ck_audit_entries_action"
NEW_CHECK = "ck_audit_entries_action"


def _audit_actions(actions: tuple[str, ...], old: str, new: str) -> None:
    """Replace the check on audit_entries.action (SQLite: by recreating the table)."""
    check = _in("action", actions)
    if op.get_bind().dialect.name == "sqlite":
        # SQLAlchemy reflects SQLite's CHECK constraints: the copy drops the old one by name.
        with op.batch_alter_table("audit_entries", recreate="always") as batch:
            batch.drop_constraint(op.f(old), type_="check")
            batch.create_check_constraint(op.f(new), check)
        return
    op.drop_constraint(op.f(old), "audit_entries", type_="check")
    op.create_check_constraint(op.f(new), "audit_entries", check)


def downgrade() -> None:
    _audit_actions(ACTIONS_BEFORE, NEW_CHECK, OLD_CHECK)
    op.drop_index("ix_usage_minute_latency_minute", table_name="usage_minute_latency")
    op.drop_table("usage_minute_latency")
    op.drop_index("ix_usage_minutes_minute", table_name="usage_minutes")
    op.drop_table("usage_minutes")
    op.drop_index("ix_rollouts_feature_id_label", table_name="rollouts")
    op.drop_table("rollouts")
