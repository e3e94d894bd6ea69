"""The HSDS 3.0 API under /hsds: the directory as Open Referral publishes it.

Paths, parameters and page shape follow `hsds-3.0/schema/openapi.json`; every response validates
against the HSDS JSON schemas (tests). `format=ndjson` streams every match, one object a line,
without pagination.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from townhall.accounts.auth import PublicActor
from townhall.deps import DbSession
from townhall.directory import hsds, queries
from townhall.directory.models import (
    DirectoryOrganization,
    Service,
    ServiceAtLocation,
    Taxonomy,
    TaxonomyTerm,
)
from townhall.errors import NotFoundError, TownhallError

router = APIRouter(prefix="/hsds", tags=["hsds"])

Search = Annotated[str, Query(max_length=200, description="Full text search.")]
PageNumber = Annotated[int, Query(ge=1, le=100_000, description="Page number, from 1.")]
PerPage = Annotated[int, Query(ge=1, le=1000, description="Results per page.")]
Format = Annotated[str, Query(pattern="^(json|ndjson)$", description="json or ndjson.")]
IdFilter = Annotated[str | None, Query(max_length=100)]
ModifiedAfter = Annotated[
    str | None, Query(max_length=40, description="ISO 8601 date or datetime (UTC if no zone).")
]
Flag = Annotated[bool, Query()]


def _modified_after(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise TownhallError(
            422, "invalid_request", f"modified_after: {value!r} is not an ISO 8601 datetime"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _respond(
    items: list[Any],
    render: Callable[[Any], dict[str, Any]],
    *,
    page_number: int,
    per_page: int,
    format: str,
) -> Response:
    if format == "ndjson":
        rendered = [render(item) for item in items]

        def lines() -> Iterator[str]:
            for doc in rendered:
                yield json.dumps(doc, ensure_ascii=False) + "\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")
    start = (page_number - 1) * per_page
    chunk = [render(item) for item in items[start : start + per_page]]
    return JSONResponse(
        hsds.page(chunk, total=len(items), page_number=page_number, per_page=per_page)
    )


@router.get("/", summary="About this HSDS API")
def about(request: Request, _actor: PublicActor) -> dict[str, str]:
    base = str(request.base_url).rstrip("/")
    return {
        "version": hsds.HSDS_VERSION,
        "profile": hsds.HSDS_PROFILE,
        "openapi_url": f"{base}/api/openapi.json",
    }


def _location_filter(db: Session, postcode: str | None, proximity: str | None) -> list[str] | None:
    """Location ids near a postcode's centroid (`proximity` metres) or with that postcode."""
    if not postcode and not proximity:
        return None
    if proximity and not postcode:
        raise TownhallError(422, "invalid_request", "proximity: needs a postcode to measure from")
    assert postcode is not None
    if proximity:
        try:
            metres = float(proximity)
        except ValueError:
            raise TownhallError(422, "invalid_request", "proximity: metres, as a number") from None
        if not 0 <= metres <= 1_000_000:
            raise TownhallError(422, "invalid_request", "proximity: 0 to 1,000,000 metres")
        centre = queries.postcode_centroid(db, postcode)
        if centre is None:
            return []
        return [loc.id for loc, _ in queries.locations_near(db, centre[0], centre[1], metres)]
    return [loc.id for loc in queries.list_locations(db) if loc.postal_code == postcode]


def _services(
    db: Session,
    *,
    search: str,
    taxonomy_term_id: str | None,
    taxonomy_id: str | None,
    organization_id: str | None,
    modified_after: str | None,
    postcode: str | None,
    proximity: str | None,
) -> list[Service]:
    services = queries.list_services(
        db,
        include_defunct=True,
        organization_id=organization_id,
        taxonomy_term_id=taxonomy_term_id,
        taxonomy_id=taxonomy_id,
        modified_after=_modified_after(modified_after),
        location_ids=_location_filter(db, postcode, proximity),
    )
    if search.strip():
        services = queries.search_services(db, search, candidates=services).services
    return services


