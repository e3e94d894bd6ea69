"""DCAT-US 1.1 (Project Open Data) `data.json`, valid against the federal v1.1 JSON Schema.

The federal schema requires `bureauCode` and `programCode` (OMB codes) even of a city: a
dataset may carry its own in `extras` (`bureauCode`, `programCode`); otherwise `000:00` and
`000:000` say "not a federal agency", the convention of state and local catalogs. Keywords,
description and contact are required too: a dataset without keywords lists its theme labels
(or its organization), one without a description repeats its title, and one without a contact
email names its organization's email, then the portal's sender address.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from townhall.catalog.models import Dataset, DatasetVersion
from townhall.catalog.vocabularies import FREQUENCY_ISO8601, LICENSES, THEMES
from townhall.feeds import links
from townhall.feeds.dcat import FILE_TYPES

CONFORMS_TO = "https://project-open-data.cio.gov/v1.1/schema"
CONTEXT = "https://project-open-data.cio.gov/v1.1/schema/catalog.jsonld"
DESCRIBED_BY = "https://project-open-data.cio.gov/v1.1/schema/catalog.json"
NON_FEDERAL_BUREAU = "000:00"
NON_FEDERAL_PROGRAM = "000:000"


def _codes(dataset: Dataset, key: str, default: str) -> list[str]:
    value = (dataset.extras or {}).get(key)
    if isinstance(value, str) and value.strip():
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and value:
        return [str(v) for v in value]
    return [default]


def dataset_entry(
    dataset: Dataset,
    versions: dict[int, DatasetVersion],
    *,
    base_url: str,
    fallback_email: str,
) -> dict[str, Any]:
    """One dataset as a DCAT-US 1.1 dataset object."""
    keywords = list(dataset.keywords or []) or [
        THEMES[t] for t in dataset.themes or [] if t in THEMES
    ]
    email = dataset.contact_email or dataset.organization.email or fallback_email
    entry: dict[str, Any] = {
        "@type": "dcat:Dataset",
        "identifier": links.dataset_url(base_url, dataset.slug),
        "title": dataset.title,
        "description": dataset.description or dataset.title,
        "keyword": keywords or [dataset.organization.name],
        "modified": dataset.updated_at.isoformat(),
        "issued": dataset.created_at.date().isoformat(),
        "publisher": {"@type": "org:Organization", "name": dataset.organization.name},
        "contactPoint": {
            "@type": "vcard:Contact",
            "fn": dataset.contact_name or dataset.organization.name,
            "hasEmail": f"mailto:{email}",
        },
        "accessLevel": "public",
        "bureauCode": _codes(dataset, "bureauCode", NON_FEDERAL_BUREAU),
        "programCode": _codes(dataset, "programCode", NON_FEDERAL_PROGRAM),
        "landingPage": dataset.landing_page or links.dataset_url(base_url, dataset.slug),
    }
    license = LICENSES.get(dataset.license_id or "")
    if license is not None and license.url:
        entry["license"] = license.url
    if dataset.frequency in FREQUENCY_ISO8601:
        entry["accrualPeriodicity"] = FREQUENCY_ISO8601[dataset.frequency]
    if dataset.temporal_start and dataset.temporal_end:
        entry["temporal"] = (
            f"{dataset.temporal_start.isoformat()}/{dataset.temporal_end.isoformat()}"
        )
    if dataset.spatial:
        entry["spatial"] = dataset.spatial
    if dataset.languages:
        entry["language"] = list(dataset.languages)
    if dataset.themes:
        entry["theme"] = [THEMES[t] for t in dataset.themes if t in THEMES] or None
    standards = [c for c in dataset.conforms_to or [] if c.startswith(("http://", "https://"))]
    if standards:
        entry["conformsTo"] = standards[0]
    if any(r.id in versions for r in dataset.resources):
        entry["describedBy"] = links.datapackage_url(base_url, dataset.slug)
        entry["describedByType"] = "application/json"
    distributions = [_distribution(dataset, r, versions, base_url) for r in dataset.resources]
    if distributions:
        entry["distribution"] = distributions
    return {k: v for k, v in entry.items() if v is not None}


def _distribution(
    dataset: Dataset, resource: Any, versions: dict[int, DatasetVersion], base_url: str
) -> dict[str, Any]:
    item: dict[str, Any] = {"@type": "dcat:Distribution", "title": resource.name}
    if resource.description:
        item["description"] = resource.description
    if resource.datastore_active and resource.id in versions:
        item["downloadURL"] = links.download_url(base_url, dataset, resource)
        item["mediaType"] = "text/csv"
        item["format"] = "CSV"
        item["describedBy"] = links.datapackage_url(base_url, dataset.slug)
        item["describedByType"] = "application/json"
    elif resource.url:
        fmt = (resource.format or "").upper()
        media = FILE_TYPES.get(fmt, ("", resource.media_type or ""))[1]
        if media:
            item["downloadURL"] = resource.url
            item["mediaType"] = media
        else:
            item["accessURL"] = resource.url
        if fmt:
            item["format"] = fmt
    else:
        item["accessURL"] = links.dataset_url(base_url, dataset.slug)
    return item


def catalog_document(
    datasets: Sequence[tuple[Dataset, dict[int, DatasetVersion]]],
    *,
    base_url: str,
    fallback_email: str,
) -> dict[str, Any]:
    """The whole `data.json` document."""
    return {
        "@context": CONTEXT,
        "@id": f"{links.base(base_url)}/data.json",
        "@type": "dcat:Catalog",
        "conformsTo": CONFORMS_TO,
        "describedBy": DESCRIBED_BY,
        "dataset": [
            dataset_entry(d, v, base_url=base_url, fallback_email=fallback_email)
            for d, v in datasets
        ],
    }
