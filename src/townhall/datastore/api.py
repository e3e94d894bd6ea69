"""Native JSON routes of the datastore under /api/v1: upload, rows, aggregate, SQL, downloads.

Read routes settle *what* to read (dataset, resource, version, permission) in the SQL database,
then end that transaction before DuckDB works: on SQLite every transaction holds the database's
write lock (`BEGIN IMMEDIATE`, see db.py), and a query may take up to the time limit.

`/rows` and `/aggregate` are async routes that do all of it (the caller, the table, the query)
in one trip to the thread pool (`_read_in_thread`): as sync routes with `DbSession` and
`PublicActor` they took five (the settings, the session's start and end, the caller, the
endpoint), about 0.1-0.2 ms each on the event loop and in the pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams

from townhall.accounts.auth import SAFE_METHODS, PublicActor, current_actor, is_anonymous, requires
from townhall.accounts.permissions import mark_access
from townhall.accounts.security import csrf_matches
from townhall.actor import ANONYMOUS, Actor
from townhall.catalog.queries import TABLE_KIND
from townhall.datastore import export, query
from townhall.datastore.engine import NotKept, QueryEngine, query_engine
from townhall.datastore.ingest import ingest_file
from townhall.datastore.schemas import FetchQueued, IngestPublic, QueryPage, SqlQuery
from townhall.datastore.serving import serving_copies
from townhall.datastore.upload import receive_upload
from townhall.db import unit_of_work
from townhall.deps import DbSession, request_unit_of_work
from townhall.errors import NotFoundError, PermissionDenied, TownhallError
from townhall.ratelimit import enforce as enforce_rate_limit
from townhall.ratelimit import enforce_async as enforce_rate_limit_async
from townhall.schemas import MAX_ID

router = APIRouter(prefix="/api/v1", tags=["datastore"])
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def get_and_post(path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
    """Register `endpoint` for GET and for POST (long SQL goes in a body), each with its own
    OpenAPI operation id: one route with both methods gives both one id, which OpenAPI forbids
    and client generators trip on."""

    def register(endpoint: Endpoint) -> Endpoint:
        for method in ("GET", "POST"):
            router.add_api_route(
                path,
                endpoint,
                methods=[method],
                operation_id=f"{endpoint.__name__}_{method.lower()}",
                **options,
            )
        return endpoint

    return register


Publisher = Annotated[Actor, Depends(requires("datasets:publish"))]

QUERY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": QueryPage},
}
DownloadFormat = Annotated[
    str, Path(pattern="^(csv|ndjson|json|parquet|geojson)$", description="File format")
]
ResourceParam = Annotated[
    str | None, Query(max_length=300, description="Resource id or name; default the first table")
]
ResourceIdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
VersionParam = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="Dataset version; default published")
]
QParam = Annotated[str, Query(max_length=500, description="Words to find in text columns")]
FieldsParam = Annotated[str | None, Query(max_length=5000, description="Columns, comma-separated")]
SortParam = Annotated[
    str | None, Query(max_length=2000, description="col or -col, comma-separated")
]


def _engine(request: Request) -> QueryEngine:
    return query_engine(request.app.state.runtime)


def _end_transaction(db: DbSession) -> None:
    """Commit the request's unit of work early (see module docstring); the final commit of
    the unit of work then has nothing left to do."""
    db.commit()


def _json(result: query.QueryResult) -> Response:
    return Response(result.to_json_bytes(), media_type="application/json")


def _rows_request(
    params: QueryParams,
    table: query.PublishedTable,
    *,
    q: str,
    fields: str | None,
    sort: str | None,
    limit: int,
    offset: int,
    cursor: str | None,
) -> query.RowsRequest:
    filters = query.parse_filters(params.multi_items())
    for item in filters:
        table.column(item.column)  # 422 naming an unknown column
    return query.RowsRequest(
        fields=query.parse_fields(fields, table),
        filters=filters,
        q=q,
        sort=query.parse_sort(sort, table),
        limit=limit,
        offset=offset,
        cursor=cursor,
    )


async def _resolved_in_thread() -> None:
    """No work here: the caller of a `PUBLIC_READ` route is resolved by `_published`, inside
    the route's one thread hop. A marker for the route walker, as `health.PUBLIC_PROBE`."""