@router.get("/services", summary="Paginated services")
def list_services(
    db: DbSession,
    _actor: PublicActor,
    search: Search = "",
    page: PageNumber = 1,
    per_page: PerPage = 50,
    format: Format = "json",
    taxonomy_term_id: IdFilter = None,
    taxonomy_id: IdFilter = None,
    organization_id: IdFilter = None,
    modified_after: ModifiedAfter = None,
    minimal: Flag = False,
    full: Flag = False,
    postcode: Annotated[str | None, Query(max_length=20)] = None,
    proximity: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    services = _services(
        db,
        search=search,
        taxonomy_term_id=taxonomy_term_id,
        taxonomy_id=taxonomy_id,
        organization_id=organization_id,
        modified_after=modified_after,
        postcode=postcode,
        proximity=proximity,
    )

    def render(service: Service) -> dict[str, Any]:
        if minimal:
            return {"id": service.id, "last_modified": hsds._iso(service.updated_at)}
        return hsds.service_doc(db, service) if full else hsds.service_list_item(service)

    return _respond(services, render, page_number=page, per_page=per_page, format=format)


@router.get("/services/{id}", summary="A fully nested service")
def read_service(id: str, db: DbSession, _actor: PublicActor) -> dict[str, Any]:
    service = db.get(Service, id) or queries.service_by_slug(db, id)
    if service is None:
        raise NotFoundError("service", id)
    return hsds.service_doc(db, service)


@router.get("/service_at_locations", summary="Paginated services at locations")
def list_service_at_locations(
    db: DbSession,
    _actor: PublicActor,
    search: Search = "",
    page: PageNumber = 1,
    per_page: PerPage = 50,
    format: Format = "json",
    taxonomy_term_id: IdFilter = None,
    taxonomy_id: IdFilter = None,
    organization_id: IdFilter = None,
    modified_after: ModifiedAfter = None,
    full: Flag = False,
    postcode: Annotated[str | None, Query(max_length=20)] = None,
    proximity: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    services = _services(
        db,
        search=search,
        taxonomy_term_id=taxonomy_term_id,
        taxonomy_id=taxonomy_id,
        organization_id=organization_id,
        modified_after=None,
        postcode=None,
        proximity=None,
    )
    wanted_locations = _location_filter(db, postcode, proximity)
    since = _modified_after(modified_after)
    links = [
        link
        for service in services
        for link in sorted(service.service_at_locations, key=lambda x: x.location.name)
        if (wanted_locations is None or link.location_id in wanted_locations)
        and (since is None or link.updated_at >= since or service.updated_at >= since)
    ]

    def render(link: ServiceAtLocation) -> dict[str, Any]:
        if full:
            return hsds.service_at_location_doc(db, link, with_service=True)
        doc = {
            k: v
            for k, v in hsds.service_at_location_doc(db, link, with_service=True).items()
            if k in ("id", "service_id", "location_id", "description", "service")
        }
        doc["location"] = {
            k: v for k, v in hsds.location_doc(db, link.location).items() if not isinstance(v, list)
        }
        return doc

    return _respond(links, render, page_number=page, per_page=per_page, format=format)


@router.get("/service_at_locations/{id}", summary="A fully nested service at a location")
def read_service_at_location(id: str, db: DbSession, _actor: PublicActor) -> dict[str, Any]:
    link = db.get(ServiceAtLocation, id)
    if link is None:
        raise NotFoundError("service_at_location", id)
    return hsds.service_at_location_doc(db, link, with_service=True)


@router.get("/organizations", summary="Paginated organizations")
def list_organizations(
    db: DbSession,
    _actor: PublicActor,
    search: Search = "",
    full_service: Flag = False,
    full: Flag = False,
    page: PageNumber = 1,
    per_page: PerPage = 50,
    format: Format = "json",
) -> Response:
    profiles = list(db.scalars(select(DirectoryOrganization)))
    profiles.sort(key=lambda p: p.organization.name.lower())
    if search.strip():
        from townhall.directory import search as text_search

        documents = [
            text_search.Document(
                p.id,
                {
                    "name": f"{p.organization.name} {p.alternate_name or ''}",
                    "description": p.organization.description or "",
                },
            )
            for p in profiles
        ]
        order = [h.key for h in text_search.rank(documents, search)]
        by_id = {p.id: p for p in profiles}
        profiles = [by_id[k] for k in order]

    def render(profile: DirectoryOrganization) -> dict[str, Any]:
        doc = hsds.organization_doc(profile, full=full or full_service, session=db)
        if full or full_service:
            services = queries.list_services(db, organization_id=profile.id)
            doc["services"] = [
                hsds.service_doc(db, s) if full_service else hsds.service_list_item(s)
                for s in services
            ]
        return doc

    return _respond(profiles, render, page_number=page, per_page=per_page, format=format)


@router.get("/organizations/{id}", summary="A fully nested organization")
def read_organization(
    id: str, db: DbSession, _actor: PublicActor, full_service: Flag = False
) -> dict[str, Any]:
    profile = db.get(DirectoryOrganization, id)
    if profile is None:
        raise NotFoundError("organization", id)
    doc = hsds.organization_doc(profile, full=True, session=db)
    doc["services"] = [
        hsds.service_doc(db, s) if full_service else hsds.service_list_item(s)
        for s in queries.list_services(db, organization_id=profile.id)
    ]
    return doc


@router.get("/taxonomies", summary="Paginated taxonomies")
def list_taxonomies(
    db: DbSession,
    _actor: PublicActor,
    search: Search = "",
    page: PageNumber = 1,
    per_page: PerPage = 50,
    format: Format = "json",
) -> Response:
    taxonomies = list(db.scalars(select(Taxonomy).order_by(Taxonomy.name)))
    if search.strip():
        needle = search.strip().lower()
        taxonomies = [
            t for t in taxonomies if needle in t.name.lower() or needle in t.description.lower()
        ]
    return _respond(
        taxonomies, hsds.taxonomy_doc, page_number=page, per_page=per_page, format=format
    )


@router.get("/taxonomies/{id}", summary="A taxonomy")
def read_taxonomy(id: str, db: DbSession, _actor: PublicActor) -> dict[str, Any]:
    taxonomy = db.get(Taxonomy, id)
    if taxonomy is None:
        raise NotFoundError("taxonomy", id)
    return hsds.taxonomy_doc(taxonomy)


@router.get("/taxonomy_terms", summary="Paginated taxonomy terms")
def list_taxonomy_terms(
    db: DbSession,
    _actor: PublicActor,
    search: Search = "",
    page: PageNumber = 1,
    per_page: PerPage = 50,
    format: Format = "json",
    taxonomy_id: IdFilter = None,
    top_only: Flag = False,
    parent_id: IdFilter = None,
) -> Response:
    query = select(TaxonomyTerm).order_by(TaxonomyTerm.taxonomy, TaxonomyTerm.name)
    if taxonomy_id:
        query = query.where(TaxonomyTerm.taxonomy_id == taxonomy_id)
    if parent_id:
        query = query.where(TaxonomyTerm.parent_id == parent_id)
    terms = list(db.scalars(query))
    if top_only:
        ids = {t.id for t in terms}
        terms = [t for t in terms if t.parent_id is None or t.parent_id not in ids]
    if search.strip():
        needle = search.strip().lower()
        terms = [t for t in terms if needle in t.name.lower() or needle in (t.code or "").lower()]
    return _respond(terms, hsds.term_doc, page_number=page, per_page=per_page, format=format)


@router.get("/taxonomy_terms/{id}", summary="A taxonomy term")
def read_taxonomy_term(id: str, db: DbSession, _actor: PublicActor) -> dict[str, Any]:
    term = db.get(TaxonomyTerm, id)
    if term is None:
        raise NotFoundError("taxonomy_term", id)
    return hsds.term_doc(term)
