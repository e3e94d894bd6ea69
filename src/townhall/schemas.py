"""Shapes shared by every slice's API: the strict input base and the page envelope."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")

# Ids and version numbers fit a signed 64-bit column; larger values are refused as 422
# instead of overflowing the database driver.
MAX_ID = 2**63 - 1


class StrictInput(BaseModel):
    """Inputs refuse unknown fields, so a typo is an error instead of silently ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PublicOutput(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(PublicOutput, Generic[T]):
    ok: bool = True
    total: int
    limit: int
    offset: int
    items: list[T]
