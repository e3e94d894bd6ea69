"""Column types: DuckDB's physical types, and the portable names the API and the catalog show.

The portable names are Frictionless Table Schema types (`integer`, `number`, `boolean`, `date`,
`datetime`, `time`, `duration`, `string`, `object`, `array`, `any`) plus `geometry` for spatial
columns, which Table Schema has no single type for.
"""

from __future__ import annotations

import re
from typing import Any

_INTEGER = re.compile(r"^(U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)|INT\d*|UHUGEINT)$")
_NUMBER = re.compile(r"^(DOUBLE|FLOAT|REAL|DECIMAL(\(\d+,\s*\d+\))?|NUMERIC.*)$")


def logical_type(db_type: str) -> str:
    """The portable name of a DuckDB type (`BIGINT` -> `integer`, `GEOMETRY('EPSG:4326')` ->
    `geometry`); `any` for types with no better name."""
    upper = db_type.strip().upper()
    if upper.startswith("GEOMETRY"):
        return "geometry"
    if _INTEGER.match(upper):
        return "integer"
    if _NUMBER.match(upper):
        return "number"
    if upper == "BOOLEAN":
        return "boolean"
    if upper == "DATE":
        return "date"
    if upper.startswith("TIMESTAMP"):
        return "datetime"
    if upper.startswith("TIME"):
        return "time"
    if upper == "INTERVAL":
        return "duration"
    if upper in ("VARCHAR", "UUID") or upper.startswith("ENUM"):
        return "string"
    if upper.endswith("[]") or upper.startswith(("LIST", "ARRAY")) or re.search(r"\[\d+\]$", upper):
        return "array"
    if upper.startswith(("STRUCT", "MAP", "JSON", "UNION")):
        return "object"
    return "any"


def is_text(db_type: str) -> bool:
    return db_type.strip().upper() == "VARCHAR"


def is_geometry(db_type: str) -> bool:
    return db_type.strip().upper().startswith("GEOMETRY")


def is_numeric(db_type: str) -> bool:
    return logical_type(db_type) in ("integer", "number")


def is_orderable(db_type: str) -> bool:
    """Whether values of the type can be sorted and compared with < and > (and so serve as a
    keyset cursor key)."""
    return logical_type(db_type) in (
        "integer",
        "number",
        "boolean",
        "date",
        "datetime",
        "time",
        "duration",
        "string",
    )


def column_entry(name: str, db_type: str, nullable: bool = True, **extra: Any) -> dict[str, Any]:
    """One entry of a version's `columns`: `{name, type, db_type, nullable}` (+ extras)."""
    return {
        "name": name,
        "type": logical_type(db_type),
        "db_type": db_type,
        "nullable": nullable,
        **extra,
    }


# Table Schema type -> the DuckDB type a declared field is cast to.
TABLE_SCHEMA_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "datetime": "TIMESTAMP",
    "time": "TIME",
    "year": "INTEGER",
    "yearmonth": "VARCHAR",
    "duration": "INTERVAL",
    "object": "JSON",
    "array": "JSON",
    "geojson": "JSON",
    "geopoint": "VARCHAR",
    "any": "VARCHAR",
}
