"""Reads for the feeds: only public, published datasets ever reach a feed.

Whoever asks, feeds are built as the anonymous visitor sees the catalog, so a harvester with a
partner's token still gets the public catalog and nothing restricted leaks into a copy.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from townhall.actor import ANONYMOUS
from townhall.catalog import queries as catalog_queries
from townhall.catalog.models import Dataset, DatasetVersion

# A city's catalog has hundreds or a few thousand datasets: one read, paged in memory.
_EVERYTHING = 1_000_000


def is_public(dataset: Dataset) -> bool:
    return dataset.state == "published" and dataset.visibility == "public"


def public_datasets(session: Session, *, modified_since: datetime | None = None) -> list[Dataset]:
    """Every public, published dataset, ordered by slug (stable across pages)."""
    outcome = catalog_queries.search_datasets(session, ANONYMOUS, limit=_EVERYTHING)
    datasets = [d for d in outcome.items if is_public(d)]
    if modified_since is not None:
        datasets = [d for d in datasets if d.updated_at >= modified_since]
    return sorted(datasets, key=lambda d: d.slug)


def public_dataset(session: Session, slug: str) -> Dataset | None:
    """The dataset if it is public and published; `None` otherwise (existence is not leaked)."""
    dataset = catalog_queries.dataset_by_slug(session, slug)
    if dataset is None or not is_public(dataset):
        return None
    return dataset


def published_versions(session: Session, dataset: Dataset) -> dict[int, DatasetVersion]:
    """The published version of each of the dataset's table resources, by resource id."""
    return catalog_queries.published_version_map(session, dataset.resources)
