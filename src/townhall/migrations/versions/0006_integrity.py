"""integrity and recovery

Why: signed audit checkpoints (`audit_checkpoints`) let `townhall verify` see a cut tail or a
rewritten chain, which the hash chain alone cannot; `lockdowns` keeps the read-only switch in
the database so every node sees it, with the incident's timeline. Dataset version manifests
need no new table: `dataset_versions.manifest` and `.signature` exist since 0002.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import townhall.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.Column("at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("prev", sa.String(length=64), nullable=False),
        sa.Column("checkpoint_hash", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
        sa.UniqueConstraint("checkpoint_hash", name=op.f("uq_audit_checkpoints_checkpoint_hash")),
    )
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_checkpoints_seq"), ["seq"], unique=False)

    op.create_table(
        "lockdowns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("started_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_by", sa.String(length=400), nullable=False),
        sa.Column("ended_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(length=400), nullable=False),
        sa.Column("tokens_revoked", sa.Integer(), nullable=False),
        sa.Column("sessions_ended", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lockdowns")),
    )
    with op.batch_alter_table("lockdowns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lockdowns_ended_at"), ["ended_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lockdowns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lockdowns_ended_at"))
    op.drop_table("lockdowns")
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_checkpoints_seq"))
    op.drop_table("audit_checkpoints")
