"""directory

Why: the public service directory, shaped like Open Referral HSDS 3.0 (organizations linked to
accounts' organizations, services, locations, service-at-location, schedules with weekly hours and
exceptions, phones, contacts, required documents, cost options, taxonomies and terms), plus live
office status: service incidents, queue tickets and every visit event (kept for insights).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import townhall.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "directory_taxonomies",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("uri", sa.String(length=1000), nullable=True),
        sa.Column("version", sa.String(length=50), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_taxonomies")),
        sa.UniqueConstraint("name", name=op.f("uq_directory_taxonomies_name")),
    )
    op.create_table(
        "directory_organizations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("alternate_name", sa.String(length=300), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("website", sa.String(length=1000), nullable=True),
        sa.Column("tax_status", sa.String(length=200), nullable=True),
        sa.Column("tax_id", sa.String(length=100), nullable=True),
        sa.Column("year_incorporated", sa.Integer(), nullable=True),
        sa.Column("legal_status", sa.String(length=200), nullable=True),
        sa.Column("logo", sa.String(length=1000), nullable=True),
        sa.Column("uri", sa.String(length=1000), nullable=True),
        sa.Column("parent_organization_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_directory_organizations_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_organizations")),
        sa.UniqueConstraint(
            "organization_id", name=op.f("uq_directory_organizations_organization_id")
        ),
    )
    op.create_table(
        "directory_taxonomy_terms",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("taxonomy_id", sa.String(length=36), nullable=True),
        sa.Column("code", sa.String(length=100), nullable=True),
        sa.Column("slug", sa.String(length=120), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("parent_id", sa.String(length=36), nullable=True),
        sa.Column("taxonomy", sa.String(length=200), nullable=True),
        sa.Column("language", sa.String(length=20), nullable=True),
        sa.Column("term_uri", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(
            ["taxonomy_id"],
            ["directory_taxonomies.id"],
            name=op.f("fk_directory_taxonomy_terms_taxonomy_id_directory_taxonomies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_taxonomy_terms")),
        sa.UniqueConstraint(
            "taxonomy_id", "code", name=op.f("uq_directory_taxonomy_terms_taxonomy_id")
        ),
    )
    op.create_index(
        "ix_directory_taxonomy_terms_slug", "directory_taxonomy_terms", ["slug"], unique=False
    )
    op.create_index(
        op.f("ix_directory_taxonomy_terms_taxonomy_id"),
        "directory_taxonomy_terms",
        ["taxonomy_id"],
        unique=False,
    )
    op.create_table(
        "directory_locations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("organization_id", sa.String(length=36), nullable=True),
        sa.Column("location_type", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("alternate_name", sa.String(length=300), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("transportation", sa.Text(), nullable=True),
        sa.Column("url", sa.String(length=1000), nullable=True),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("external_identifier", sa.String(length=200), nullable=True),
        sa.Column("external_identifier_type", sa.String(length=100), nullable=True),
        sa.Column("address_id", sa.String(length=36), nullable=True),
        sa.Column("address_1", sa.String(length=300), nullable=True),
        sa.Column("address_2", sa.String(length=300), nullable=True),
        sa.Column("city", sa.String(length=200), nullable=True),
        sa.Column("region", sa.String(length=200), nullable=True),
        sa.Column("state_province", sa.String(length=100), nullable=True),
        sa.Column("postal_code", sa.String(length=20), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("address_type", sa.String(length=20), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("holiday_country", sa.String(length=2), nullable=True),
        sa.Column("holiday_subdivision", sa.String(length=10), nullable=True),
        sa.Column("observes_public_holidays", sa.Boolean(), nullable=False),
        sa.Column("desks", sa.Integer(), nullable=False),
        sa.Column("wheelchair_accessible", sa.Boolean(), nullable=True),
        sa.Column("district_code", sa.String(length=20), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("accessibility", sa.JSON(), nullable=False),
        sa.Column("extras", sa.JSON(), nullable=False),
        sa.Column("condition", sa.String(length=30), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("expected_return_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("status_changed_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["directory_organizations.id"],
            name=op.f("fk_directory_locations_organization_id_directory_organizations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_locations")),
        sa.UniqueConstraint("slug", name=op.f("uq_directory_locations_slug")),
    )
    op.create_index(
        op.f("ix_directory_locations_organization_id"),
        "directory_locations",
        ["organization_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_directory_locations_postal_code"),
        "directory_locations",
        ["postal_code"],
        unique=False,
    )
    op.create_index(
        op.f("ix_directory_locations_updated_at"),
        "directory_locations",
        ["updated_at"],
        unique=False,
    )
    op.create_table(
        "directory_services",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("code", sa.String(length=60), nullable=True),
        sa.Column("organization_id", sa.String(length=36), nullable=True),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("alternate_name", sa.String(length=300), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("interpretation_services", sa.Text(), nullable=True),
        sa.Column("application_process", sa.Text(), nullable=True),
        sa.Column("fees_description", sa.Text(), nullable=True),
        sa.Column("wait_time", sa.Text(), nullable=True),
        sa.Column("accreditations", sa.Text(), nullable=True),
        sa.Column("eligibility_description", sa.Text(), nullable=True),
        sa.Column("minimum_age", sa.Integer(), nullable=True),
        sa.Column("maximum_age", sa.Integer(), nullable=True),
        sa.Column("assured_date", sa.Date(), nullable=True),
        sa.Column("assurer_email", sa.String(length=320), nullable=True),
        sa.Column("licenses", sa.Text(), nullable=True),
        sa.Column("alert", sa.Text(), nullable=True),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("processing_days", sa.Integer(), nullable=True),
        sa.Column("target_days", sa.Integer(), nullable=True),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("online_form_url", sa.String(length=1000), nullable=True),
        sa.Column("accepts_requests", sa.Boolean(), nullable=False),
        sa.Column("typical_visit_minutes", sa.Integer(), nullable=False),
        sa.Column("related_service_ids", sa.JSON(), nullable=False),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("service_areas", sa.JSON(), nullable=False),
        sa.Column("extras", sa.JSON(), nullable=False),
        sa.Column("created_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["directory_organizations.id"],
            name=op.f("fk_directory_services_organization_id_directory_organizations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_services")),
        sa.UniqueConstraint("code", name=op.f("uq_directory_services_code")),
        sa.UniqueConstraint("slug", name=op.f("uq_directory_services_slug")),
    )
    op.create_index(
        op.f("ix_directory_services_organization_id"),
        "directory_services",
        ["organization_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_directory_services_updated_at"), "directory_services", ["updated_at"], unique=False
    )
    op.create_table(
        "directory_cost_options",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("service_id", sa.String(length=36), nullable=False),
        sa.Column("option", sa.Text(), nullable=True),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("amount_description", sa.Text(), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["directory_services.id"],
            name=op.f("fk_directory_cost_options_service_id_directory_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_cost_options")),
    )
    op.create_index(
        op.f("ix_directory_cost_options_service_id"),
        "directory_cost_options",
        ["service_id"],
        unique=False,
    )
    op.create_table(
        "directory_required_documents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("service_id", sa.String(length=36), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("uri", sa.String(length=1000), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["directory_services.id"],
            name=op.f("fk_directory_required_documents_service_id_directory_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_required_documents")),
    )
    op.create_index(
        op.f("ix_directory_required_documents_service_id"),
        "directory_required_documents",
        ["service_id"],
        unique=False,
    )
    op.create_table(
        "directory_service_at_locations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("service_id", sa.String(length=36), nullable=False),
        sa.Column("location_id", sa.String(length=36), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["directory_locations.id"],
            name=op.f("fk_directory_service_at_locations_location_id_directory_locations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["directory_services.id"],
            name=op.f("fk_directory_service_at_locations_service_id_directory_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_service_at_locations")),
        sa.UniqueConstraint(
            "service_id", "location_id", name=op.f("uq_directory_service_at_locations_service_id")
        ),
    )
    op.create_index(
        op.f("ix_directory_service_at_locations_location_id"),
        "directory_service_at_locations",
        ["location_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_directory_service_at_locations_service_id"),
        "directory_service_at_locations",
        ["service_id"],
        unique=False,
    )
    op.create_table(
        "directory_service_incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.String(length=36), nullable=False),
        sa.Column("location_id", sa.String(length=36), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("starts_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expected_end_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=400), nullable=False),
        sa.Column("created_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["directory_locations.id"],
            name=op.f("fk_directory_service_incidents_location_id_directory_locations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["directory_services.id"],
            name=op.f("fk_directory_service_incidents_service_id_directory_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_service_incidents")),
    )
    op.create_index(
        op.f("ix_directory_service_incidents_location_id"),
        "directory_service_incidents",
        ["location_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_directory_service_incidents_resolved_at"),
        "directory_service_incidents",
        ["resolved_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_directory_service_incidents_service_id"),
        "directory_service_incidents",
        ["service_id"],
        unique=False,
    )
    op.create_table(
        "directory_service_terms",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("service_id", sa.String(length=36), nullable=False),
        sa.Column("taxonomy_term_id", sa.String(length=36), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["directory_services.id"],
            name=op.f("fk_directory_service_terms_service_id_directory_services"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["taxonomy_term_id"],
            ["directory_taxonomy_terms.id"],
            name=op.f("fk_directory_service_terms_taxonomy_term_id_directory_taxonomy_terms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_service_terms")),
        sa.UniqueConstraint(
            "service_id", "taxonomy_term_id", name=op.f("uq_directory_service_terms_service_id")
        ),
    )
    op.create_index(
        op.f("ix_directory_service_terms_service_id"),
        "directory_service_terms",
        ["service_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_directory_service_terms_taxonomy_term_id"),
        "directory_service_terms",
        ["taxonomy_term_id"],
        unique=False,
    )
    op.create_table(
        "directory_tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("location_id", sa.String(length=36), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("service_id", sa.String(length=36), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("desk", sa.String(length=40), nullable=True),
        sa.Column("issued_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("called_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("served_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("no_show_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("transferred_at", townhall.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("first_service_id", sa.String(length=36), nullable=True),
        sa.Column("updated_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["directory_locations.id"],
            name=op.f("fk_directory_tickets_location_id_directory_locations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["directory_services.id"],
            name=op.f("fk_directory_tickets_service_id_directory_services"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_tickets")),
        sa.UniqueConstraint(
            "location_id", "business_date", "code", name=op.f("uq_directory_tickets_location_id")
        ),
    )
    op.create_index(
        "ix_directory_tickets_location_service_state",
        "directory_tickets",
        ["location_id", "service_id", "state"],
        unique=False,
    )
    op.create_table(
        "directory_contacts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("service_id", sa.String(length=36), nullable=True),
        sa.Column("location_id", sa.String(length=36), nullable=True),
        sa.Column("organization_id", sa.String(length=36), nullable=True),
        sa.Column("service_at_location_id", sa.String(length=36), nullable=True),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("title", sa.String(length=300), nullable=True),
        sa.Column("department", sa.String(length=300), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["directory_locations.id"],
            name=op.f("fk_directory_contacts_location_id_directory_locations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["directory_organizations.id"],
            name=op.f("fk_directory_contacts_organization_id_directory_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_at_location_id"],
            ["directory_service_at_locations.id"],
            name=op.f(
                "fk_directory_contacts_service_at_location_id_directory_service_at_locations"
            ),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["directory_services.id"],
            name=op.f("fk_directory_contacts_service_id_directory_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_contacts")),
    )
    op.create_index(
        op.f("ix_directory_contacts_location_id"),
        "directory_contacts",
        ["location_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_directory_contacts_organization_id"),
        "directory_contacts",
        ["organization_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_directory_contacts_service_at_location_id"),
        "directory_contacts",
        ["service_at_location_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_directory_contacts_service_id"), "directory_contacts", ["service_id"], unique=False
    )
    op.create_table(
        "directory_schedules",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("service_id", sa.String(length=36), nullable=True),
        sa.Column("location_id", sa.String(length=36), nullable=True),
        sa.Column("service_at_location_id", sa.String(length=36), nullable=True),
        sa.Column("is_exception", sa.Boolean(), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("dtstart", sa.String(length=40), nullable=True),
        sa.Column("timezone_offset", sa.Float(), nullable=True),
        sa.Column("until", sa.String(length=40), nullable=True),
        sa.Column("count", sa.Integer(), nullable=True),
        sa.Column("wkst", sa.String(length=2), nullable=True),
        sa.Column("freq", sa.String(length=10), nullable=True),
        sa.Column("interval", sa.Integer(), nullable=True),
        sa.Column("byday", sa.String(length=60), nullable=True),
        sa.Column("byweekno", sa.String(length=200), nullable=True),
        sa.Column("bymonthday", sa.String(length=200), nullable=True),
        sa.Column("byyearday", sa.String(length=200), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("opens_at", sa.Time(), nullable=True),
        sa.Column("closes_at", sa.Time(), nullable=True),
        sa.Column("schedule_link", sa.String(length=1000), nullable=True),
        sa.Column("attending_type", sa.Text(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["directory_locations.id"],
            name=op.f("fk_directory_schedules_location_id_directory_locations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_at_location_id"],
            ["directory_service_at_locations.id"],
            name=op.f(
                "fk_directory_schedules_service_at_location_id_directory_service_at_locations"
            ),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["directory_services.id"],
            name=op.f("fk_directory_schedules_service_id_directory_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_schedules")),
    )
    op.create_index(
        op.f("ix_directory_schedules_location_id"),
        "directory_schedules",
        ["location_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_directory_schedules_service_at_location_id"),
        "directory_schedules",
        ["service_at_location_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_directory_schedules_service_id"),
        "directory_schedules",
        ["service_id"],
        unique=False,
    )
    op.create_table(
        "directory_visit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("location_id", sa.String(length=36), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("ticket_code", sa.String(length=40), nullable=False),
        sa.Column("service_id", sa.String(length=36), nullable=True),
        sa.Column("to_service_id", sa.String(length=36), nullable=True),
        sa.Column("desk", sa.String(length=40), nullable=True),
        sa.Column("occurred_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", townhall.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=400), nullable=False),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["directory_locations.id"],
            name=op.f("fk_directory_visit_events_location_id_directory_locations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["directory_services.id"],
            name=op.f("fk_directory_visit_events_service_id_directory_services"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["directory_tickets.id"],
            name=op.f("fk_directory_visit_events_ticket_id_directory_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["to_service_id"],
            ["directory_services.id"],
            name=op.f("fk_directory_visit_events_to_service_id_directory_services"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_visit_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_directory_visit_events_event_id")),
    )
    op.create_index(
        "ix_directory_visit_events_location_at",
        "directory_visit_events",
        ["location_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_directory_visit_events_ticket_id"),
        "directory_visit_events",
        ["ticket_id"],
        unique=False,
    )
    op.create_table(
        "directory_phones",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("service_id", sa.String(length=36), nullable=True),
        sa.Column("location_id", sa.String(length=36), nullable=True),
        sa.Column("organization_id", sa.String(length=36), nullable=True),
        sa.Column("contact_id", sa.String(length=36), nullable=True),
        sa.Column("service_at_location_id", sa.String(length=36), nullable=True),
        sa.Column("number", sa.String(length=100), nullable=False),
        sa.Column("extension", sa.Integer(), nullable=True),
        sa.Column("type", sa.String(length=30), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["directory_contacts.id"],
            name=op.f("fk_directory_phones_contact_id_directory_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["directory_locations.id"],
            name=op.f("fk_directory_phones_location_id_directory_locations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["directory_organizations.id"],
            name=op.f("fk_directory_phones_organization_id_directory_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_at_location_id"],
            ["directory_service_at_locations.id"],
            name=op.f("fk_directory_phones_service_at_location_id_directory_service_at_locations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["directory_services.id"],
            name=op.f("fk_directory_phones_service_id_directory_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_phones")),
    )
    op.create_index(
        op.f("ix_directory_phones_contact_id"), "directory_phones", ["contact_id"], unique=False
    )
    op.create_index(
        op.f("ix_directory_phones_location_id"), "directory_phones", ["location_id"], unique=False
    )
    op.create_index(
        op.f("ix_directory_phones_organization_id"),
        "directory_phones",
        ["organization_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_directory_phones_service_at_location_id"),
        "directory_phones",
        ["service_at_location_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_directory_phones_service_id"), "directory_phones", ["service_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_directory_phones_service_id"), table_name="directory_phones")
    op.drop_index(op.f("ix_directory_phones_service_at_location_id"), table_name="directory_phones")
    op.drop_index(op.f("ix_directory_phones_organization_id"), table_name="directory_phones")
    op.drop_index(op.f("ix_directory_phones_location_id"), table_name="directory_phones")
    op.drop_index(op.f("ix_directory_phones_contact_id"), table_name="directory_phones")
    op.drop_table("directory_phones")
    op.drop_index(op.f("ix_directory_visit_events_ticket_id"), table_name="directory_visit_events")
    op.drop_index("ix_directory_visit_events_location_at", table_name="directory_visit_events")
    op.drop_table("directory_visit_events")
    op.drop_index(op.f("ix_directory_schedules_service_id"), table_name="directory_schedules")
    op.drop_index(
        op.f("ix_directory_schedules_service_at_location_id"), table_name="directory_schedules"
    )
    op.drop_index(op.f("ix_directory_schedules_location_id"), table_name="directory_schedules")
    op.drop_table("directory_schedules")
    op.drop_index(op.f("ix_directory_contacts_service_id"), table_name="directory_contacts")
    op.drop_index(
        op.f("ix_directory_contacts_service_at_location_id"), table_name="directory_contacts"
    )
    op.drop_index(op.f("ix_directory_contacts_organization_id"), table_name="directory_contacts")
    op.drop_index(op.f("ix_directory_contacts_location_id"), table_name="directory_contacts")
    op.drop_table("directory_contacts")
    op.drop_index("ix_directory_tickets_location_service_state", table_name="directory_tickets")
    op.drop_table("directory_tickets")
    op.drop_index(
        op.f("ix_directory_service_terms_taxonomy_term_id"), table_name="directory_service_terms"
    )
    op.drop_index(
        op.f("ix_directory_service_terms_service_id"), table_name="directory_service_terms"
    )
    op.drop_table("directory_service_terms")
    op.drop_index(
        op.f("ix_directory_service_incidents_service_id"), table_name="directory_service_incidents"
    )
    op.drop_index(
        op.f("ix_directory_service_incidents_resolved_at"), table_name="directory_service_incidents"
    )
    op.drop_index(
        op.f("ix_directory_service_incidents_location_id"), table_name="directory_service_incidents"
    )
    op.drop_table("directory_service_incidents")
    op.drop_index(
        op.f("ix_directory_service_at_locations_service_id"),
        table_name="directory_service_at_locations",
    )
    op.drop_index(
        op.f("ix_directory_service_at_locations_location_id"),
        table_name="directory_service_at_locations",
    )
    op.drop_table("directory_service_at_locations")
    op.drop_index(
        op.f("ix_directory_required_documents_service_id"),
        table_name="directory_required_documents",
    )
    op.drop_table("directory_required_documents")
    op.drop_index(op.f("ix_directory_cost_options_service_id"), table_name="directory_cost_options")
    op.drop_table("directory_cost_options")
    op.drop_index(op.f("ix_directory_services_updated_at"), table_name="directory_services")
    op.drop_index(op.f("ix_directory_services_organization_id"), table_name="directory_services")
    op.drop_table("directory_services")
    op.drop_index(op.f("ix_directory_locations_updated_at"), table_name="directory_locations")
    op.drop_index(op.f("ix_directory_locations_postal_code"), table_name="directory_locations")
    op.drop_index(op.f("ix_directory_locations_organization_id"), table_name="directory_locations")
    op.drop_table("directory_locations")
    op.drop_index(
        op.f("ix_directory_taxonomy_terms_taxonomy_id"), table_name="directory_taxonomy_terms"
    )
    op.drop_index("ix_directory_taxonomy_terms_slug", table_name="directory_taxonomy_terms")
    op.drop_table("directory_taxonomy_terms")
    op.drop_table("directory_organizations")
    op.drop_table("directory_taxonomies")
