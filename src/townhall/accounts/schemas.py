"""API shapes for accounts."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from townhall.schemas import PublicOutput, StrictInput

Role = Literal["admin", "publisher", "manager", "staff", "partner"]


class OrganizationCreate(StrictInput):
    slug: str = Field(min_length=2, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str = Field(min_length=1, max_length=300)
    kind: Literal["office", "department", "agency", "partner"] = "office"
    description: str = Field("", max_length=10_000)


class OrganizationPublic(PublicOutput):
    id: int
    slug: str
    name: str
    kind: str
    description: str


class UserCreate(StrictInput):
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    password: str | None = Field(None, min_length=10, max_length=1000)
    role: Role
    display_name: str = Field("", max_length=200)
    organizations: list[str] = Field(default_factory=list, max_length=100)


class UserUpdate(StrictInput):
    role: Role | None = None
    is_active: bool | None = None
    display_name: str | None = Field(None, max_length=200)


class UserPublic(PublicOutput):
    id: int
    email: str
    display_name: str
    role: str
    is_active: bool
    organizations: list[str]
    created_at: datetime


class MePublic(UserPublic):
    permissions: list[str]
    via: str


class TokenCreate(StrictInput):
    name: str = Field("", max_length=200)
    scopes: list[str] = Field(default_factory=list, max_length=50)
    expires_in_days: int | None = Field(365, ge=1, le=3650)


class TokenPublic(PublicOutput):
    id: int
    user_id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenPublic):
    token: str = Field(description="The token itself. Shown once; store it now.")
