"""API shapes for the catalog."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from townhall.catalog.vocabularies import FREQUENCIES, LICENSES, THEMES
from townhall.schemas import PublicOutput, StrictInput

Visibility = Literal["public", "restricted", "private"]
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{1,99}$"


class _DatasetFields(StrictInput):
    title: str | None = Field(None, min_length=1, max_length=300)
    description: str | None = Field(None, max_length=100_000)
    keywords: list[str] | None = Field(None, max_length=100)
    themes: list[str] | None = Field(None, max_length=20)
    license_id: str | None = Field(None, max_length=100)
    contact_name: str | None = Field(None, max_length=200)
    contact_email: str | None = Field(None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    temporal_start: date | None = None
    temporal_end: date | None = None
    spatial: str | None = Field(None, max_length=100_000)
    frequency: str | None = Field(None, max_length=40)
    languages: list[str] | None = Field(None, max_length=20)
    landing_page: str | None = Field(None, max_length=1000, pattern=r"^https?://")
    conforms_to: list[str] | None = Field(None, max_length=20)
    visibility: Visibility | None = None

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = [k.strip() for k in value if k.strip()]
        if any(len(k) > 100 for k in cleaned):
            raise ValueError("a keyword is longer than 100 characters")
        return list(dict.fromkeys(cleaned))

    @field_validator("themes")
    @classmethod
    def _themes(cls, value: list[str] | None) -> list[str] | None:
        unknown = [t for t in value or [] if t not in THEMES]
        if unknown:
            raise ValueError(
                f"unknown theme(s) {unknown}; use EU data-theme codes {sorted(THEMES)}"
            )
        return value

    @field_validator("license_id")
    @classmethod
    def _license(cls, value: str | None) -> str | None:
        if value is not None and value not in LICENSES:
            raise ValueError(f"unknown licence {value!r}; see GET /api/v1/licenses")
        return value

    @field_validator("frequency")
    @classmethod
    def _frequency(cls, value: str | None) -> str | None:
        if value is not None and value not in FREQUENCIES:
            raise ValueError(f"unknown frequency {value!r}; use one of {sorted(FREQUENCIES)}")
        return value

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str] | None) -> list[str] | None:
        for code in value or []:
            if not (2 <= len(code) <= 3 and code.isalpha() and code.islower()):
                raise ValueError(f"language {code!r} is not an ISO 639 code such as 'en'")
        return value


# Page routes under /datasets/ that a dataset slug would shadow.
RESERVED_SLUGS = frozenset({"new", "late", "search", "upload"})


class DatasetCreate(_DatasetFields):
    slug: str = Field(pattern=SLUG_PATTERN)

    @field_validator("slug")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_SLUGS:
            raise ValueError(f"{value!r} is reserved for a page; choose another slug")
        return value

    title: str = Field(min_length=1, max_length=300)
    organization: str = Field(min_length=1, max_length=100, description="Organization slug.")


class DatasetUpdate(_DatasetFields):
    pass


class ResourceCreate(StrictInput):
    name: str = Field(min_length=1, max_length=300)
    description: str = Field("", max_length=10_000)
    format: str = Field("", max_length=40)
    url: str | None = Field(None, max_length=2000, pattern=r"^https?://")


class ColumnPublic(PublicOutput):
    name: str
    type: str
    nullable: bool = True
    description: str | None = None


class VersionPublic(PublicOutput):
    number: int
    resource_id: int
    status: str
    row_count: int
    columns: list[dict[str, Any]]
    schema_changes: dict[str, Any]
    source_name: str
    source_sha256: str | None
    published_by: str
    created_at: datetime


class ResourcePublic(PublicOutput):
    id: int
    name: str
    description: str
    format: str
    url: str | None
    datastore_active: bool
    size_bytes: int | None
    published_version: int | None = None
    created_at: datetime
    updated_at: datetime


class FreshnessPublic(PublicOutput):
    frequency: str | None
    last_published_at: datetime | None
    next_update_due: datetime | None
    late: bool


class DatasetPublic(PublicOutput):
    id: int
    slug: str
    title: str
    description: str
    organization: str
    organization_name: str
    keywords: list[str]
    themes: list[str]
    license_id: str | None
    contact_name: str | None
    contact_email: str | None
    temporal_start: date | None
    temporal_end: date | None
    spatial: str | None
    frequency: str | None
    languages: list[str]
    landing_page: str | None
    conforms_to: list[str]
    visibility: str
    state: str
    created_at: datetime
    updated_at: datetime
    freshness: FreshnessPublic
    resources: list[ResourcePublic]


class FacetValue(PublicOutput):
    value: str
    count: int


class SearchResult(PublicOutput):
    ok: bool = True
    total: int
    limit: int
    offset: int
    items: list[DatasetPublic]
    facets: dict[str, list[FacetValue]]