PUBLIC_READ = Depends(mark_access(_resolved_in_thread, "public"))


def _published(
    request: Request,
    slug: str,
    *,
    resource: str | None,
    version: int | None,
    counted: bool = False,
) -> query.PublishedTable:
    """Resolve the caller (as `PublicActor` does: 401 for a bad token, the rate limit counted)
    and the table it reads, in one short unit of work ended before DuckDB works. Call in a
    worker thread (`_read_in_thread`).

    An anonymous caller (no token, no session) reads what anyone may: its table lookup is kept
    per process (`app.state.table_cache`), dropped on every node when the dataset, one of its
    resources or versions changes (`townhall.cache`, `catalog.queries.watch_published_tables`),
    so most anonymous reads open no database session at all. The rate limit still counts it.
    """
    if is_anonymous(request):
        request.state.actor = ANONYMOUS
        if not counted:
            enforce_rate_limit(request, ANONYMOUS)
        cache = request.app.state.table_cache
        key = (slug, resource, version)
        table: query.PublishedTable | None = cache.get(key)
        if table is None:
            started = cache.begin()
            with request_unit_of_work(request) as db:
                table = query.published_table(
                    db, ANONYMOUS, slug, resource=resource, version=version
                )
            if table.dataset_id is not None:
                cache.put(key, table, started=started, tags=[(TABLE_KIND, table.dataset_id)])
        return table
    with request_unit_of_work(request) as db:
        actor = current_actor(request, db, request.app.state.settings)
        return query.published_table(db, actor, slug, resource=resource, version=version)


async def _answer(
    request: Request,
    slug: str,
    resource: str | None,
    version: int | None,
    answer: Callable[[query.PublishedTable, QueryEngine], Response],
) -> Response:
    """`answer(table, engine)` for the dataset's table: on the event loop when everything it
    needs is kept in memory, else in one trip to the thread pool (`_read_in_thread`).

    An anonymous caller's table lookup (`app.state.table_cache`) and the page, count or
    aggregate of an immutable version (`engine.answers`) are often all kept; then nothing
    blocks, and the answer costs no thread hop, whose two wake-ups cost more than the answer
    on a server that is not busy (measured: a kept first page 2.4-2.6 ms over HTTP with the
    hop, the bare ceiling 1.3 ms, after 30 ms idle). The first thing missing (`NotKept`)
    sends the whole request to the thread, the rate limit already counted."""
    counted = False
    if is_anonymous(request):
        request.state.actor = ANONYMOUS
        await enforce_rate_limit_async(request, ANONYMOUS)
        counted = True
        table = request.app.state.table_cache.get((slug, resource, version))
        if table is not None:
            try:
                return answer(table, _engine(request).memory_only())
            except NotKept:
                pass

    def read() -> Response:
        table = _published(request, slug, resource=resource, version=version, counted=counted)
        return answer(table, _engine(request))

    return await _read_in_thread(read)


async def _read_in_thread(read: Callable[[], Response]) -> Response:
    return await run_in_threadpool(read)


# Upload --------------------------------------------------------------------------------------


async def _upload_publisher(request: Request) -> Actor:
    """`datasets:publish`, resolved in its own short unit of work: the request's own session
    would hold the database (on SQLite, its write lock) for the whole upload."""

    def resolve() -> Actor:
        with unit_of_work(request.app.state.session_factory) as session:
            return current_actor(request, session, request.app.state.settings)

    actor = await run_in_threadpool(resolve)
    actor.require("datasets:publish")
    return actor


upload_publisher = mark_access(_upload_publisher, "datasets:publish")
Uploader = Annotated[Actor, Depends(upload_publisher)]


