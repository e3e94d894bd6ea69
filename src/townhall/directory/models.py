"""The public service directory, shaped like Open Referral HSDS 3.0, and live office status.

HSDS objects keep HSDS's UUID string ids, so an HSDS import keeps its identifiers and the HSDS API
serves them unchanged. Residents and staff address services and offices by slug instead.

Organizations: an HSDS organization is a `DirectoryOrganization` row linked one-to-one to the
accounts slice's `Organization` (the body that has staff, memberships and datasets). Name and
description stay in accounts (one source of truth for the office's name); the HSDS-only fields
(legal status, logo, ...) live here. Permissions follow the accounts organization: a manager
edits the services and offices of the organizations they belong to.

Offices are `Location`s with a slug: a place residents visit, with opening hours, a live status
and queues. Weekly hours, exceptions and closures are HSDS `schedules` rows; public holidays come
from the `holidays` package for the location's country and subdivision, in its time zone.

Small child objects with no life of their own (languages, accessibility notes, service areas)
are JSON lists on their parent, in HSDS shape with their ids.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from townhall.accounts.models import Organization
from townhall.db import Base, UTCDateTime, utcnow

SERVICE_STATUSES = ("active", "inactive", "defunct", "temporarily closed")
LOCATION_TYPES = ("physical", "postal", "virtual")
# What staff set; what residents see is computed from this and the schedule (see queries).
OFFICE_CONDITIONS = ("normal", "reduced", "unexpectedly_closed")
VISIT_EVENT_TYPES = ("issued", "called", "served", "no_show", "transferred")
CHANNELS = ("online", "in_person", "phone", "app", "mail")
CATEGORY_TAXONOMY = "townhall-categories"
LIFE_EVENT_TAXONOMY = "townhall-life-events"


def new_id() -> str:
    return str(uuid.uuid4())


class DirectoryOrganization(Base):
    __tablename__ = "directory_organizations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), unique=True
    )
    alternate_name: Mapped[str | None] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(320))
    website: Mapped[str | None] = mapped_column(String(1000))
    tax_status: Mapped[str | None] = mapped_column(String(200))
    tax_id: Mapped[str | None] = mapped_column(String(100))
    year_incorporated: Mapped[int | None] = mapped_column(Integer)
    legal_status: Mapped[str | None] = mapped_column(String(200))
    logo: Mapped[str | None] = mapped_column(String(1000))
    uri: Mapped[str | None] = mapped_column(String(1000))
    # HSDS allows a parent outside this directory, so no foreign key.
    parent_organization_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    organization: Mapped[Organization] = relationship(lazy="joined")


class Service(Base):
    __tablename__ = "directory_services"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    code: Mapped[str | None] = mapped_column(String(60), unique=True)
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_organizations.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(String(300))
    alternate_name: Mapped[str | None] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str | None] = mapped_column(String(1000))
    email: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(30), default="active")
    interpretation_services: Mapped[str | None] = mapped_column(Text)
    application_process: Mapped[str | None] = mapped_column(Text)
    fees_description: Mapped[str | None] = mapped_column(Text)
    wait_time: Mapped[str | None] = mapped_column(Text)
    accreditations: Mapped[str | None] = mapped_column(Text)
    eligibility_description: Mapped[str | None] = mapped_column(Text)
    minimum_age: Mapped[int | None] = mapped_column(Integer)
    maximum_age: Mapped[int | None] = mapped_column(Integer)
    assured_date: Mapped[date | None] = mapped_column(Date)
    assurer_email: Mapped[str | None] = mapped_column(String(320))
    licenses: Mapped[str | None] = mapped_column(Text)
    alert: Mapped[str | None] = mapped_column(Text)
    # Beyond HSDS (CPSV-AP and the resident pages): how to get it and how long it takes.
    steps: Mapped[list[str]] = mapped_column(JSON, default=list)
    processing_days: Mapped[int | None] = mapped_column(Integer)
    target_days: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    online_form_url: Mapped[str | None] = mapped_column(String(1000))
    accepts_requests: Mapped[bool] = mapped_column(Boolean, default=False)
    # Minutes one visit takes at a desk when no recent visits say otherwise.
    typical_visit_minutes: Mapped[int] = mapped_column(Integer, default=8)
    related_service_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    languages: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    service_areas: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # What HSDS carries that Townhall does not model (program, funding, metadata...), kept so
    # an import loses nothing.
    extras: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)

    organization: Mapped[DirectoryOrganization | None] = relationship(lazy="joined")
    required_documents: Mapped[list[RequiredDocument]] = relationship(
        order_by="RequiredDocument.position", lazy="selectin", cascade="all, delete-orphan"
    )
    cost_options: Mapped[list[CostOption]] = relationship(
        order_by="CostOption.position", lazy="selectin", cascade="all, delete-orphan"
    )
    terms: Mapped[list[ServiceTerm]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", back_populates="service"
    )
    service_at_locations: Mapped[list[ServiceAtLocation]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", back_populates="service"
    )


class Location(Base):
    """A place: an office residents visit (with a slug), or a postal or virtual location."""

    __tablename__ = "directory_locations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_organizations.id", ondelete="SET NULL"), index=True
    )
    location_type: Mapped[str] = mapped_column(String(20), default="physical")
    name: Mapped[str] = mapped_column(String(300))
    alternate_name: Mapped[str | None] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    transportation: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(1000))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    external_identifier: Mapped[str | None] = mapped_column(String(200))
    external_identifier_type: Mapped[str | None] = mapped_column(String(100))
    # One address per location (HSDS allows several; the rest go to `extras`).
    address_id: Mapped[str | None] = mapped_column(String(36))
    address_1: Mapped[str | None] = mapped_column(String(300))
    address_2: Mapped[str | None] = mapped_column(String(300))
    city: Mapped[str | None] = mapped_column(String(200))
    region: Mapped[str | None] = mapped_column(String(200))
    state_province: Mapped[str | None] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(20), index=True)
    country: Mapped[str | None] = mapped_column(String(2))
    address_type: Mapped[str] = mapped_column(String(20), default="physical")
    # Hours are read in this zone; public holidays come from country + subdivision.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    holiday_country: Mapped[str | None] = mapped_column(String(2))
    holiday_subdivision: Mapped[str | None] = mapped_column(String(10))
    observes_public_holidays: Mapped[bool] = mapped_column(Boolean, default=True)
    desks: Mapped[int] = mapped_column(Integer, default=1)
    wheelchair_accessible: Mapped[bool | None] = mapped_column(Boolean)
    district_code: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(320))
    languages: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    accessibility: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    extras: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Live status set by staff (not part of `updated_at`: it changes all day).
    condition: Mapped[str] = mapped_column(String(30), default="normal")
    status_message: Mapped[str | None] = mapped_column(Text)
    expected_return_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)

    organization: Mapped[DirectoryOrganization | None] = relationship(lazy="joined")


class ServiceAtLocation(Base):
    __tablename__ = "directory_service_at_locations"
    __table_args__ = (UniqueConstraint("service_id", "location_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    service_id: Mapped[str] = mapped_column(
        ForeignKey("directory_services.id", ondelete="CASCADE"), index=True
    )
    location_id: Mapped[str] = mapped_column(
        ForeignKey("directory_locations.id", ondelete="CASCADE"), index=True
    )
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    service: Mapped[Service] = relationship(back_populates="service_at_locations")
    location: Mapped[Location] = relationship(lazy="joined")


class Schedule(Base):
    """An HSDS schedule: a weekly interval (`freq` WEEKLY, `byday`, opens/closes in local time),
    or an exception for the dates `valid_from`..`valid_to` (special hours, or `closed`).

    A weekly interval whose `closes_at` is not after `opens_at` ends on the next day (a night
    counter open 22:00-02:00). Exceptions replace the weekly hours of the days they cover.
    """

    __tablename__ = "directory_schedules"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    service_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_services.id", ondelete="CASCADE"), index=True
    )
    location_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_locations.id", ondelete="CASCADE"), index=True
    )
    service_at_location_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_service_at_locations.id", ondelete="CASCADE"), index=True
    )
    is_exception: Mapped[bool] = mapped_column(Boolean, default=False)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    dtstart: Mapped[str | None] = mapped_column(String(40))
    timezone_offset: Mapped[float | None] = mapped_column(Float)  # HSDS `timezone` (UTC offset)
    until: Mapped[str | None] = mapped_column(String(40))
    count: Mapped[int | None] = mapped_column(Integer)
    wkst: Mapped[str | None] = mapped_column(String(2))
    freq: Mapped[str | None] = mapped_column(String(10))
    interval: Mapped[int | None] = mapped_column(Integer)
    byday: Mapped[str | None] = mapped_column(String(60))
    byweekno: Mapped[str | None] = mapped_column(String(200))
    bymonthday: Mapped[str | None] = mapped_column(String(200))
    byyearday: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    opens_at: Mapped[time | None] = mapped_column(Time)
    closes_at: Mapped[time | None] = mapped_column(Time)
    schedule_link: Mapped[str | None] = mapped_column(String(1000))
    attending_type: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Phone(Base):
    __tablename__ = "directory_phones"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    service_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_services.id", ondelete="CASCADE"), index=True
    )
    location_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_locations.id", ondelete="CASCADE"), index=True
    )
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_organizations.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_contacts.id", ondelete="CASCADE"), index=True
    )
    service_at_location_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_service_at_locations.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[str] = mapped_column(String(100))
    extension: Mapped[int | None] = mapped_column(Integer)
    type: Mapped[str | None] = mapped_column(String(30))
    description: Mapped[str | None] = mapped_column(Text)
    languages: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class Contact(Base):
    __tablename__ = "directory_contacts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    service_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_services.id", ondelete="CASCADE"), index=True
    )
    location_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_locations.id", ondelete="CASCADE"), index=True
    )
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_organizations.id", ondelete="CASCADE"), index=True
    )
    service_at_location_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_service_at_locations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str | None] = mapped_column(String(300))
    title: Mapped[str | None] = mapped_column(String(300))
    department: Mapped[str | None] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(320))


class RequiredDocument(Base):
    __tablename__ = "directory_required_documents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    service_id: Mapped[str] = mapped_column(
        ForeignKey("directory_services.id", ondelete="CASCADE"), index=True
    )
    document: Mapped[str] = mapped_column(Text)
    uri: Mapped[str | None] = mapped_column(String(1000))
    position: Mapped[int] = mapped_column(Integer, default=0)


class CostOption(Base):
    __tablename__ = "directory_cost_options"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    service_id: Mapped[str] = mapped_column(
        ForeignKey("directory_services.id", ondelete="CASCADE"), index=True
    )
    option: Mapped[str | None] = mapped_column(Text)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    amount_description: Mapped[str | None] = mapped_column(Text)
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Taxonomy(Base):
    __tablename__ = "directory_taxonomies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    uri: Mapped[str | None] = mapped_column(String(1000))
    version: Mapped[str | None] = mapped_column(String(50))


class TaxonomyTerm(Base):
    """A term: a category ("Civil Records"), a life event ("having a baby"), or an imported one."""

    __tablename__ = "directory_taxonomy_terms"
    __table_args__ = (
        UniqueConstraint("taxonomy_id", "code"),
        Index("ix_directory_taxonomy_terms_slug", "slug"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    taxonomy_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_taxonomies.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str | None] = mapped_column(String(100))
    slug: Mapped[str] = mapped_column(String(120))
    name: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    parent_id: Mapped[str | None] = mapped_column(String(36))
    taxonomy: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(20))
    term_uri: Mapped[str | None] = mapped_column(String(1000))

    taxonomy_detail: Mapped[Taxonomy | None] = relationship(lazy="joined")


class ServiceTerm(Base):
    """A service tagged with a term (HSDS expresses it as an `attribute`; this is its id)."""

    __tablename__ = "directory_service_terms"
    __table_args__ = (UniqueConstraint("service_id", "taxonomy_term_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    service_id: Mapped[str] = mapped_column(
        ForeignKey("directory_services.id", ondelete="CASCADE"), index=True
    )
    taxonomy_term_id: Mapped[str] = mapped_column(
        ForeignKey("directory_taxonomy_terms.id", ondelete="CASCADE"), index=True
    )
    value: Mapped[str | None] = mapped_column(Text)

    service: Mapped[Service] = relationship(back_populates="terms")
    term: Mapped[TaxonomyTerm] = relationship(lazy="joined")


class ServiceIncident(Base):
    """A service-level disruption ("ID cards unavailable until 14:00"), at one office or all."""

    __tablename__ = "directory_service_incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[str] = mapped_column(
        ForeignKey("directory_services.id", ondelete="CASCADE"), index=True
    )
    location_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_locations.id", ondelete="CASCADE"), index=True
    )
    message: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expected_end_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    created_by: Mapped[str] = mapped_column(String(400), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    service: Mapped[Service] = relationship(lazy="joined")
    location: Mapped[Location | None] = relationship(lazy="joined")


class VisitEvent(Base):
    """Every queue event as received, kept for the insights slice (waits, service times, no-shows).

    `event_id` is the sender's id: the same event sent twice is stored once.
    """

    __tablename__ = "directory_visit_events"
    __table_args__ = (Index("ix_directory_visit_events_location_at", "location_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(100), unique=True)
    location_id: Mapped[str] = mapped_column(
        ForeignKey("directory_locations.id", ondelete="CASCADE")
    )
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("directory_tickets.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(20))
    ticket_code: Mapped[str] = mapped_column(String(40))
    service_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_services.id", ondelete="SET NULL")
    )
    to_service_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_services.id", ondelete="SET NULL")
    )
    desk: Mapped[str | None] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(400), default="")


class Ticket(Base):
    """One visitor's ticket on one local business day, folded from its visit events.

    Each event sets only its own timestamp, and the state is derived from the timestamps, so
    events folded in any order give the same ticket.
    """

    __tablename__ = "directory_tickets"
    __table_args__ = (
        UniqueConstraint("location_id", "business_date", "code"),
        Index("ix_directory_tickets_location_service_state", "location_id", "service_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[str] = mapped_column(
        ForeignKey("directory_locations.id", ondelete="CASCADE")
    )
    business_date: Mapped[date] = mapped_column(Date)
    code: Mapped[str] = mapped_column(String(40))
    service_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_services.id", ondelete="SET NULL")
    )
    state: Mapped[str] = mapped_column(String(20), default="waiting")
    desk: Mapped[str | None] = mapped_column(String(40))
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    called_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    served_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    no_show_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    transferred_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_service_id: Mapped[str | None] = mapped_column(String(36))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OfficeStatusSignal(Base):
    """What the followers of an office's live status were last told (or, before anyone
    followed, what it was when last looked at): the state and the wait band. A change is
    announced only against this, so the same news is never sent twice. See
    `actions.watch_office_status` for the rule."""

    __tablename__ = "directory_office_signals"

    location_id: Mapped[str] = mapped_column(
        ForeignKey("directory_locations.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(30))
    wait_band: Mapped[int] = mapped_column(Integer, default=0)
    longest_wait_minutes: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    wait_announced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
