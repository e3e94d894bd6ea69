"""API shapes of the datastore: query pages, SQL requests, ingest results.

Query pages are written by `query.QueryResult.to_json_bytes` (rows spliced in as DuckDB rendered
them); these models document the same shape in OpenAPI.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from townhall.schemas import PublicOutput, StrictInput


class FieldPublic(PublicOutput):
    name: str
    type: str = Field(
        description="integer, number, boolean, date, datetime, time, duration, string, object, "
        "array, geometry or any"
    )


class QueryPage(PublicOutput):
    ok: bool = True
    rows: list[dict[str, Any]]
    fields: list[FieldPublic]
    total: int | None = Field(description="Matching rows; null when unknown.")
    total_estimated: bool = Field(description="True when `total` is an estimate.")
    truncated: bool = Field(description="True when the row cap cut the answer short.")
    elapsed_ms: float
    version: int | None = Field(description="The dataset version served.")
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")
    resource_id: int | None = None
    offset: int | None = None
    limit: int | None = None
    tables: list[str] | None = Field(None, description="SQL only: the tables read, slug@version.")
    served_from: str | None = Field(
        None,
        description="`copy`: read from this node's serving copy of the version (for SQL: at "
        "least one table); `lake`: read from the lake.",
    )


class SqlQuery(StrictInput):
    sql: str = Field(min_length=1, max_length=20_000, description="One read-only SELECT.")
    version: int | None = Field(
        None, ge=1, description="Dataset-scoped endpoint only: the version its slug means."
    )


class ColumnPublic(PublicOutput):
    name: str
    type: str
    db_type: str | None = None
    nullable: bool = True
    format: str | None = Field(None, description="`geojson` for geometry kept as GeoJSON text.")


class IngestPublic(PublicOutput):
    ok: bool = True
    dataset: str
    resource_id: int
    version: int
    status: str
    row_count: int
    columns: list[ColumnPublic]
    schema_changes: dict[str, Any]
    source_name: str
    source_sha256: str | None
    source_bytes: int | None
    validation_report: dict[str, Any]
    published_by: str
    created_at: datetime


class FetchQueued(PublicOutput):
    ok: bool = True
    resource_id: int
    url: str
    task_id: str
