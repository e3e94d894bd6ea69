"""Native JSON routes for the catalog under /api/v1."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from townhall.accounts.auth import PublicActor, requires
from townhall.actor import Actor
from townhall.audit import queries as audit_queries
from townhall.audit.api import AuditEntryPublic
from townhall.catalog import actions, queries
from townhall.catalog.models import Dataset
from townhall.catalog.schemas import (
    DatasetCreate,
    DatasetPublic,
    DatasetUpdate,
    FacetValue,
    FreshnessPublic,
    ResourceCreate,
    ResourcePublic,
    SearchResult,
    VersionPublic,
)
from townhall.catalog.vocabularies import FREQUENCIES, LICENSES, THEMES
from townhall.deps import DbSession
from townhall.errors import NotFoundError
from townhall.schemas import PublicOutput

router = APIRouter(prefix="/api/v1", tags=["catalog"])
Publisher = Annotated[Actor, Depends(requires("datasets:publish"))]


def dataset_public(session: DbSession, dataset: Dataset) -> DatasetPublic:
    versions = queries.published_version_map(session, dataset.resources)
    return DatasetPublic(
        **{
            name: getattr(dataset, name)
            for name in DatasetPublic.model_fields
            if name not in ("organization", "organization_name", "freshness", "resources")
        },
        organization=dataset.organization.slug,
        organization_name=dataset.organization.name,
        freshness=FreshnessPublic(
            frequency=dataset.frequency,
            last_published_at=dataset.last_published_at,
            next_update_due=dataset.next_update_due,
            late=queries.is_late(dataset),
        ),
        resources=[
            ResourcePublic(
                id=r.id,
                name=r.name,
                description=r.description,
                format=r.format,
                url=r.url,
                datastore_active=r.datastore_active,
                size_bytes=r.size_bytes,
                published_version=versions[r.id].number if r.id in versions else None,
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
            for r in dataset.resources
        ],
    )


def readable_dataset(session: DbSession, actor: Actor, slug: str) -> Dataset:
    """The dataset if the actor may read it; 404 otherwise (existence is not leaked)."""
    dataset = queries.dataset_by_slug(session, slug)
    if dataset is None or dataset.state == "deleted" or not queries.can_read(actor, dataset):
        raise NotFoundError("dataset", slug)
    return dataset


@router.get("/datasets", response_model=SearchResult, summary="Search the catalog")
def search_datasets(
    db: DbSession,
    actor: PublicActor,
    q: Annotated[str, Query(max_length=500, description="Words to find")] = "",
    organization: Annotated[list[str] | None, Query(max_length=20)] = None,
    theme: Annotated[list[str] | None, Query(max_length=20)] = None,
    keyword: Annotated[list[str] | None, Query(max_length=20)] = None,
    format: Annotated[list[str] | None, Query(max_length=20)] = None,
    license: Annotated[list[str] | None, Query(max_length=20)] = None,
    freshness: Annotated[list[str] | None, Query(max_length=3)] = None,
    sort: Annotated[str, Query(pattern="^(relevance|updated|name)$")] = "relevance",
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> SearchResult:
    outcome = queries.search_datasets(
        db,
        actor,
        q=q,
        filters={
            "organization": organization or [],
            "theme": theme or [],
            "keyword": keyword or [],
            "format": format or [],
            "license": license or [],
            "freshness": freshness or [],
        },
        sort=sort,
        limit=limit,
        offset=offset,
    )
    return SearchResult(
        total=outcome.total,
        limit=limit,
        offset=offset,
        items=[dataset_public(db, d) for d in outcome.items],
        facets={
            name: [FacetValue(value=v, count=c) for v, c in values]
            for name, values in outcome.facets.items()
        },
    )


@router.post("/datasets", response_model=DatasetPublic, status_code=201, summary="Create")
def create_dataset(
    body: DatasetCreate, db: DbSession, actor: Publisher, request: Request
) -> DatasetPublic:
    fields = body.model_dump(exclude={"slug", "title", "organization"}, exclude_none=True)
    dataset = actions.create_dataset(
        db,
        actor=actor,
        organization_slug=body.organization,
        slug=body.slug,
        title=body.title,
        bus=request.app.state.runtime.events,
        **fields,
    )
    return dataset_public(db, dataset)


@router.get("/datasets/{slug}", response_model=DatasetPublic, summary="One dataset")
def read_dataset(slug: str, db: DbSession, actor: PublicActor) -> DatasetPublic:
    return dataset_public(db, readable_dataset(db, actor, slug))


@router.patch("/datasets/{slug}", response_model=DatasetPublic, summary="Change metadata")
def update_dataset(
    slug: str, body: DatasetUpdate, db: DbSession, actor: Publisher, request: Request
) -> DatasetPublic:
    readable_dataset(db, actor, slug)
    dataset = actions.update_dataset(
        db,
        actor=actor,
        slug=slug,
        bus=request.app.state.runtime.events,
        **body.model_dump(exclude_unset=True),
    )
    return dataset_public(db, dataset)


@router.delete("/datasets/{slug}", response_model=DatasetPublic, summary="Delete (soft)")
def delete_dataset(slug: str, db: DbSession, actor: Publisher) -> DatasetPublic:
    readable_dataset(db, actor, slug)
    return dataset_public(db, actions.delete_dataset(db, actor=actor, slug=slug))


class StateChange(PublicOutput):
    state: str


@router.post("/datasets/{slug}/publish", response_model=DatasetPublic, summary="Publish")
def publish_dataset(slug: str, db: DbSession, actor: Publisher) -> DatasetPublic:
    readable_dataset(db, actor, slug)
    return dataset_public(
        db, actions.set_dataset_state(db, actor=actor, slug=slug, state="published")
    )


@router.post("/datasets/{slug}/withdraw", response_model=DatasetPublic, summary="Withdraw")
def withdraw_dataset(slug: str, db: DbSession, actor: Publisher) -> DatasetPublic:
    readable_dataset(db, actor, slug)
    return dataset_public(
        db, actions.set_dataset_state(db, actor=actor, slug=slug, state="withdrawn")
    )


@router.post(
    "/datasets/{slug}/resources",
    response_model=ResourcePublic,
    status_code=201,
    summary="Add a resource",
)
def create_resource(
    slug: str, body: ResourceCreate, db: DbSession, actor: Publisher
) -> ResourcePublic:
    readable_dataset(db, actor, slug)
    resource = actions.create_resource(
        db,
        actor=actor,
        slug=slug,
        name=body.name,
        description=body.description,
        format=body.format,
        url=body.url,
    )
    return ResourcePublic(
        id=resource.id,
        name=resource.name,
        description=resource.description,
        format=resource.format,
        url=resource.url,
        datastore_active=resource.datastore_active,
        size_bytes=resource.size_bytes,
        created_at=resource.created_at,
        updated_at=resource.updated_at,
    )


@router.get("/datasets/{slug}/versions", response_model=list[VersionPublic], summary="Versions")
def list_versions(slug: str, db: DbSession, actor: PublicActor) -> list[VersionPublic]:
    dataset = readable_dataset(db, actor, slug)
    versions = [VersionPublic.model_validate(v) for v in queries.versions(db, dataset.id)]
    if not queries.can_edit(actor, dataset):
        # Who pressed publish is personal data; the public sees the publishing office.
        for version in versions:
            version.published_by = dataset.organization.name
    return versions


@router.get(
    "/datasets/{slug}/activity",
    response_model=list[AuditEntryPublic],
    summary="Activity stream",
)
def dataset_activity(
    slug: str,
    db: DbSession,
    actor: PublicActor,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[AuditEntryPublic]:
    dataset = readable_dataset(db, actor, slug)
    entries = audit_queries.list_entries(
        db, object_type="dataset", object_id=str(dataset.id), limit=limit
    )
    return [AuditEntryPublic.model_validate(e) for e in entries]


class LicensePublic(PublicOutput):
    id: str
    title: str
    url: str
    open_data: bool


class VocabularyTerm(PublicOutput):
    code: str
    label: str


@router.get("/licenses", response_model=list[LicensePublic], summary="Licence registry")
def list_licenses(_actor: PublicActor) -> list[LicensePublic]:
    return [LicensePublic.model_validate(lic) for lic in LICENSES.values()]


@router.get("/themes", response_model=list[VocabularyTerm], summary="EU data themes")
def list_themes(_actor: PublicActor) -> list[VocabularyTerm]:
    return [VocabularyTerm(code=c, label=label) for c, label in THEMES.items()]


@router.get("/frequencies", response_model=list[VocabularyTerm], summary="Update frequencies")
def list_frequencies(_actor: PublicActor) -> list[VocabularyTerm]:
    return [VocabularyTerm(code=c, label=label) for c, (label, _) in FREQUENCIES.items()]


@router.get(
    "/late-datasets", response_model=list[DatasetPublic], summary="Datasets past their update"
)
def late_datasets(db: DbSession, actor: Publisher) -> list[DatasetPublic]:
    return [dataset_public(db, d) for d in queries.late_datasets(db) if queries.can_read(actor, d)]
