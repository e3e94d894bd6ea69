"""office status signals

Why: followers of an office's live status are told of meaningful changes only (state changes,
wait-time thresholds crossed). Deciding what is a change needs what they were last told, kept
per office across processes and restarts (`directory_office_signals`).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import townhall.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "directory_office_signals",
        sa.Column("location_id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=30), nullable=False),
        sa.Column("wait_band", sa.Integer(), nullable=False),
        sa.Column("longest_wait_minutes", sa.Integer(), nullable=False),
        sa.Column("changed_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("wait_announced_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("checked_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["directory_locations.id"],
            name=op.f("fk_directory_office_signals_location_id_directory_locations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("location_id", name=op.f("pk_directory_office_signals")),
    )


def downgrade() -> None:
    op.drop_table("directory_office_signals")
