"""Feed routes for harvesters: DCAT-AP (JSON-LD, Turtle, RDF/XML), DCAT-US `data.json`,
Frictionless `datapackage.json`. Public, and only public published datasets appear."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from townhall.accounts.auth import PublicActor
from townhall.config import Settings
from townhall.deps import DbSession
from townhall.errors import NotFoundError, TownhallError
from townhall.feeds import datajson, datapackage, dcat, links, queries

router = APIRouter(tags=["feeds"])
RdfFormat = Literal["jsonld", "ttl", "rdf"]
DEFAULT_PAGE_SIZE = 100


def _settings(request: Request) -> Settings:
    return request.app.state.settings


@router.get(
    "/catalog.{fmt}",
    summary="DCAT-AP 3 catalog (paged with Hydra)",
    response_class=Response,
    responses={200: {"content": {"application/ld+json": {}, "text/turtle": {}}}},
)
def dcat_catalog(
    fmt: RdfFormat,
    request: Request,
    db: DbSession,
    _actor: PublicActor,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=1000)] = DEFAULT_PAGE_SIZE,
    modified_since: Annotated[
        datetime | None, Query(description="Only datasets changed at or after this time.")
    ] = None,
) -> Response:
    settings = _settings(request)
    if modified_since is not None and modified_since.tzinfo is None:
        modified_since = modified_since.replace(tzinfo=UTC)
    datasets = queries.public_datasets(db, modified_since=modified_since)
    chunk = datasets[(page - 1) * page_size : page * page_size]
    builder = dcat.DcatBuilder(base_url=settings.base_url, site_name=settings.site_name)
    builder.catalog(
        [(d, queries.published_versions(db, d)) for d in chunk],
        modified=max((d.updated_at for d in datasets), default=None),
        issued=min((d.created_at for d in datasets), default=None),
    )
    params: dict[str, str] = {}
    if page_size != DEFAULT_PAGE_SIZE:
        params["page_size"] = str(page_size)
    if modified_since is not None:
        params["modified_since"] = modified_since.isoformat()
    query = urlencode(params)
    page_url = (
        f"{links.base(settings.base_url)}/catalog.{fmt}?{query}{'&' if query else ''}page={{page}}"
    )
    builder.paging(page_url, page=page, page_size=page_size, total=len(datasets))
    body, media_type = dcat.serialize(builder.graph, fmt)
    return Response(body, media_type=media_type)


@router.get(
    "/datasets/{slug}.{fmt}",
    summary="One dataset in DCAT-AP 3",
    response_class=Response,
    responses={200: {"content": {"application/ld+json": {}, "text/turtle": {}}}},
)
def dcat_dataset(
    slug: str, fmt: RdfFormat, request: Request, db: DbSession, _actor: PublicActor
) -> Response:
    settings = _settings(request)
    dataset = queries.public_dataset(db, slug)
    if dataset is None:
        raise NotFoundError("dataset", slug)
    builder = dcat.DcatBuilder(base_url=settings.base_url, site_name=settings.site_name)
    builder.dataset(dataset, queries.published_versions(db, dataset))
    body, media_type = dcat.serialize(builder.graph, fmt)
    return Response(body, media_type=media_type)


@router.get("/data.json", summary="DCAT-US 1.1 (Project Open Data) catalog")
def data_json(request: Request, db: DbSession, _actor: PublicActor) -> JSONResponse:
    settings = _settings(request)
    datasets = queries.public_datasets(db)
    document = datajson.catalog_document(
        [(d, queries.published_versions(db, d)) for d in datasets],
        base_url=settings.base_url,
        fallback_email=settings.mail_from,
    )
    return JSONResponse(document)


@router.get("/datasets/{slug}/datapackage.json", summary="Frictionless Data Package of one dataset")
def data_package(slug: str, request: Request, db: DbSession, _actor: PublicActor) -> JSONResponse:
    settings = _settings(request)
    dataset = queries.public_dataset(db, slug)
    if dataset is None:
        raise NotFoundError("dataset", slug)
    document = datapackage.descriptor(
        dataset, queries.published_versions(db, dataset), base_url=settings.base_url
    )
    if not document["resources"]:
        raise TownhallError(
            404,
            "datapackage_not_found",
            f"Dataset {slug} has no published table or linked file yet, so no data package.",
        )
    return JSONResponse(document, media_type="application/json")
