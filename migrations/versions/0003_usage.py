"""Usage: raw events (deduplicated by client id), hourly rollups and their latency histograms.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(length=200)


def _rollup_key(table: str) -> list[sa.schema.SchemaItem]:
    """The columns every usage table shares: feature, UTC hour, version number, model."""
    return [
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feature_id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("model", NAME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
        sa.ForeignKeyConstraint(
            ["feature_id"], ["features.id"], name=f"fk_{table}_feature_id_features"
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "usage_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", NAME, nullable=True),
        sa.Column("feature_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("model", NAME, nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("estimated_input_tokens", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_usage_events"),
        sa.ForeignKeyConstraint(
            ["feature_id"], ["features.id"], name="fk_usage_events_feature_id_features"
        ),
        sa.UniqueConstraint("event_id", name="uq_usage_events_event_id"),
        sa.CheckConstraint(
            "outcome IN ('ok', 'error', 'timeout', 'fallback', 'degraded', 'rejected')",
            name="ck_usage_events_outcome",
        ),
    )
    op.create_index("ix_usage_events_feature_id_at", "usage_events", ["feature_id", "at"])
    op.create_table(
        "usage_rollups",
        *_rollup_key("usage_rollups"),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in ("requests", "ok", "error", "timeout", "fallback", "degraded", "rejected")
        ),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False)
            for name in (
                "input_tokens",
                "output_tokens",
                "estimated_input_tokens",
                "drift_input_tokens",
                "drift_estimated_tokens",
            )
        ),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("latency_ms_sum", sa.Float(), nullable=False),
        sa.UniqueConstraint(
            "feature_id",
            "hour",
            "version",
            "model",
            name="uq_usage_rollups_feature_id_hour_version_model",
        ),
    )
    op.create_table(
        "usage_latency",
        *_rollup_key("usage_latency"),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.UniqueConstraint(
            "feature_id",
            "hour",
            "version",
            "model",
            "bucket",
            name="uq_usage_latency_feature_id_hour_version_model_bucket",
        ),
    )


def downgrade() -> None:
    for table in ("usage_latency", "usage_rollups", "usage_events"):
        op.drop_table(table)
