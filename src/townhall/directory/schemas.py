"""API shapes for the directory's native API."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from townhall.directory.hours import WEEKDAY_CODES
from townhall.schemas import PublicOutput, StrictInput

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,99}$"
URL_PATTERN = r"^https?://"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+$"
Channel = Literal["online", "in_person", "phone", "app", "mail"]
ServiceStatus = Literal["active", "inactive", "defunct", "temporarily closed"]
Weekday = Literal["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


def language_doc(code: str, name: str | None = None) -> dict[str, Any]:
    """An HSDS language object with a stable id derived from its code."""
    doc = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"townhall:language:{code}")), "code": code}
    if name:
        doc["name"] = name
    return doc


class DocumentIn(StrictInput):
    document: str = Field(min_length=1, max_length=2000)
    uri: str | None = Field(None, max_length=1000, pattern=URL_PATTERN)


class CostOptionIn(StrictInput):
    option: str | None = Field(None, max_length=500)
    amount: Decimal | None = Field(None, ge=0, le=10_000_000, decimal_places=2)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    amount_description: str | None = Field(None, max_length=2000)
    valid_from: date | None = None
    valid_to: date | None = None


class LanguageIn(StrictInput):
    code: str = Field(pattern=r"^[a-z]{2,3}$")
    name: str | None = Field(None, max_length=100)


class _ServiceFields(StrictInput):
    name: str | None = Field(None, min_length=1, max_length=300)
    alternate_name: str | None = Field(None, max_length=300)
    description: str | None = Field(None, max_length=20_000)
    code: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,60}$")
    url: str | None = Field(None, max_length=1000, pattern=URL_PATTERN)
    email: str | None = Field(None, max_length=320, pattern=EMAIL_PATTERN)
    status: ServiceStatus | None = None
    interpretation_services: str | None = Field(None, max_length=2000)
    application_process: str | None = Field(None, max_length=10_000)
    fees_description: str | None = Field(None, max_length=2000)
    wait_time: str | None = Field(None, max_length=500)
    eligibility_description: str | None = Field(None, max_length=5000)
    minimum_age: int | None = Field(None, ge=0, le=150)
    maximum_age: int | None = Field(None, ge=0, le=150)
    alert: str | None = Field(None, max_length=2000)
    steps: list[str] | None = Field(None, max_length=50)
    processing_days: int | None = Field(None, ge=0, le=3650)
    target_days: int | None = Field(None, ge=0, le=3650)
    channels: list[Channel] | None = Field(None, max_length=5)
    keywords: list[str] | None = Field(None, max_length=100)
    online_form_url: str | None = Field(None, max_length=1000, pattern=URL_PATTERN)
    accepts_requests: bool | None = None
    typical_visit_minutes: int | None = Field(None, ge=1, le=480)
    languages: list[LanguageIn] | None = Field(None, max_length=50)
    documents: list[DocumentIn] | None = Field(None, max_length=100)
    cost_options: list[CostOptionIn] | None = Field(None, max_length=50)
    categories: list[str] | None = Field(None, max_length=20)
    life_events: list[str] | None = Field(None, max_length=20)
    locations: list[str] | None = Field(None, max_length=500, description="Office slugs.")
    related_services: list[str] | None = Field(None, max_length=50)
    phone: str | None = Field(None, max_length=100)

    @field_validator("keywords", "categories", "life_events", "steps")
    @classmethod
    def _clean_list(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = [v.strip() for v in value if v.strip()]
        if any(len(v) > 500 for v in cleaned):
            raise ValueError("an entry is longer than 500 characters")
        return list(dict.fromkeys(cleaned))

    @model_validator(mode="after")
    def _ages(self) -> _ServiceFields:
        if (
            self.minimum_age is not None
            and self.maximum_age is not None
            and self.minimum_age > self.maximum_age
        ):
            raise ValueError("minimum_age must not be above maximum_age")
        return self

    def action_fields(self, *, exclude_unset: bool) -> dict[str, Any]:
        data = self.model_dump(exclude_unset=exclude_unset, exclude={"slug", "organization"})
        if data.get("languages") is not None:
            data["languages"] = [
                language_doc(item["code"], item.get("name")) for item in data["languages"]
            ]
        if data.get("documents") is not None:
            data["documents"] = [
                {k: v for k, v in d.items() if v is not None} for d in data["documents"]
            ]
        return data


class ServiceCreate(_ServiceFields):
    slug: str = Field(pattern=SLUG_PATTERN)
    name: str = Field(min_length=1, max_length=300)
    organization: str = Field(min_length=1, max_length=100, description="Organization slug.")


class ServiceUpdate(_ServiceFields):
    pass


class HoursInterval(StrictInput):
    day: Weekday
    opens: time
    closes: time = Field(description="Not after `opens`: the interval ends the next day.")

    def as_tuple(self) -> tuple[int, time, time]:
        return (WEEKDAY_CODES.index(self.day), self.opens, self.closes)


class _LocationFields(StrictInput):
    name: str | None = Field(None, min_length=1, max_length=300)
    alternate_name: str | None = Field(None, max_length=300)
    description: str | None = Field(None, max_length=20_000)
    transportation: str | None = Field(None, max_length=2000)
    url: str | None = Field(None, max_length=1000, pattern=URL_PATTERN)
    location_type: Literal["physical", "postal", "virtual"] | None = None
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    address_1: str | None = Field(None, max_length=300)
    address_2: str | None = Field(None, max_length=300)
    city: str | None = Field(None, max_length=200)
    region: str | None = Field(None, max_length=200)
    state_province: str | None = Field(None, max_length=100)
    postal_code: str | None = Field(None, max_length=20)
    country: str | None = Field(None, pattern=r"^[A-Z]{2}$")
    timezone: str | None = Field(None, max_length=64, description="IANA zone, e.g. Europe/Paris.")
    holiday_country: str | None = Field(None, pattern=r"^[A-Z]{2}$")
    holiday_subdivision: str | None = Field(None, max_length=10)
    observes_public_holidays: bool | None = None
    desks: int | None = Field(None, ge=1, le=500)
    wheelchair_accessible: bool | None = None
    district_code: str | None = Field(None, max_length=20)
    email: str | None = Field(None, max_length=320, pattern=EMAIL_PATTERN)
    phone: str | None = Field(None, max_length=100)

    @model_validator(mode="after")
    def _both_coordinates(self) -> _LocationFields:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give latitude and longitude together")
        return self


class LocationCreate(_LocationFields):
    slug: str = Field(pattern=SLUG_PATTERN)
    name: str = Field(min_length=1, max_length=300)
    organization: str | None = Field(None, min_length=1, max_length=100)
    timezone: str = Field("UTC", max_length=64)
    hours: list[HoursInterval] = Field(default_factory=list, max_length=100)


class LocationUpdate(_LocationFields):
    pass


class HoursReplace(StrictInput):
    hours: list[HoursInterval] = Field(max_length=100)


class ExceptionCreate(StrictInput):
    valid_from: date
    valid_to: date | None = None
    closed: bool = True
    opens_at: time | None = None
    closes_at: time | None = None
    note: str = Field("", max_length=500)


class OfficeStatusUpdate(StrictInput):
    condition: Literal["normal", "reduced", "unexpectedly_closed"]
    message: str | None = Field(None, max_length=1000)
    expected_return_at: datetime | None = None


class OfficeFollow(StrictInput):
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


class IncidentCreate(StrictInput):
    message: str = Field(min_length=1, max_length=1000)
    office: str | None = Field(None, max_length=100, description="Office slug; none for all.")
    expected_end_at: datetime | None = None


class VisitEventIn(StrictInput):
    event_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")
    type: Literal["issued", "called", "served", "no_show", "transferred"]
    ticket: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9-]+$")
    service: str | None = Field(None, max_length=100, description="Service slug, code or id.")
    to_service: str | None = Field(None, max_length=100)
    desk: str | None = Field(None, max_length=40)
    occurred_at: datetime | None = None


class TicketIssue(StrictInput):
    service: str = Field(min_length=1, max_length=100)


class CallNext(StrictInput):
    desk: str = Field(min_length=1, max_length=40)
    services: list[str] = Field(default_factory=list, max_length=50)


# --- outputs ---------------------------------------------------------------------------------


class CostOptionPublic(PublicOutput):
    option: str | None
    amount: Decimal | None
    currency: str | None
    amount_description: str | None


class ServiceSummary(PublicOutput):
    id: str
    slug: str
    code: str | None
    name: str
    description: str
    status: str
    organization: str | None
    categories: list[str]
    life_events: list[str]
    updated_at: datetime


class ServicePublic(ServiceSummary):
    alternate_name: str | None
    url: str | None
    email: str | None
    application_process: str | None
    eligibility_description: str | None
    fees_description: str | None
    minimum_age: int | None
    maximum_age: int | None
    alert: str | None
    steps: list[str]
    processing_days: int | None
    target_days: int | None
    channels: list[str]
    keywords: list[str]
    online_form_url: str | None
    accepts_requests: bool
    typical_visit_minutes: int
    languages: list[dict[str, Any]]
    documents: list[str]
    cost_options: list[CostOptionPublic]
    locations: list[str]
    related_services: list[str]
    created_at: datetime


class ServicePage(PublicOutput):
    ok: bool = True
    total: int
    limit: int
    offset: int
    items: list[ServiceSummary]
    did_you_mean: list[str] = Field(default_factory=list)


class HoursPublic(PublicOutput):
    day: str
    opens: time
    closes: time


class ExceptionPublic(PublicOutput):
    id: str
    valid_from: date | None
    valid_to: date | None
    closed: bool
    opens_at: time | None
    closes_at: time | None
    note: str | None


class OfficeStatusPublic(PublicOutput):
    state: str
    label: str
    message: str | None
    expected_return_at: datetime | None
    closes_at: datetime | None
    next_opens_at: datetime | None
    closed_reason: str | None


class QueuePublic(PublicOutput):
    service: str
    service_name: str
    waiting: int
    estimated_wait_minutes: int
    average_visit_minutes: float
    served_today: int


class LocationPublic(PublicOutput):
    id: str
    slug: str
    name: str
    organization: str | None
    location_type: str
    description: str
    latitude: float | None
    longitude: float | None
    address_1: str | None
    address_2: str | None
    city: str | None
    state_province: str | None
    postal_code: str | None
    country: str | None
    timezone: str
    holiday_country: str | None
    holiday_subdivision: str | None
    observes_public_holidays: bool
    desks: int
    wheelchair_accessible: bool | None
    transportation: str | None
    email: str | None
    phone: str | None
    hours: list[HoursPublic]
    exceptions: list[ExceptionPublic]
    status: OfficeStatusPublic
    updated_at: datetime


class IncidentPublic(PublicOutput):
    id: int
    service: str
    office: str | None
    message: str
    starts_at: datetime
    expected_end_at: datetime | None
    resolved_at: datetime | None


class OfficeLive(PublicOutput):
    office: str
    name: str
    status: OfficeStatusPublic
    status_text: str
    queues: list[QueuePublic]
    waiting: int
    served_today: int
    incidents: list[dict[str, Any]]
    at: datetime


class NearbyPublic(PublicOutput):
    office: str
    name: str
    address: str | None
    latitude: float | None
    longitude: float | None
    distance_km: float | None
    status: OfficeStatusPublic
    waiting: int | None
    estimated_wait_minutes: int | None


class TicketPublic(PublicOutput):
    ticket: str
    office: str
    service: str | None
    state: str
    desk: str | None
    business_date: date
    issued_at: datetime | None
    called_at: datetime | None
    served_at: datetime | None


class VisitEventResult(PublicOutput):
    ok: bool = True
    duplicate: bool
    event_id: str
    ticket: TicketPublic
    queue: list[QueuePublic]


class ImportResult(PublicOutput):
    ok: bool = True
    created: dict[str, int]
    updated: dict[str, int]
    warnings: list[str]