def _check_upload_csrf(request: Request, actor: Actor, form_token: str | None) -> None:
    # As `requires()` does for other writes; read here because the form is parsed by us.
    if request.method in SAFE_METHODS or actor.via != "session":
        return
    given = request.headers.get("x-csrf-token") or form_token
    secret = request.app.state.settings.secret_key.get_secret_value()
    if not csrf_matches(secret, actor.csrf_binding or "", given):
        raise TownhallError(
            403, "csrf_failed", "The form's CSRF token is missing or stale; reload the page."
        )


def _resource_of(request: Request, actor: Actor, slug: str, resource_id: int) -> None:
    from townhall.catalog import queries as catalog_queries

    with unit_of_work(request.app.state.session_factory) as session:
        dataset = query.readable_dataset(session, actor, slug)
        if not any(r.id == resource_id for r in dataset.resources):
            raise NotFoundError("resource", f"{resource_id} in {slug}")
        if not catalog_queries.can_edit(actor, dataset):
            raise PermissionDenied(f"datasets:publish for {dataset.organization.slug}")


@router.post(
    "/datasets/{slug}/resources/{resource_id}/upload",
    response_model=IngestPublic,
    status_code=201,
    summary="Upload a file as the resource's next table version",
    description="Multipart form with the file in `file` and, optionally, a Frictionless Table "
    "Schema (JSON) in `schema`; or the raw file as the body (`?filename=` names it). The table "
    "is published when it loads; a bad file is refused with `ingest_failed` and the previous "
    "version stays.",
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "schema": {"type": "string", "description": "Table Schema JSON"},
                        },
                    }
                }
            },
            "required": True,
        }
    },
)
async def upload_resource_file(
    request: Request, slug: str, resource_id: ResourceIdPath, actor: Uploader
) -> IngestPublic:
    await run_in_threadpool(_resource_of, request, actor, slug, resource_id)
    runtime = request.app.state.runtime
    directory = runtime.settings.data_dir.resolve() / "tmp" / "uploads"
    received = await receive_upload(request, directory)
    try:
        _check_upload_csrf(request, actor, received.fields.get("csrf_token"))
        version = await run_in_threadpool(
            lambda: ingest_file(
                runtime,
                actor=actor,
                resource_id=resource_id,
                path=received.path,
                source_name=received.filename,
                table_schema=received.fields.get("schema") or request.query_params.get("schema"),
                source_sha256=received.sha256,
                source_bytes=received.size,
            )
        )
    finally:
        received.discard()
    if version.snapshot_id is not None:
        # This node builds its serving copy now; other nodes build theirs on first query.
        serving_copies(runtime).want(
            version.table_name, int(version.snapshot_id), version.row_count, version.columns or []
        )
    return IngestPublic(
        dataset=slug,
        resource_id=resource_id,
        version=version.number,
        status=version.status,
        row_count=version.row_count,
        columns=version.columns,  # type: ignore[arg-type]  # validated from dicts
        schema_changes=version.schema_changes,
        source_name=version.source_name,
        source_sha256=version.source_sha256,
        source_bytes=version.source_bytes,
        validation_report=version.validation_report,
        published_by=version.published_by,
        created_at=version.created_at,
    )


@router.post(
    "/datasets/{slug}/resources/{resource_id}/fetch",
    response_model=FetchQueued,
    status_code=202,
    summary="Fetch the resource's URL and ingest it (a background job)",
    description="Queues `datastore.fetch_and_ingest`: the URL is downloaded (streamed, size "
    "limited) and ingested as the next version. Poll the versions list for the result.",
)
def queue_fetch(
    request: Request,
    slug: str,
    resource_id: ResourceIdPath,
    db: DbSession,
    actor: Publisher,
) -> FetchQueued:
    from townhall.catalog import queries as catalog_queries

    dataset = query.readable_dataset(db, actor, slug)
    resource = next((r for r in dataset.resources if r.id == resource_id), None)
    if resource is None:
        raise NotFoundError("resource", f"{resource_id} in {slug}")
    if not catalog_queries.can_edit(actor, dataset):
        raise PermissionDenied(f"datasets:publish for {dataset.organization.slug}")
    if not resource.url or not resource.url.startswith(("http://", "https://")):
        raise TownhallError(
            422, "invalid_request", "The resource has no http(s) URL to fetch; set `url` first."
        )
    url = resource.url
    _end_transaction(db)
    result = request.app.state.runtime.jobs.enqueue("datastore.fetch_and_ingest", resource_id)
    return FetchQueued(resource_id=resource_id, url=url, task_id=str(result.id))


