"""Reads for the catalog: visibility rules, search with facets, versions, freshness."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, false, or_, select
from sqlalchemy.orm import Session

from townhall.actor import Actor
from townhall.cache import Invalidations, Tag
from townhall.catalog import search
from townhall.catalog.models import Dataset, DatasetVersion, Resource
from townhall.db import utcnow

SORTS = ("relevance", "updated", "name")
# What a kept table lookup (`datastore.api`, `datastore.query.PublishedTable`) is read from: a
# dataset's state and visibility, its resources and their versions, per dataset.
TABLE_KIND = "dataset"
FACET_FIELDS = ("organization", "theme", "keyword", "format", "license", "freshness")


def watch_published_tables(invalidations: Invalidations) -> None:
    """Declare what drops kept table lookups (`townhall.cache`)."""

    def of(attribute: str) -> Callable[[Any], list[Tag]]:
        def tags(instance: Any) -> list[Tag]:
            # From the loaded state: a flush hook must not load anything.
            dataset_id = instance.__dict__.get(attribute)
            return [(TABLE_KIND, dataset_id if isinstance(dataset_id, int) else "*")]

        return tags

    invalidations.watch(Dataset, of("id"), kind=TABLE_KIND)
    invalidations.watch(Resource, of("dataset_id"), kind=TABLE_KIND)
    invalidations.watch(DatasetVersion, of("dataset_id"), kind=TABLE_KIND)


def can_edit(actor: Actor, dataset: Dataset) -> bool:
    if actor.can("system:admin"):
        return True
    return actor.can("datasets:publish") and dataset.organization_id in actor.organization_ids


def can_read(actor: Actor, dataset: Dataset) -> bool:
    if can_edit(actor, dataset):
        return True
    if dataset.state != "published":
        return False
    if dataset.visibility == "public":
        return True
    if dataset.visibility == "restricted":
        return actor.can("datasets:read-restricted") or (
            dataset.organization_id in actor.organization_ids
        )
    return dataset.organization_id in actor.organization_ids and actor.is_authenticated


def readable_filter(actor: Actor) -> object:
    """The SQL form of `can_read`, for lists."""
    if actor.can("system:admin"):
        return Dataset.state != "deleted"
    own = Dataset.organization_id.in_(actor.organization_ids) if actor.organization_ids else false()
    published_public = and_(Dataset.state == "published", Dataset.visibility == "public")
    clauses = [published_public]
    if actor.can("datasets:read-restricted"):
        clauses.append(and_(Dataset.state == "published", Dataset.visibility == "restricted"))
    if actor.organization_ids:
        if actor.can("datasets:publish"):
            clauses.append(and_(own, Dataset.state != "deleted"))
        else:
            clauses.append(and_(own, Dataset.state == "published"))
    return or_(*clauses)


def dataset_by_slug(session: Session, slug: str) -> Dataset | None:
    return session.scalar(select(Dataset).where(Dataset.slug == slug))


def dataset_by_id(session: Session, dataset_id: int) -> Dataset | None:
    return session.get(Dataset, dataset_id)


def resource_by_id(session: Session, resource_id: int) -> Resource | None:
    return session.get(Resource, resource_id)


def is_late(dataset: Dataset, now: datetime | None = None) -> bool:
    return dataset.next_update_due is not None and dataset.next_update_due < (now or utcnow())


def versions(session: Session, dataset_id: int) -> list[DatasetVersion]:
    return list(
        session.scalars(
            select(DatasetVersion)
            .where(DatasetVersion.dataset_id == dataset_id)
            .order_by(DatasetVersion.resource_id, DatasetVersion.number.desc())
        )
    )


def version_of(session: Session, resource: Resource, number: int | None) -> DatasetVersion | None:
    """The published version of a resource, or the numbered one."""
    if number is None:
        if resource.published_version_id is None:
            return None
        return session.get(DatasetVersion, resource.published_version_id)
    return session.scalar(
        select(DatasetVersion).where(
            DatasetVersion.resource_id == resource.id, DatasetVersion.number == number
        )
    )


def published_version_map(
    session: Session, resources: Sequence[Resource]
) -> dict[int, DatasetVersion]:
    ids = [r.published_version_id for r in resources if r.published_version_id]
    if not ids:
        return {}
    rows = session.scalars(select(DatasetVersion).where(DatasetVersion.id.in_(ids)))
    return {v.resource_id: v for v in rows}


def column_names(session: Session, dataset: Dataset) -> list[str]:
    names: list[str] = []
    for version in published_version_map(session, dataset.resources).values():
        names.extend(c["name"] for c in version.columns)
    return names


@dataclass
class SearchOutcome:
    total: int
    items: list[Dataset]
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


def search_datasets(
    session: Session,
    actor: Actor,
    *,
    q: str = "",
    filters: dict[str, list[str]] | None = None,
    sort: str = "relevance",
    limit: int = 20,
    offset: int = 0,
) -> SearchOutcome:
    """Ranked search with facet counts over everything the actor may read.

    Facets are counted in Python over the filtered set: a city's catalog has hundreds or a few
    thousand datasets, well within what one query brings back.
    """
    filters = filters or {}
    query: Select[tuple[Dataset]] = select(Dataset).where(readable_filter(actor))  # type: ignore[arg-type]
    ranking: dict[int, int] = {}
    if q.strip():
        ids = search.ranked_ids(session, q)
        ranking = {dataset_id: rank for rank, dataset_id in enumerate(ids)}
        query = query.where(Dataset.id.in_(ids) if ids else false())
    candidates = list(session.scalars(query))
    now = utcnow()
    matched = [d for d in candidates if _matches_filters(d, filters, now)]
    facets = _facets(matched, now)
    if sort == "name":
        matched.sort(key=lambda d: d.title.lower())
    elif sort == "updated" or not ranking:
        matched.sort(key=lambda d: d.updated_at, reverse=True)
    else:
        matched.sort(key=lambda d: ranking.get(d.id, 1 << 30))
    return SearchOutcome(len(matched), matched[offset : offset + limit], facets)


def _facet_values(dataset: Dataset, facet: str, now: datetime) -> list[str]:
    if facet == "organization":
        return [dataset.organization.slug]
    if facet == "theme":
        return list(dataset.themes or [])
    if facet == "keyword":
        return list(dataset.keywords or [])
    if facet == "format":
        return sorted({r.format.upper() for r in dataset.resources if r.format})
    if facet == "license":
        return [dataset.license_id] if dataset.license_id else []
    if facet == "freshness":
        if dataset.next_update_due is None:
            return ["no schedule"]
        return ["late" if is_late(dataset, now) else "on time"]
    return []


def _matches_filters(dataset: Dataset, filters: dict[str, list[str]], now: datetime) -> bool:
    for facet, wanted in filters.items():
        if not wanted:
            continue
        values = {v.lower() for v in _facet_values(dataset, facet, now)}
        if not any(w.lower() in values for w in wanted):
            return False
    return True


def _facets(datasets: list[Dataset], now: datetime) -> dict[str, list[tuple[str, int]]]:
    result: dict[str, list[tuple[str, int]]] = {}
    for facet in FACET_FIELDS:
        counter: Counter[str] = Counter()
        for dataset in datasets:
            counter.update(_facet_values(dataset, facet, now))
        result[facet] = counter.most_common(50)
    return result


def late_datasets(session: Session) -> list[Dataset]:
    return list(
        session.scalars(
            select(Dataset)
            .where(Dataset.next_update_due < utcnow(), Dataset.state == "published")
            .order_by(Dataset.next_update_due)
        )
    )
