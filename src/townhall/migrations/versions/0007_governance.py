"""governance and privacy-safe publishing

Why: the publication workflow needs per-organization review rules (`governance_org_policies`)
and a per-dataset review trail and classification (`governance_datasets`, `governance_columns`)
that the catalog's tables do not carry; retention needs its policy overrides and a report of
every run (`governance_retention_policies`, `governance_retention_runs`); the data inventory
needs read counts (`governance_dataset_usage`). The privacy-safe pipeline keeps its settings,
runs, the privacy report of each version it publishes, and the differentially private counts
it has released, so a week is noised once ever (`publishing_*`).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import townhall.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "governance_retention_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_type", sa.String(length=60), nullable=False),
        sa.Column("after_days", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=400), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_governance_retention_policies")),
        sa.UniqueConstraint(
            "record_type", name=op.f("uq_governance_retention_policies_record_type")
        ),
    )
    op.create_table(
        "governance_retention_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(length=400), nullable=False),
        sa.Column("changed", sa.BigInteger(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_governance_retention_runs")),
    )
    with op.batch_alter_table("governance_retention_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_governance_retention_runs_started_at"), ["started_at"], unique=False
        )

    op.create_table(
        "governance_org_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("requires_review", sa.Boolean(), nullable=False),
        sa.Column("updated_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=400), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_governance_org_policies_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_governance_org_policies")),
        sa.UniqueConstraint(
            "organization_id", name=op.f("uq_governance_org_policies_organization_id")
        ),
    )
    op.create_table(
        "publishing_pipelines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("steward_id", sa.Integer(), nullable=True),
        sa.Column("records_slug", sa.String(length=100), nullable=False),
        sa.Column("counts_slug", sa.String(length=100), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("max_suppression", sa.Float(), nullable=False),
        sa.Column("location_mode", sa.String(length=20), nullable=False),
        sa.Column("h3_resolution", sa.Integer(), nullable=False),
        sa.Column("time_granularity", sa.String(length=10), nullable=False),
        sa.Column("timezone", sa.String(length=60), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("dp_areas", sa.JSON(), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("interval_hours", sa.Integer(), nullable=False),
        sa.Column("last_run_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_publishing_pipelines_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["steward_id"],
            ["users.id"],
            name=op.f("fk_publishing_pipelines_steward_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publishing_pipelines")),
        sa.UniqueConstraint("source", name=op.f("uq_publishing_pipelines_source")),
    )
    op.create_table(
        "governance_columns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("column_name", sa.String(length=300), nullable=False),
        sa.Column("classification", sa.String(length=20), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("set_by", sa.String(length=400), nullable=False),
        sa.Column("updated_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_governance_columns_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_governance_columns")),
        sa.UniqueConstraint(
            "dataset_id", "column_name", name=op.f("uq_governance_columns_dataset_id")
        ),
    )
    with op.batch_alter_table("governance_columns", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_governance_columns_dataset_id"), ["dataset_id"], unique=False
        )

    op.create_table(
        "governance_dataset_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("consumer", sa.String(length=400), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_governance_dataset_usage_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_governance_dataset_usage")),
        sa.UniqueConstraint(
            "dataset_id",
            "day",
            "channel",
            "consumer",
            name=op.f("uq_governance_dataset_usage_dataset_id"),
        ),
    )
    with op.batch_alter_table("governance_dataset_usage", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_governance_dataset_usage_dataset_id"), ["dataset_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_governance_dataset_usage_day"), ["day"], unique=False)

    op.create_table(
        "governance_datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("classification", sa.String(length=20), nullable=False),
        sa.Column("origin", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("submitted_by_id", sa.Integer(), nullable=True),
        sa.Column("submitted_by", sa.String(length=400), nullable=False),
        sa.Column("submitted_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reviewed_by_id", sa.Integer(), nullable=True),
        sa.Column("reviewed_by", sa.String(length=400), nullable=False),
        sa.Column("reviewed_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("review_note", sa.Text(), nullable=False),
        sa.Column("first_published_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_governance_datasets_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reviewed_by_id"],
            ["users.id"],
            name=op.f("fk_governance_datasets_reviewed_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["submitted_by_id"],
            ["users.id"],
            name=op.f("fk_governance_datasets_submitted_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_governance_datasets")),
        sa.UniqueConstraint("dataset_id", name=op.f("uq_governance_datasets_dataset_id")),
    )
    op.create_table(
        "publishing_dp_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("area", sa.String(length=100), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("released_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["publishing_pipelines.id"],
            name=op.f("fk_publishing_dp_counts_pipeline_id_publishing_pipelines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publishing_dp_counts")),
        sa.UniqueConstraint(
            "pipeline_id",
            "week_start",
            "area",
            "category",
            name=op.f("uq_publishing_dp_counts_pipeline_id"),
        ),
    )
    op.create_table(
        "publishing_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("started_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=400), nullable=False),
        sa.Column("rows_in", sa.BigInteger(), nullable=False),
        sa.Column("rows_out", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["publishing_pipelines.id"],
            name=op.f("fk_publishing_runs_pipeline_id_publishing_pipelines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publishing_runs")),
    )
    with op.batch_alter_table("publishing_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_publishing_runs_pipeline_started", ["pipeline_id", "started_at"], unique=False
        )

    op.create_table(
        "publishing_privacy_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("dataset_version_id", sa.Integer(), nullable=False),
        sa.Column("version_number", sa.Integer(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("created_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_publishing_privacy_reports_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["publishing_runs.id"],
            name=op.f("fk_publishing_privacy_reports_run_id_publishing_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publishing_privacy_reports")),
        sa.UniqueConstraint(
            "dataset_version_id", name=op.f("uq_publishing_privacy_reports_dataset_version_id")
        ),
    )
    with op.batch_alter_table("publishing_privacy_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_publishing_privacy_reports_dataset_id"), ["dataset_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("publishing_privacy_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_publishing_privacy_reports_dataset_id"))

    op.drop_table("publishing_privacy_reports")
    with op.batch_alter_table("publishing_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_publishing_runs_pipeline_started")

    op.drop_table("publishing_runs")
    op.drop_table("publishing_dp_counts")
    op.drop_table("governance_datasets")
    with op.batch_alter_table("governance_dataset_usage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_governance_dataset_usage_day"))
        batch_op.drop_index(batch_op.f("ix_governance_dataset_usage_dataset_id"))

    op.drop_table("governance_dataset_usage")
    with op.batch_alter_table("governance_columns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_governance_columns_dataset_id"))

    op.drop_table("governance_columns")
    op.drop_table("publishing_pipelines")
    op.drop_table("governance_org_policies")
    with op.batch_alter_table("governance_retention_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_governance_retention_runs_started_at"))

    op.drop_table("governance_retention_runs")
    op.drop_table("governance_retention_policies")
