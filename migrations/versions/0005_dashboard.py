"""The dashboard: its sign-ins (the sha256 of each session cookie, the API token it acts
for), and an index on the hour of the hourly rollups, which its features page reads for
every feature at once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "browser_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_browser_sessions"),
        sa.ForeignKeyConstraint(
            ["token_id"], ["api_tokens.id"], name="fk_browser_sessions_token_id_api_tokens"
        ),
        sa.UniqueConstraint("session_hash", name="uq_browser_sessions_session_hash"),
    )
    op.create_index("ix_usage_rollups_hour", "usage_rollups", ["hour"])
    op.create_index("ix_usage_latency_hour", "usage_latency", ["hour"])


def downgrade() -> None:
    op.drop_index("ix_usage_latency_hour", table_name="usage_latency")
    op.drop_index("ix_usage_rollups_hour", table_name="usage_rollups")
    op.drop_table("browser_sessions")
