"""index service requests by closing time

Why: the insights slice's productivity and area indicators select requests closed in a period
(`closed_at >= start AND closed_at < end`); without an index each dashboard scans every request
(0.4-0.7 s on the demo city's 60,000).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_service_requests_closed_at", "service_requests", ["closed_at"])


def downgrade() -> None:
    op.drop_index("ix_service_requests_closed_at", table_name="service_requests")
