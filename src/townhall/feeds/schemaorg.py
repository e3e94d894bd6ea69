"""schema.org `Dataset` JSON-LD for dataset pages (what search engines' dataset search reads).

`schemaorg_jsonld(dataset, ...)` gives the object; `schemaorg_script(...)` gives it ready to
embed in a page, escaped so that no value can close the `<script>` element.
"""

from __future__ import annotations

import json
from typing import Any

from townhall.catalog.models import Dataset, DatasetVersion
from townhall.catalog.vocabularies import LICENSES, THEMES
from townhall.feeds import links


def schemaorg_jsonld(
    dataset: Dataset,
    *,
    base_url: str,
    site_name: str = "Townhall",
    versions: dict[int, DatasetVersion] | None = None,
) -> dict[str, Any]:
    """The dataset as a schema.org `Dataset` (JSON-LD object, `@context` included).

    `versions` (resource id → published version, from the catalog's `published_version_map`)
    adds the table columns as `variableMeasured` and the CSV downloads; without it, the table
    resources are listed by their download address alone.
    """
    versions = versions or {}
    url = links.dataset_url(base_url, dataset.slug)
    organization = dataset.organization
    publisher = {
        "@type": "GovernmentOrganization",
        "name": organization.name,
        "url": links.organization_url(base_url, organization.slug),
    }
    document: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Dataset",
        "@id": url,
        "url": url,
        "name": dataset.title,
        "description": dataset.description or dataset.title,
        "identifier": url,
        "isAccessibleForFree": True,
        "publisher": publisher,
        "creator": publisher,
        "dateCreated": dataset.created_at.isoformat(),
        "dateModified": dataset.updated_at.isoformat(),
        "includedInDataCatalog": {
            "@type": "DataCatalog",
            "name": site_name,
            "url": f"{links.base(base_url)}/",
        },
    }
    if dataset.last_published_at is not None:
        document["datePublished"] = dataset.last_published_at.isoformat()
    keywords = list(dataset.keywords or []) + [
        THEMES[t] for t in dataset.themes or [] if t in THEMES
    ]
    if keywords:
        document["keywords"] = list(dict.fromkeys(keywords))
    license = LICENSES.get(dataset.license_id or "")
    if license is not None and license.url:
        document["license"] = license.url
    if dataset.contact_name or dataset.contact_email:
        contact: dict[str, Any] = {"@type": "ContactPoint", "contactType": "data steward"}
        if dataset.contact_name:
            contact["name"] = dataset.contact_name
        if dataset.contact_email:
            contact["email"] = dataset.contact_email
        document["contactPoint"] = contact
    if dataset.temporal_start or dataset.temporal_end:
        start = dataset.temporal_start.isoformat() if dataset.temporal_start else ".."
        end = dataset.temporal_end.isoformat() if dataset.temporal_end else ".."
        document["temporalCoverage"] = f"{start}/{end}"
    if dataset.spatial:
        document["spatialCoverage"] = dataset.spatial
    if dataset.languages:
        document["inLanguage"] = list(dataset.languages)
    distributions = []
    columns: list[str] = []
    for resource in dataset.resources:
        version = versions.get(resource.id)
        if resource.datastore_active:
            distributions.append(
                {
                    "@type": "DataDownload",
                    "name": resource.name,
                    "encodingFormat": "text/csv",
                    "contentUrl": links.download_url(base_url, dataset, resource),
                }
            )
            if version is not None:
                columns.extend(c["name"] for c in version.columns)
        elif resource.url:
            download = {"@type": "DataDownload", "name": resource.name, "contentUrl": resource.url}
            if resource.format:
                download["encodingFormat"] = resource.format
            distributions.append(download)
    if distributions:
        document["distribution"] = distributions
    if columns:
        document["variableMeasured"] = list(dict.fromkeys(columns))
    return {k: v for k, v in document.items() if v is not None}


def schemaorg_script(
    dataset: Dataset,
    *,
    base_url: str,
    site_name: str = "Townhall",
    versions: dict[int, DatasetVersion] | None = None,
) -> str:
    """A `<script type="application/ld+json">` element to put in the dataset page's `<head>`.

    `<`, `>` and `&` are written as JSON escapes, so a title containing `</script>` cannot end
    the element early. Mark it safe in Jinja (`{{ script | safe }}`).
    """
    text = json.dumps(
        schemaorg_jsonld(dataset, base_url=base_url, site_name=site_name, versions=versions),
        ensure_ascii=False,
    )
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/ld+json">{text}</script>'