# Reads ---------------------------------------------------------------------------------------


@router.get(
    "/datasets/{slug}/rows",
    response_model=QueryPage,
    summary="Rows of a dataset's table, filtered, sorted and paged",
    description="Filters: `col__op=value` with op one of "
    + ", ".join(query.OPERATORS)
    + " (`col=value` means eq; `in` takes comma-separated values; `isnull` true/false; "
    "`bbox` minx,miny,maxx,maxy and `near` lon,lat,metres for geometry). `q` finds words in "
    "text columns. `sort=-col,col2`. Page with `limit` and `offset`, or follow `next_cursor`.",
    dependencies=[PUBLIC_READ],
)
async def dataset_rows(
    request: Request,
    slug: str,
    resource: ResourceParam = None,
    version: VersionParam = None,
    q: QParam = "",
    fields: FieldsParam = None,
    sort: SortParam = None,
    limit: Annotated[int, Query(ge=1, le=1_000_000)] = query.DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=10**12)] = 0,
    cursor: Annotated[str | None, Query(max_length=4000)] = None,
) -> Response:
    def answer(table: query.PublishedTable, engine: QueryEngine) -> Response:
        return rows_response(
            request, table, engine, q=q, fields=fields, sort=sort, limit=limit, offset=offset,
            cursor=cursor,
        )  # fmt: skip

    return await _answer(request, slug, resource, version, answer)


def rows_response(
    request: Request,
    table: query.PublishedTable,
    engine: QueryEngine,
    *,
    q: str,
    fields: str | None,
    sort: str | None,
    limit: int,
    offset: int,
    cursor: str | None,
) -> Response:
    """A page of rows of `table` (`/rows`), with its filters from the query string."""
    rows_request = _rows_request(
        request.query_params,
        table,
        q=q,
        fields=fields,
        sort=sort,
        limit=limit,
        offset=offset,
        cursor=cursor,
    )
    return _json(query.query_rows(engine, table, rows_request))


@router.get(
    "/datasets/{slug}/aggregate",
    response_model=QueryPage,
    summary="Group and aggregate a dataset's table",
    description="`group_by=col` (repeat or comma-separate), `metric=count|count_distinct:col|"
    "sum:col|avg:col|min:col|max:col|median:col` (repeatable), filters and `q` as for rows, "
    "`sort` by a group column or metric name (`-count`).",
    dependencies=[PUBLIC_READ],
)
async def dataset_aggregate(
    request: Request,
    slug: str,
    group_by: Annotated[list[str] | None, Query(max_length=8)] = None,
    metric: Annotated[list[str] | None, Query(max_length=20)] = None,
    resource: ResourceParam = None,
    version: VersionParam = None,
    q: QParam = "",
    sort: SortParam = None,
    limit: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
) -> Response:
    def answer(table: query.PublishedTable, engine: QueryEngine) -> Response:
        return aggregate_response(
            request, table, engine, group_by=group_by, metric=metric, q=q, sort=sort, limit=limit
        )

    return await _answer(request, slug, resource, version, answer)


def aggregate_response(
    request: Request,
    table: query.PublishedTable,
    engine: QueryEngine,
    *,
    group_by: list[str] | None,
    metric: list[str] | None,
    q: str,
    sort: str | None,
    limit: int | None,
) -> Response:
    """Groups and metrics of `table` (`/aggregate`), filters from the query string."""
    groups = [name.strip() for item in group_by or [] for name in item.split(",") if name.strip()]
    for name in groups:
        table.column(name)
    filters = query.parse_filters(request.query_params.multi_items())
    for item in filters:
        table.column(item.column)
    metrics = query.parse_metrics(metric or [], table)
    result = query.query_aggregate(
        engine,
        table,
        group_by=groups,
        metrics=metrics,
        filters=filters,
        q=q,
        sort=sort,
        limit=limit,
    )
    return _json(result)


