"""Stable public addresses of catalog things, shared by every feed and by the CKAN adapter.

Harvesters keep these as identifiers, so they are built from the configured `base_url`, never
from the request's Host header (which a proxy or a client can change).
"""

from __future__ import annotations

from townhall.catalog.models import Dataset, Resource


def base(base_url: str) -> str:
    return base_url.rstrip("/")


def dataset_url(base_url: str, slug: str) -> str:
    """The dataset's page; also its IRI in DCAT and its `@id` in schema.org."""
    return f"{base(base_url)}/datasets/{slug}"


def resource_url(base_url: str, slug: str, resource_id: int) -> str:
    """The distribution's IRI."""
    return f"{base(base_url)}/datasets/{slug}/resources/{resource_id}"


def organization_url(base_url: str, slug: str) -> str:
    return f"{base(base_url)}/organizations/{slug}"


def datapackage_url(base_url: str, slug: str) -> str:
    return f"{base(base_url)}/datasets/{slug}/datapackage.json"


def download_url(base_url: str, dataset: Dataset, resource: Resource, fmt: str = "csv") -> str:
    """Where a table resource's published version downloads as a whole file.

    A resource that only links elsewhere (no table in the lake) downloads from its own URL.
    """
    if not resource.datastore_active and resource.url:
        return resource.url
    return f"{base(base_url)}/api/v1/datasets/{dataset.slug}/download.{fmt}?resource={resource.id}"


def access_url(base_url: str, dataset: Dataset, resource: Resource) -> str:
    """Where a person or program reaches the distribution (DCAT's mandatory accessURL)."""
    if resource.url:
        return resource.url
    return dataset_url(base_url, dataset.slug)
