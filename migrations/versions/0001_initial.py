"""Initial schema: features, versions, labels, audit log, sync runs/errors/state, API tokens.

Revision ID: 0001
Revises:
Create Date: 2024-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(length=200)
SHA = sa.String(length=64)


def upgrade() -> None:
    op.create_table(
        "features",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("retired", sa.Boolean(), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_features"),
        sa.UniqueConstraint("name", name="uq_features_name"),
    )
    op.create_table(
        "versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feature_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", SHA, nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("prompt_path", sa.String(), nullable=False),
        sa.Column("policy_path", sa.String(), nullable=False),
        sa.Column("commit_sha", SHA, nullable=False),
        sa.Column("commit_author", sa.String(), nullable=False),
        sa.Column("commit_email", sa.String(), nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("commit_message", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_versions"),
        sa.ForeignKeyConstraint(
            ["feature_id"], ["features.id"], name="fk_versions_feature_id_features"
        ),
        sa.UniqueConstraint("feature_id", "version", name="uq_versions_feature_id_version"),
    )
    op.create_index(
        "ix_versions_feature_id_content_hash", "versions", ["feature_id", "content_hash"]
    )
    op.create_table(
        "labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feature_id", sa.Integer(), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("previous_version_id", sa.Integer(), nullable=True),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_labels"),
        sa.ForeignKeyConstraint(
            ["feature_id"], ["features.id"], name="fk_labels_feature_id_features"
        ),
        sa.ForeignKeyConstraint(
            ["version_id"], ["versions.id"], name="fk_labels_version_id_versions"
        ),
        sa.ForeignKeyConstraint(
            ["previous_version_id"],
            ["versions.id"],
            name="fk_labels_previous_version_id_versions",
        ),
        sa.UniqueConstraint("feature_id", "name", name="uq_labels_feature_id_name"),
    )
    op.create_table(
        "audit_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feature_id", sa.Integer(), nullable=False),
        sa.Column("label", NAME, nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("actor", NAME, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_entries"),
        sa.ForeignKeyConstraint(
            ["feature_id"], ["features.id"], name="fk_audit_entries_feature_id_features"
        ),
        sa.CheckConstraint(
            "action IN ('sync', 'rollback', 'promote', 'retire', 'unretire')",
            name="ck_audit_entries_action",
        ),
    )
    op.create_index("ix_audit_entries_feature_id", "audit_entries", ["feature_id"])
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repo", sa.String(), nullable=False),
        sa.Column("ref", sa.String(), nullable=False),
        sa.Column("label", NAME, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("from_commit", SHA, nullable=True),
        sa.Column("to_commit", SHA, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("versions_created", sa.Integer(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sync_runs"),
        sa.CheckConstraint(
            "status IN ('running', 'ok', 'errors', 'failed')", name="ck_sync_runs_status"
        ),
    )
    op.create_table(
        "sync_errors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sync_run_id", sa.Integer(), nullable=False),
        sa.Column("commit_sha", SHA, nullable=False),
        sa.Column("feature", NAME, nullable=True),
        sa.Column("file", sa.String(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sync_errors"),
        sa.ForeignKeyConstraint(
            ["sync_run_id"], ["sync_runs.id"], name="fk_sync_errors_sync_run_id_sync_runs"
        ),
    )
    op.create_index("ix_sync_errors_sync_run_id", "sync_errors", ["sync_run_id"])
    op.create_table(
        "sync_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repo", sa.String(), nullable=False),
        sa.Column("ref", sa.String(), nullable=False),
        sa.Column("label", NAME, nullable=False),
        sa.Column("commit_sha", SHA, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sync_states"),
        sa.UniqueConstraint("repo", "ref", "label", name="uq_sync_states_repo_ref_label"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", SHA, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("name", name="uq_api_tokens_name"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        sa.CheckConstraint("role IN ('reader', 'admin')", name="ck_api_tokens_role"),
    )


def downgrade() -> None:
    for table in (
        "api_tokens",
        "sync_states",
        "sync_errors",
        "sync_runs",
        "audit_entries",
        "labels",
        "versions",
        "features",
    ):
        op.drop_table(table)