def _sql_text(sql: str | None, body: SqlQuery | None) -> tuple[str, int | None]:
    if body is not None:
        return body.sql, body.version
    if not sql:
        raise TownhallError(422, "invalid_request", "Send the query as `sql`.")
    return sql, None


SqlParam = Annotated[str | None, Query(max_length=20_000, description="One read-only SELECT")]
SqlBody = Annotated[SqlQuery | None, Body()]


def _run_sql(
    request: Request,
    db: DbSession,
    actor: Actor,
    sql: str,
    pinned: query.PublishedTable | None,
) -> Response:
    engine = _engine(request)
    guarded = query.check_sql(db, actor, engine, sql, pinned)
    _end_transaction(db)
    return _json(query.run_sql(engine, guarded, version=pinned.version if pinned else None))


@get_and_post(
    "/sql",
    response_model=QueryPage,
    summary="One read-only SELECT across the datasets you may read",
    description='Name tables by dataset slug (`FROM "street-trees"`), `"slug@N"` for version N, '
    "or `r_<resource id>`. Only published snapshots are read; no table functions, files or "
    "commands. Time-limited; rows capped (`truncated`).",
)
def sql_query(
    request: Request,
    db: DbSession,
    actor: PublicActor,
    sql: SqlParam = None,
    body: SqlBody = None,
) -> Response:
    text, _ = _sql_text(sql, body)
    return _run_sql(request, db, actor, text, None)


@get_and_post(
    "/datasets/{slug}/sql",
    response_model=QueryPage,
    summary="One read-only SELECT, with this dataset's `version` pinned",
)
def dataset_sql_query(
    request: Request,
    slug: str,
    db: DbSession,
    actor: PublicActor,
    sql: SqlParam = None,
    version: VersionParam = None,
    resource: ResourceParam = None,
    body: SqlBody = None,
) -> Response:
    text, body_version = _sql_text(sql, body)
    pinned = query.published_table(
        db, actor, slug, resource=resource, version=body_version or version
    )
    return _run_sql(request, db, actor, text, pinned)


# Downloads -----------------------------------------------------------------------------------


def _download(export_file: export.ExportFile) -> StreamingResponse:
    return StreamingResponse(
        export_file.stream(),
        media_type=export_file.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{export_file.filename}"',
            "Content-Length": str(export_file.size),
        },
    )


@router.get(
    "/datasets/{slug}/download.{fmt}",
    summary="Download a dataset's table (whole or filtered)",
    description="Formats: csv, ndjson, json, parquet, geojson (tables with geometry). Filters, "
    "`q`, `fields`, `sort` and `version` as for rows; no row cap.",
    response_class=StreamingResponse,
)
def dataset_download(
    request: Request,
    slug: str,
    fmt: DownloadFormat,
    db: DbSession,
    actor: PublicActor,
    resource: ResourceParam = None,
    version: VersionParam = None,
    q: QParam = "",
    fields: FieldsParam = None,
    sort: SortParam = None,
) -> StreamingResponse:
    table = query.published_table(db, actor, slug, resource=resource, version=version)
    _end_transaction(db)
    rows_request = _rows_request(
        request.query_params,
        table,
        q=q,
        fields=fields,
        sort=sort,
        limit=1,
        offset=0,
        cursor=None,
    )
    return _download(export.export_table(_engine(request), table, rows_request, fmt))


@get_and_post(
    "/sql/download.{fmt}",
    summary="Download the result of one read-only SELECT",
    description="As /api/v1/sql, without the row cap. Formats: csv, ndjson, json, parquet.",
    response_class=StreamingResponse,
)
def sql_download(
    request: Request,
    fmt: DownloadFormat,
    db: DbSession,
    actor: PublicActor,
    sql: SqlParam = None,
    body: SqlBody = None,
) -> StreamingResponse:
    text, _ = _sql_text(sql, body)
    engine = _engine(request)
    guarded = query.check_sql(db, actor, engine, text, None)
    _end_transaction(db)
    return _download(export.export_sql(engine, guarded, fmt))
