"""service requests and notifications

Why: the service desk's own tables. `request_services` are the Open311 service definitions
(kept apart from the service directory of 0003 so the Open311 contract does not move when the
directory changes); `service_requests` with their history (`request_updates`), two-way
messages, attachments and staff reply templates; and the notify slice's versioned templates,
subscriptions, messages (GOV.UK Notify's lifecycle) and suppressed addresses. Written by hand
from the models (no dependency on 0003's tables), so it runs after whatever 0003 creates.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import townhall.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "request_services",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("group_name", sa.String(length=100), nullable=True),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("service_type", sa.String(length=20), nullable=False),
        sa.Column("service_notice", sa.Text(), nullable=True),
        sa.Column("organization_id", sa.Integer(), nullable=True),
        sa.Column("expected_days", sa.Float(), nullable=True),
        sa.Column("default_priority", sa.Integer(), nullable=False),
        sa.Column("location_required", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("directory_slug", sa.String(length=100), nullable=True),
        sa.Column("created_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_request_services_organization_id_organizations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_services")),
        sa.UniqueConstraint("code", name=op.f("uq_request_services_code")),
    )
    with op.batch_alter_table("request_services", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_request_services_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "service_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tracking_code", sa.String(length=24), nullable=False),
        sa.Column("submission_token", sa.String(length=40), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("sub_status", sa.String(length=30), nullable=False),
        sa.Column("resolution", sa.String(length=40), nullable=True),
        sa.Column("status_notes", sa.Text(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("public_description", sa.Text(), nullable=False),
        sa.Column("attribute_values", sa.JSON(), nullable=False),
        sa.Column("media_url", sa.String(length=2000), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("long", sa.Float(), nullable=True),
        sa.Column("address", sa.String(length=500), nullable=True),
        sa.Column("address_id", sa.String(length=100), nullable=True),
        sa.Column("zipcode", sa.String(length=20), nullable=True),
        sa.Column("district_code", sa.String(length=40), nullable=True),
        sa.Column("organization_id", sa.Integer(), nullable=True),
        sa.Column("assigned_user_id", sa.Integer(), nullable=True),
        sa.Column("duplicate_of_id", sa.Integer(), nullable=True),
        sa.Column("resident_name", sa.String(length=200), nullable=True),
        sa.Column("resident_email", sa.String(length=320), nullable=True),
        sa.Column("resident_phone", sa.String(length=40), nullable=True),
        sa.Column("resident_user_id", sa.Integer(), nullable=True),
        sa.Column("resident_key_hash", sa.String(length=64), nullable=True),
        sa.Column("device_id", sa.String(length=200), nullable=True),
        sa.Column("account_id", sa.String(length=200), nullable=True),
        sa.Column("api_token_id", sa.Integer(), nullable=True),
        sa.Column("client_hash", sa.String(length=32), nullable=True),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("requested_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expected_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sla_paused_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sla_paused_seconds", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_token_id"],
            ["api_tokens.id"],
            name=op.f("fk_service_requests_api_token_id_api_tokens"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["assigned_user_id"],
            ["users.id"],
            name=op.f("fk_service_requests_assigned_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["duplicate_of_id"],
            ["service_requests.id"],
            name=op.f("fk_service_requests_duplicate_of_id_service_requests"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_service_requests_organization_id_organizations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["resident_user_id"],
            ["users.id"],
            name=op.f("fk_service_requests_resident_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["request_services.id"],
            name=op.f("fk_service_requests_service_id_request_services"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_requests")),
        sa.UniqueConstraint("submission_token", name=op.f("uq_service_requests_submission_token")),
        sa.UniqueConstraint("tracking_code", name=op.f("uq_service_requests_tracking_code")),
    )
    with op.batch_alter_table("service_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_service_requests_assigned_user_id"), ["assigned_user_id"], unique=False
        )
        batch_op.create_index(
            "ix_service_requests_client_hash_requested",
            ["client_hash", "requested_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_service_requests_district_requested",
            ["district_code", "requested_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_service_requests_duplicate_of_id"), ["duplicate_of_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_service_requests_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index(
            "ix_service_requests_queue", ["status", "priority", "expected_at"], unique=False
        )
        batch_op.create_index("ix_service_requests_requested_at", ["requested_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_service_requests_service_id"), ["service_id"], unique=False
        )
        batch_op.create_index(
            "ix_service_requests_service_status_lat", ["service_id", "status", "lat"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_service_requests_sub_status"), ["sub_status"], unique=False
        )
        batch_op.create_index(
            "ix_service_requests_token_requested", ["api_token_id", "requested_at"], unique=False
        )
        batch_op.create_index("ix_service_requests_updated_at", ["updated_at"], unique=False)

    op.create_table(
        "request_updates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("from_sub_status", sa.String(length=30), nullable=True),
        sa.Column("to_sub_status", sa.String(length=30), nullable=True),
        sa.Column("public_note", sa.Text(), nullable=True),
        sa.Column("internal_note", sa.Text(), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("actor_label", sa.String(length=400), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_user_id"],
            ["users.id"],
            name=op.f("fk_request_updates_actor_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["service_requests.id"],
            name=op.f("fk_request_updates_request_id_service_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_updates")),
    )
    with op.batch_alter_table("request_updates", schema=None) as batch_op:
        batch_op.create_index("ix_request_updates_request_at", ["request_id", "at"], unique=False)

    op.create_table(
        "request_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("direction", sa.String(length=20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("author_user_id", sa.Integer(), nullable=True),
        sa.Column("author_label", sa.String(length=400), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_user_id"],
            ["users.id"],
            name=op.f("fk_request_messages_author_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["service_requests.id"],
            name=op.f("fk_request_messages_request_id_service_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_messages")),
    )
    with op.batch_alter_table("request_messages", schema=None) as batch_op:
        batch_op.create_index("ix_request_messages_request_at", ["request_id", "at"], unique=False)

    op.create_table(
        "request_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=20), nullable=False),
        sa.Column("created_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["service_requests.id"],
            name=op.f("fk_request_attachments_request_id_service_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_attachments")),
    )
    with op.batch_alter_table("request_attachments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_request_attachments_request_id"), ["request_id"], unique=False
        )

    op.create_table(
        "request_response_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("sub_status", sa.String(length=30), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_request_response_templates")),
        sa.UniqueConstraint("name", name=op.f("uq_request_response_templates_name")),
    )
    op.create_table(
        "notify_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=400), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_templates")),
        sa.UniqueConstraint("slug", "language", "version", name=op.f("uq_notify_templates_slug")),
    )
    op.create_table(
        "notify_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("target", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("unsubscribed_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=400), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_subscriptions")),
        sa.UniqueConstraint("token", name=op.f("uq_notify_subscriptions_token")),
    )
    with op.batch_alter_table("notify_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notify_subscriptions_topic_active", ["topic", "active"], unique=False
        )

    op.create_table(
        "notify_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("recipient", sa.String(length=2000), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=True),
        sa.Column("template_id", sa.Integer(), nullable=True),
        sa.Column("template_slug", sa.String(length=100), nullable=True),
        sa.Column("template_version", sa.Integer(), nullable=True),
        sa.Column("event_type", sa.String(length=100), nullable=True),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("created_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("dead_lettered_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["notify_subscriptions.id"],
            name=op.f("fk_notify_messages_subscription_id_notify_subscriptions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["notify_templates.id"],
            name=op.f("fk_notify_messages_template_id_notify_templates"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_messages")),
    )
    with op.batch_alter_table("notify_messages", schema=None) as batch_op:
        batch_op.create_index("ix_notify_messages_reference", ["reference"], unique=False)
        batch_op.create_index(
            "ix_notify_messages_status_next", ["status", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_notify_messages_subscription_id"), ["subscription_id"], unique=False
        )

    op.create_table(
        "notify_suppressions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("address", sa.String(length=2000), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("created_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["notify_messages.id"],
            name=op.f("fk_notify_suppressions_message_id_notify_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_suppressions")),
        sa.UniqueConstraint("address", name=op.f("uq_notify_suppressions_address")),
    )


def downgrade() -> None:

    op.drop_table("notify_suppressions")
    with op.batch_alter_table("notify_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notify_messages_subscription_id"))
        batch_op.drop_index("ix_notify_messages_status_next")
        batch_op.drop_index("ix_notify_messages_reference")

    op.drop_table("notify_messages")
    with op.batch_alter_table("notify_subscriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_notify_subscriptions_topic_active")

    op.drop_table("notify_subscriptions")
    op.drop_table("notify_templates")
    op.drop_table("request_response_templates")
    with op.batch_alter_table("request_attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_attachments_request_id"))

    op.drop_table("request_attachments")
    with op.batch_alter_table("request_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_request_messages_request_at")

    op.drop_table("request_messages")
    with op.batch_alter_table("request_updates", schema=None) as batch_op:
        batch_op.drop_index("ix_request_updates_request_at")

    op.drop_table("request_updates")
    with op.batch_alter_table("service_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_service_requests_updated_at")
        batch_op.drop_index("ix_service_requests_token_requested")
        batch_op.drop_index(batch_op.f("ix_service_requests_sub_status"))
        batch_op.drop_index("ix_service_requests_service_status_lat")
        batch_op.drop_index(batch_op.f("ix_service_requests_service_id"))
        batch_op.drop_index("ix_service_requests_requested_at")
        batch_op.drop_index("ix_service_requests_queue")
        batch_op.drop_index(batch_op.f("ix_service_requests_organization_id"))
        batch_op.drop_index(batch_op.f("ix_service_requests_duplicate_of_id"))
        batch_op.drop_index("ix_service_requests_district_requested")
        batch_op.drop_index("ix_service_requests_client_hash_requested")
        batch_op.drop_index(batch_op.f("ix_service_requests_assigned_user_id"))

    op.drop_table("service_requests")
    with op.batch_alter_table("request_services", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_services_organization_id"))

    op.drop_table("request_services")
