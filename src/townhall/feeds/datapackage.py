"""Frictionless Data Package (v1 profiles) describing one dataset and its tables.

Each table resource points at its whole-table CSV download and carries a Table Schema built
from the published version's columns, so `frictionless validate` of the descriptor checks the
data itself. Resources that only link elsewhere are listed as plain data resources.
"""

from __future__ import annotations

import re
from typing import Any

from townhall.catalog.models import Dataset, DatasetVersion, Resource
from townhall.catalog.vocabularies import LICENSES, THEMES
from townhall.feeds import links

_NAME = re.compile(r"[^a-z0-9._-]+")


def table_schema_type(column_type: str) -> str:
    """A DuckDB column type as a Table Schema field type."""
    kind = column_type.strip().upper()
    if kind.endswith("[]") or kind.startswith(("LIST", "STRUCT", "MAP", "UNION", "JSON")):
        return "string"  # nested values arrive in CSV as text
    if "INT" in kind:
        return "integer"
    if kind.startswith(("DECIMAL", "NUMERIC", "DOUBLE", "FLOAT", "REAL")):
        return "number"
    if kind.startswith("BOOL"):
        return "boolean"
    if kind.startswith("TIMESTAMP") or kind == "DATETIME":
        return "datetime"
    if kind == "DATE":
        return "date"
    if kind.startswith("TIME"):
        return "time"
    if kind == "INTERVAL":
        return "duration"
    return "string"


def resource_name(resource: Resource, taken: set[str]) -> str:
    """A Data Package resource name (lower case, `-._` only), unique within the package."""
    name = _NAME.sub("-", resource.name.lower()).strip("-._") or f"resource-{resource.id}"
    if name in taken:
        name = f"{name}-{resource.id}"
    taken.add(name)
    return name


# The catalog's portable column types that a CSV download writes as they are.
_CSV_TYPES = frozenset(
    {"integer", "number", "boolean", "date", "datetime", "time", "duration", "string"}
)


def column_type(column: dict[str, Any]) -> str:
    """The Table Schema type of a version's column as the CSV download writes it: geometry
    becomes WKT text, nested values text."""
    if column.get("db_type"):
        return table_schema_type(str(column["db_type"]))
    kind = str(column.get("type", "string"))
    if kind in _CSV_TYPES:
        return kind
    return table_schema_type(kind) if kind.isupper() else "string"


def table_schema(version: DatasetVersion) -> dict[str, Any]:
    fields = []
    for column in version.columns:
        field: dict[str, Any] = {"name": column["name"], "type": column_type(column)}
        if column.get("description"):
            field["description"] = column["description"]
        fields.append(field)
    return {"fields": fields}


def descriptor(
    dataset: Dataset, versions: dict[int, DatasetVersion], *, base_url: str
) -> dict[str, Any]:
    """The dataset's `datapackage.json` descriptor."""
    taken: set[str] = set()
    resources: list[dict[str, Any]] = []
    for resource in dataset.resources:
        version = versions.get(resource.id)
        item: dict[str, Any] = {"name": resource_name(resource, taken), "title": resource.name}
        if resource.description:
            item["description"] = resource.description
        if resource.datastore_active and version is not None:
            item.update(
                {
                    "profile": "tabular-data-resource",
                    "path": links.download_url(base_url, dataset, resource),
                    "format": "csv",
                    "mediatype": "text/csv",
                    "encoding": "utf-8",
                    "schema": table_schema(version),
                }
            )
        elif resource.url:
            item.update({"profile": "data-resource", "path": resource.url})
            if resource.format:
                item["format"] = resource.format.lower()
        else:
            continue  # a table resource not loaded yet has nothing to point at
        resources.append(item)
    tabular = bool(resources) and all(r["profile"] == "tabular-data-resource" for r in resources)
    package: dict[str, Any] = {
        "profile": "tabular-data-package" if tabular else "data-package",
        "name": dataset.slug,
        "id": links.dataset_url(base_url, dataset.slug),
        "title": dataset.title,
        "homepage": dataset.landing_page or links.dataset_url(base_url, dataset.slug),
        "created": dataset.created_at.isoformat(),
        "contributors": [
            {
                "title": dataset.organization.name,
                "role": "publisher",
                "path": links.organization_url(base_url, dataset.organization.slug),
            }
        ],
        "resources": resources,
    }
    if dataset.description:
        package["description"] = dataset.description
    keywords = list(dataset.keywords or []) + [
        THEMES[t] for t in dataset.themes or [] if t in THEMES
    ]
    if keywords:
        package["keywords"] = list(dict.fromkeys(keywords))
    license = LICENSES.get(dataset.license_id or "")
    if license is not None:
        entry = {"name": license.id.lower(), "title": license.title}
        if license.url:
            entry["path"] = license.url
        package["licenses"] = [entry]
    return package
