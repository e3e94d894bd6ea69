"""Native JSON routes for service requests under /api/v1 (Open311 lives in compat/open311)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Hashable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from townhall.accounts.auth import PublicActor, current_actor, is_anonymous, requires
from townhall.accounts.permissions import mark_access
from townhall.actor import ANONYMOUS, Actor
from townhall.aiodb import AsyncReadPool
from townhall.cache import InvalidatedCache
from townhall.db import unit_of_work, utcnow
from townhall.deps import DbSession
from townhall.errors import NotFoundError, TownhallError
from townhall.ratelimit import enforce as enforce_rate_limit
from townhall.ratelimit import enforce_async as enforce_rate_limit_async
from townhall.service_requests import actions, queries
from townhall.service_requests.lifecycle import PRIORITIES, SUB_STATUSES, sla_state
from townhall.service_requests.models import RequestService, ServiceRequest
from townhall.service_requests.schemas import (
    AssignInput,
    FollowInput,
    MergeInput,
    MessageStaff,
    NearbyRequest,
    NoteInput,
    NotePublic,
    PriorityInput,
    QueuePage,
    ReplyInput,
    RequestCreate,
    RequestCreated,
    RequestPage,
    RequestPublic,
    RequestStaff,
    ServiceCreate,
    ServicePublic,
    ServiceUpdate,
    TemplateCreate,
    TemplatePublic,
    TransitionInput,
    UpdateStaff,
)


class StatusRoute(APIRoute):
    """A route for the polled status lookups: a request without a query string calls the
    endpoint directly, skipping FastAPI's dependency solving (about a fifth of a lookup's CPU
    when measured); one with a query string goes through FastAPI as usual, so its parameters
    are validated and refused in the API's own error shape.

    The contract this relies on, for every endpoint of such a route: it is `async`; its path
    parameters are plain `str`; it takes the `Request` as `request`; every other parameter is
    an optional query parameter defaulting to None; its dependencies are access markers only
    (they do nothing when called). The OpenAPI document comes from the signature as for any
    route, and tests compare both paths' answers.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        validated = super().get_route_handler()
        answer_polled = self.answer_polled

        async def handler(request: Request) -> Response:
            if request.scope.get("query_string"):
                return await validated(request)
            return await answer_polled(request)

        return handler

    async def answer_polled(self, request: Request) -> Response:
        """The endpoint called directly with the path parameters: a request without a query
        string, here or from the app's front (`service_requests.hot_path.StatusHotPath`)."""
        response: Response = await self.endpoint(request=request, **request.path_params)
        return response


router = APIRouter(prefix="/api/v1", tags=["service requests"])
# The status lookup alone, so it can be matched before every other route (`include_first`).
status_router = APIRouter(prefix="/api/v1", tags=["service requests"], route_class=StatusRoute)
Worker = Annotated[Actor, Depends(requires("requests:work"))]
Editor = Annotated[Actor, Depends(requires("directory:edit"))]
NEARBY_RADIUS_M = 150.0


# Shared with the pages and the Open311 adapter --------------------------------------------------


def effects_for(request: Request) -> actions.Effects:
    """Side-effect targets for actions called from a route: the app's bus and queue."""
    runtime = request.app.state.runtime
    settings = request.app.state.settings
    return actions.Effects(
        bus=runtime.events,
        jobs=runtime.jobs,
        base_url=settings.base_url,
        site_name=settings.site_name,
        locate=getattr(request.app.state, "locate_district", None),
    )


def request_client_hash(request: Request) -> str | None:
    secret = request.app.state.settings.secret_key.get_secret_value()
    return actions.client_hash(secret, request.client.host if request.client else None)


def service_public(service: RequestService) -> ServicePublic:
    return ServicePublic(
        code=service.code,
        name=service.name,
        description=service.description,
        group=service.group,
        keywords=service.keywords or [],
        attributes=service.attributes or [],
        service_type=service.service_type,
        service_notice=service.service_notice,
        organization=service.organization.slug if service.organization else None,
        expected_days=service.expected_days,
        location_required=service.location_required,
        active=service.active,
    )


def _public_fields(db: Session, request: ServiceRequest) -> dict[str, Any]:
    duplicate_of = None
    if request.duplicate_of_id:
        original = queries.request_by_id(db, request.duplicate_of_id)
        duplicate_of = original.tracking_code if original else None
    return {
        "tracking_code": request.tracking_code,
        "status": request.status,
        "sub_status": request.sub_status,
        "sub_status_label": SUB_STATUSES[request.sub_status],
        "status_notes": request.status_notes,
        "service_code": request.service.code,
        "service_name": request.service.name,
        "description": request.public_description,
        "agency_responsible": request.organization.name if request.organization else None,
        "district": request.district_code,
        "address": request.address,
        "zipcode": request.zipcode,
        "lat": request.lat,
        "long": request.long,
        "requested_at": request.requested_at,
        "updated_at": request.updated_at,
        "expected_at": request.expected_at,
        "closed_at": request.closed_at,
        "duplicate_of": duplicate_of,
    }


def request_public(db: Session, request: ServiceRequest, *, history: bool) -> RequestPublic:
    notes = None
    if history:
        notes = [
            NotePublic(at=u.at, kind=u.kind, sub_status=u.to_sub_status, note=u.public_note)
            for u in queries.history(db, request.id, public_only=True)
        ]
    return RequestPublic(**_public_fields(db, request), history=notes)


def request_staff(
    db: Session, request: ServiceRequest, *, full: bool, now: datetime | None = None
) -> RequestStaff:
    sla = sla_state(
        requested_at=request.requested_at,
        expected_at=request.expected_at,
        sla_paused_at=request.sla_paused_at,
        closed_at=request.closed_at,
        now=now or utcnow(),
    )
    updates, messages = [], []
    if full:
        updates = [
            UpdateStaff(
                at=u.at,
                kind=u.kind,
                from_sub_status=u.from_sub_status,
                to_sub_status=u.to_sub_status,
                public_note=u.public_note,
                internal_note=u.internal_note,
                changes=u.changes or {},
                actor=u.actor_label,
            )
            for u in queries.history(db, request.id, public_only=False)
        ]
        messages = [
            MessageStaff(at=m.at, direction=m.direction, body=m.body, author=m.author_label)
            for m in queries.messages(db, request.id)
        ]
    assigned = request.assigned_user
    return RequestStaff(
        **_public_fields(db, request),
        history=None,
        priority=request.priority,
        channel=request.channel,
        exact_description=request.description,
        attributes=request.attribute_values or {},
        resident_name=request.resident_name,
        resident_email=request.resident_email,
        resident_phone=request.resident_phone,
        assigned_user_id=request.assigned_user_id,
        assigned_to=(assigned.display_name or assigned.email) if assigned else None,
        sla_paused=sla.paused,
        sla_late=sla.late and request.status == "open",
        sla_remaining_hours=round(sla.remaining.total_seconds() / 3600, 1)
        if sla.remaining is not None
        else None,
        hidden=request.hidden,
        updates=updates,
        messages=messages,
    )


# Status lookups: shared with the Open311 adapter -----------------------------------------------

Result = TypeVar("Result")


async def _status_lookup_access() -> None:
    """The access marker (public) of routes that resolve their caller themselves, in the same
    thread and unit of work as their query or write: the status lookups (`status_caller`;
    no thread at all for an anonymous caller, `run_status_lookup` and
    `status_lookup_is_async`) and submissions."""


public_status = mark_access(_status_lookup_access, "public")
PUBLIC_STATUS = Depends(public_status)


def status_caller(request: Request) -> Actor:
    """Who is looking. An anonymous caller (no token, no session cookie: the usual resident or
    client) is only counted by the rate limiter; anyone else is resolved by `current_actor` in
    a session of its own, as on every other route (an unknown token still gets 401)."""
    if is_anonymous(request):
        request.state.actor = ANONYMOUS
        enforce_rate_limit(request, ANONYMOUS)
        return ANONYMOUS
    runtime = request.app.state.runtime
    with unit_of_work(runtime.read_session_factory, write_factory=runtime.session_factory) as db:
        return current_actor(request, db, request.app.state.settings)


def status_lookup_is_async(request: Request) -> bool:
    """Whether this status lookup runs on the event loop with async I/O: an anonymous caller
    (nothing to resolve, only the rate limiter to count) on PostgreSQL through psycopg (the
    driver Townhall installs). Its one query goes through the app's `AsyncReadPool` and the
    Redis counter through `redis.asyncio` (`status_read`, `status_caller_async`).

    The thread path costs a hop to the thread pool and back, SQLAlchemy's pool checkout with
    its pre-ping, two queries and a blocking Redis call: four or five round trips and, measured
    in process, two to three times the CPU (docs/performance.md, "Load: service requests"). Callers
    with a token or a session keep that path: resolving them may write.
    """
    dialect = request.app.state.runtime.read_engine.dialect
    return dialect.driver == "psycopg" and is_anonymous(request)


async def status_caller_async(request: Request) -> Actor:
    """`status_caller` for an anonymous caller on the event loop (`status_lookup_is_async`)."""
    request.state.actor = ANONYMOUS
    await enforce_rate_limit_async(request, ANONYMOUS)
    return ANONYMOUS


def status_read_pool(request: Request) -> AsyncReadPool:
    """The app's async pool of the read database, made on first use; the app's lifespan closes
    it, and the rate limiter's async Redis client, as it ends (`Runtime.aclose`)."""
    state = request.app.state
    pool: AsyncReadPool | None = getattr(state, "status_read_pool", None)
    if pool is None:
        runtime = state.runtime
        pool = state.status_read_pool = AsyncReadPool(runtime.read_engine)
        runtime.close_with_loop(pool.aclose)
        if state.rate_limiter is not None:
            runtime.close_with_loop(state.rate_limiter.aclose)
    return pool


async def status_read(
    request: Request, read: Callable[[Any, Dialect, str], Awaitable[Result]], code: str
) -> Result:
    """`read(connection, dialect, code)` (`queries.request_status_async` or
    `request_status_with_notes`) on a connection of the app's async read pool."""
    pool = status_read_pool(request)
    return await pool.run(lambda connection: read(connection, pool.dialect, code))


async def run_status_lookup(request: Request, lookup: Callable[[], Result]) -> Result:
    """Run a status lookup on the event loop for an anonymous caller of an embedded instance
    (SQLite, no Redis), in the thread pool otherwise (on PostgreSQL, anonymous lookups take
    `status_lookup_is_async` instead).

    SQLite answers an indexed read from its page cache in tens of microseconds, less than the
    hop to a thread costs under load, and a WAL reader never waits for a writer; in one
    process the GIL gives threads no parallelism to win back. A networked database or Redis
    can stall, and resolving a token may write, so those lookups leave the loop.
    """
    runtime = request.app.state.runtime
    embedded = runtime.read_engine.dialect.name == "sqlite" and not runtime.settings.redis_url
    if embedded and is_anonymous(request):
        request.state.status_lookup_on_loop = True  # `status_connection` reads this
        return lookup()
    return await run_in_threadpool(lookup)


class LoopConnection:
    """One connection of the SQLite read engine, kept checked out for the status lookups that
    run on the event loop: one thread, one lookup at a time, so nothing else ever uses it.

    A pool checkout and its return (with the pool's own rollback) cost about as much as the
    two queries; here each lookup costs one `BEGIN` and one `ROLLBACK`. A database error
    discards the connection (the next lookup takes a new one); nothing is ever written.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._error = engine.dialect.loaded_dbapi.Error
        self._kept: Any = None  # the pool's proxy, checked out for good

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """The DBAPI connection inside a deferred read transaction, rolled back after."""
        if self._kept is None:
            self._kept = self._engine.raw_connection()
        kept = self._kept
        connection = kept.dbapi_connection
        failed = False
        try:
            connection.execute("BEGIN")
            yield connection
        except self._error:
            failed = True
            raise
        finally:
            if failed:
                self._kept = None
                kept.invalidate()
            else:
                connection.rollback()


@contextmanager
def status_connection(request: Request) -> Iterator[tuple[Any, Dialect]]:
    """A DBAPI connection of the read engine for `queries.request_status` and
    `public_notes`: on SQLite in one read transaction (an explicit deferred BEGIN, as the read
    engine's sessions have); on PostgreSQL in autocommit. On the event loop, the app's
    `LoopConnection`; elsewhere a pooled one, whose return rolls the transaction back.
    Nothing is written."""
    engine = request.app.state.runtime.read_engine
    if request.scope.get("state", {}).get("status_lookup_on_loop"):
        state = request.app.state
        loop_connection: LoopConnection | None = getattr(state, "status_loop_connection", None)
        if loop_connection is None:
            loop_connection = state.status_loop_connection = LoopConnection(engine)
        with loop_connection.transaction() as dbapi_connection:
            yield dbapi_connection, engine.dialect
        return
    connection = engine.raw_connection()
    sqlite = engine.dialect.name == "sqlite"
    try:
        if sqlite:
            connection.cursor().execute("BEGIN")
        else:
            # PostgreSQL reads in READ COMMITTED, where every statement takes its own snapshot
            # inside a transaction or not: one would add a BEGIN and a ROLLBACK round trip.
            connection.dbapi_connection.autocommit = True
        yield connection, engine.dialect
    finally:
        if not sqlite:
            connection.dbapi_connection.autocommit = False
        connection.close()


def include_first(app: FastAPI, router: APIRouter) -> None:
    """Include `router` ahead of every route registered so far.

    FastAPI tries routes in order, pattern by pattern; with every slice registered, that walk
    cost more than the rest of a status lookup (a 404 under /api/ took 1.5 ms of CPU here).
    The polled lookups are tried first; their patterns shadow no other route
    (`tests/test_load_bench_smoke.py` walks the app's routes to check). The router's
    `StatusRoute`s are also listed in `app.state.status_routes`, where `create_app` finds the
    routes its `StatusHotPath` answers in front of the middleware.
    """
    app.include_router(router)
    routes = app.router.routes
    routes.insert(0, routes.pop())
    status_routes: list[StatusRoute] = getattr(app.state, "status_routes", [])
    status_routes.extend(r for r in router.routes if isinstance(r, StatusRoute))
    app.state.status_routes = status_routes


def json_response(document: Any, status_code: int = 200) -> Response:
    """JSON by orjson: UTF-8, datetimes in ISO 8601 with `Z` as Pydantic writes them."""
    return Response(
        orjson.dumps(document, option=orjson.OPT_UTC_Z),
        status_code=status_code,
        media_type="application/json",
    )


def status_document(row: Any, notes: list[Any]) -> dict[str, Any]:
    """`RequestPublic` with its history, from `queries.request_status` and `public_notes`
    (the same fields and values as `request_public(..., history=True)`; a test compares)."""
    return {
        "tracking_code": row.tracking_code,
        "status": row.status,
        "sub_status": row.sub_status,
        "sub_status_label": SUB_STATUSES[row.sub_status],
        "status_notes": row.status_notes,
        "service_code": row.service_code,
        "service_name": row.service_name,
        "description": row.public_description,
        "agency_responsible": row.agency_responsible,
        "district": row.district_code,
        "address": row.address,
        "zipcode": row.zipcode,
        "lat": row.lat,
        "long": row.long,
        "requested_at": row.requested_at,
        "updated_at": row.updated_at,
        "expected_at": row.expected_at,
        "closed_at": row.closed_at,
        "duplicate_of": row.duplicate_of,
        "history": [
            {"at": n.at, "kind": n.kind, "sub_status": n.to_sub_status, "note": n.public_note}
            for n in notes
        ],
    }


# Request types ---------------------------------------------------------------------------------


@router.get("/request-services", response_model=list[ServicePublic], summary="Request types")
def list_request_services(db: DbSession, actor: PublicActor) -> list[ServicePublic]:
    include_inactive = actor.can("directory:edit")
    return [service_public(s) for s in queries.list_services(db, include_inactive=include_inactive)]


@router.post(
    "/request-services", response_model=ServicePublic, status_code=201, summary="Add a type"
)
def create_request_service(body: ServiceCreate, db: DbSession, actor: Editor) -> ServicePublic:
    fields = body.model_dump(exclude={"code", "name", "organization"})
    fields["attributes"] = [a.model_dump() for a in body.attributes]
    service = actions.create_service(
        db,
        actor=actor,
        code=body.code,
        name=body.name,
        organization_slug=body.organization,
        **fields,
    )
    return service_public(service)


@router.patch(
    "/request-services/{code}", response_model=ServicePublic, summary="Change a request type"
)
def update_request_service(
    code: str, body: ServiceUpdate, db: DbSession, actor: Editor
) -> ServicePublic:
    fields = body.model_dump(exclude={"organization"}, exclude_unset=True)
    if body.attributes is not None:
        fields["attributes"] = [a.model_dump() for a in body.attributes]
    service = actions.update_service(
        db, actor=actor, code=code, organization_slug=body.organization, **fields
    )
    return service_public(service)


@router.get(
    "/request-services/{code}/nearby",
    response_model=list[NearbyRequest],
    summary="Open requests of this type near a point (duplicates to follow instead)",
)
def nearby_requests(
    code: str,
    db: DbSession,
    actor: PublicActor,
    lat: Annotated[float, Query(ge=-90, le=90)],
    long: Annotated[float, Query(ge=-180, le=180)],
    radius: Annotated[float, Query(gt=0, le=2000)] = NEARBY_RADIUS_M,
) -> list[NearbyRequest]:
    service = queries.service_by_code(db, code)
    if service is None:
        raise NotFoundError("service", code)
    return [
        NearbyRequest(
            tracking_code=r.tracking_code,
            distance_m=round(distance, 1),
            sub_status_label=SUB_STATUSES[r.sub_status],
            description=r.public_description,
            requested_at=r.requested_at,
        )
        for r, distance in queries.nearby_open_requests(
            db, service_id=service.id, lat=lat, long=long, radius_m=radius
        )
    ]


# Requests --------------------------------------------------------------------------------------


@router.post(
    "/requests",
    response_model=RequestCreated,
    status_code=201,
    summary="Submit a request",
    dependencies=[PUBLIC_STATUS],
)
async def submit_request(body: RequestCreate, request: Request) -> RequestCreated:
    """Anyone may submit; name, email and phone stay private. Rate-limited per address and
    per API token.

    The caller is resolved and the request stored in one unit of work, in one hop to the
    thread pool. With the caller resolved in a dependency of its own, a request took SQLite's
    write lock (or a pooled connection) in one thread and waited for another thread to go
    on; 64 concurrent submissions then filled the pool's 40 threads with requests waiting for
    that lock, and none could finish (measured: 0 submissions in 15 s, `python -m bench
    load`)."""
    return await run_in_threadpool(_submit, body, request)


def _submit(body: RequestCreate, request: Request) -> RequestCreated:
    runtime = request.app.state.runtime
    effects = effects_for(request)
    district = district_before_transaction(effects, body.lat, body.long)
    with unit_of_work(runtime.session_factory) as db:
        actor = current_actor(request, db, request.app.state.settings)
        return _store_submission(db, actor, body, request, effects, district)


def district_before_transaction(
    effects: actions.Effects, lat: float | None, long: float | None
) -> str | None:
    """The district of a submission's point, found before its transaction begins.

    The district index may read the database when it checks for new boundaries. Inside the
    submission's transaction that read took a second pooled connection while holding the
    first; with every connection held by a submission waiting for its second, PostgreSQL's
    pool ran dry and nothing moved until 30 s timeouts (`python -m bench load`)."""
    if effects.locate is None or lat is None or long is None:
        return None
    return effects.locate(lat, long)


def _store_submission(
    db: Session,
    actor: Actor,
    body: RequestCreate,
    request: Request,
    effects: actions.Effects,
    district: str | None,
) -> RequestCreated:
    submission = actions.Submission(
        service_code=body.service_code,
        description=body.description,
        lat=body.lat,
        long=body.long,
        address=body.address,
        address_id=body.address_id,
        zipcode=body.zipcode,
        attributes={
            code: value if isinstance(value, list) else [value]
            for code, value in body.attributes.items()
        },
        media_url=body.media_url,
        resident_name=body.name,
        resident_email=body.email,
        resident_phone=body.phone,
        channel=body.channel,
        priority=body.priority if actor.can("requests:work") else None,
        client_hash=request_client_hash(request),
        district_code=district,
    )
    submitted = actions.submit_request(db, actor=actor, submission=submission, effects=effects)
    created = submitted.request
    return RequestCreated(
        tracking_code=created.tracking_code,
        tracking_url=effects.tracking_url(created.tracking_code),
        status=created.status,
        expected_datetime=created.expected_at,
    )


Codes = Annotated[list[str] | None, Query(max_length=50)]
T = TypeVar("T")


def known_values(param: str, values: list[T] | None, allowed: Iterable[T]) -> list[T]:
    """`values` when each is one of `allowed`; else a 422 naming the parameter and the
    value. A filter on a value that cannot exist is a client mistake: ignoring it would
    answer a different question than the one asked."""
    allowed = list(allowed)
    for value in values or []:
        if value not in allowed:
            message = f"unknown value {value!r}; one of {', '.join(map(str, allowed))}"
            raise TownhallError(
                422,
                "invalid_request",
                f"{param}: {message}",
                errors=[{"loc": ["query", param], "message": message, "type": "value_error"}],
            )
    return list(values or [])


@router.get("/requests", response_model=RequestPage, summary="Public list of requests")
def list_requests(
    db: DbSession,
    actor: PublicActor,
    status: Annotated[list[str] | None, Query(max_length=2)] = None,
    sub_status: Codes = None,
    service_code: Codes = None,
    district: Codes = None,
    requested_after: datetime | None = None,
    requested_before: datetime | None = None,
    updated_after: datetime | None = None,
    q: Annotated[str, Query(max_length=200)] = "",
    sort: Annotated[str, Query(pattern="^(newest|oldest|updated)$")] = "newest",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> RequestPage:
    filters = queries.RequestFilter(
        statuses=known_values("status", status, ("open", "closed")),
        sub_statuses=known_values("sub_status", sub_status, SUB_STATUSES),
        service_codes=service_code or [],
        district_codes=district or [],
        requested_from=_aware(requested_after),
        requested_to=_aware(requested_before),
        updated_from=_aware(updated_after),
        text=q,
    )
    rows, total = queries.list_requests(
        db, filters, sort=sort, limit=limit, offset=offset, with_total=True
    )
    return RequestPage(
        total=total or 0,
        limit=limit,
        offset=offset,
        items=[request_public(db, r, history=False) for r in rows],
    )


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@status_router.get(
    "/requests/{code}",
    response_model=RequestPublic,
    summary="One request (public)",
    dependencies=[PUBLIC_STATUS],
)
async def read_request(code: str, request: Request) -> Response:
    """The status lookup residents poll: one query for the request, one for its public notes
    (one for both for an anonymous caller on PostgreSQL), serialised by orjson straight from
    the rows (no ORM objects, no model validation)."""
    if status_lookup_is_async(request):
        return await _status_response_async(request, code)
    return await run_status_lookup(request, lambda: _status_response(request, code))


async def _status_response_async(request: Request, code: str) -> Response:
    await status_caller_async(request)
    cache, key, kept = kept_status(request, code, "native")
    if kept is not None:
        return kept
    started = cache.begin()
    row = await status_read(request, queries.request_status_with_notes, code)
    if row is None or row.hidden:
        raise NotFoundError("request", code)
    response = json_response(status_document(row, queries.notes_of(row)))
    return keep_status(cache, key, response, started=started, request_id=row.id)


def _status_response(request: Request, code: str) -> Response:
    status_caller(request)
    cache, key, kept = kept_status(request, code, "native")
    if kept is not None:
        return kept
    started = cache.begin()
    with status_connection(request) as (connection, dialect):
        row = queries.request_status(connection, dialect, code)
        if row is None or row.hidden:
            raise NotFoundError("request", code)
        notes = queries.public_notes(connection, dialect, row.id)
    response = json_response(status_document(row, notes))
    return keep_status(cache, key, response, started=started, request_id=row.id)


def kept_status(
    request: Request, code: str, *variant: str
) -> tuple[InvalidatedCache, Hashable, Response | None]:
    """The app's status cache, the key of request `code`'s answer in `variant` (`native`,
    `open311` and its format), and that answer kept by `keep_status` as a new response, or
    None.

    The status lookups are what residents and clients poll, the busiest reads of a portal;
    the answers are the same for every caller (public columns only), and every change to a
    request drops its answers on every node (`townhall.cache`, `queries.watch_status_changes`).
    The rate limit is counted before, as for any lookup. Only found requests (200) are kept.
    """
    cache: InvalidatedCache = request.app.state.status_cache
    key = (*variant, queries.normalise_code(code))
    kept = cache.get(key)
    if kept is None:
        return cache, key, None
    body, media_type = kept
    return cache, key, Response(body, media_type=media_type)


def keep_status(
    cache: InvalidatedCache, key: Hashable, response: Response, *, started: float, request_id: int
) -> Response:
    """Keep a 200 status answer of request `request_id`, read since `started`; return it."""
    cache.put(
        key,
        (response.body, response.media_type),
        started=started,
        tags=queries.status_tags(request_id),
    )
    return response


@router.post("/requests/{code}/follow", summary="Follow a request by email", status_code=201)
def follow(
    code: str, body: FollowInput, db: DbSession, actor: PublicActor, request: Request
) -> dict[str, Any]:
    actions.follow_request(
        db, actor=actor, code=code, email=body.email, effects=effects_for(request)
    )
    return {"ok": True}


# Staff -----------------------------------------------------------------------------------------


@router.get("/queue", response_model=QueuePage, summary="The staff work queue")
def work_queue(
    db: DbSession,
    actor: Worker,
    sub_status: Codes = None,
    service_code: Codes = None,
    district: Codes = None,
    priority: Annotated[list[int] | None, Query(max_length=4)] = None,
    assigned: Annotated[str, Query(pattern="^(any|me|none)$")] = "any",
    late: bool = False,
    status: Annotated[str, Query(pattern="^(open|closed|any)$")] = "open",
    q: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> QueuePage:
    known_values("sub_status", sub_status, SUB_STATUSES)
    known_values("priority", priority, PRIORITIES)
    filters = queue_filter(
        actor,
        sub_status=sub_status,
        service_code=service_code,
        district=district,
        priority=priority,
        assigned=assigned,
        late=late,
        status=status,
        q=q,
    )
    rows, total = queries.list_requests(
        db, filters, sort="queue", limit=limit, offset=offset, with_total=True
    )
    now = utcnow()
    return QueuePage(
        total=total or 0,
        limit=limit,
        offset=offset,
        items=[request_staff(db, r, full=False, now=now) for r in rows],
    )


def queue_filter(
    actor: Actor,
    *,
    sub_status: list[str] | None = None,
    service_code: list[str] | None = None,
    district: list[str] | None = None,
    priority: list[int] | None = None,
    assigned: str = "any",
    late: bool = False,
    status: str = "open",
    q: str = "",
) -> queries.RequestFilter:
    """The queue's filters; staff of an office see their offices' requests."""
    return queries.RequestFilter(
        statuses=[] if status == "any" else [status],
        sub_statuses=[s for s in sub_status or [] if s in SUB_STATUSES],
        service_codes=service_code or [],
        district_codes=district or [],
        priorities=priority or [],
        assigned_user_id=actor.user_id if assigned == "me" else None,
        unassigned=assigned == "none",
        organization_ids=[] if actor.can("system:admin") else sorted(actor.organization_ids),
        late_only=late,
        now=utcnow(),
        text=q,
        include_hidden=True,
    )


def _workable(db: Session, actor: Actor, code: str) -> ServiceRequest:
    found = queries.request_by_code(db, code)
    if found is None or not actions.can_work(actor, found):
        raise NotFoundError("request", code)
    return found


@router.get(
    "/requests/{code}/staff", response_model=RequestStaff, summary="One request, staff view"
)
def read_request_staff(code: str, db: DbSession, actor: Worker) -> RequestStaff:
    return request_staff(db, _workable(db, actor, code), full=True)


@router.post(
    "/requests/{code}/transitions", response_model=RequestStaff, summary="Change the status"
)
def change_status(
    code: str, body: TransitionInput, db: DbSession, actor: Worker, request: Request
) -> RequestStaff:
    effects = effects_for(request)
    public_note = body.public_note
    if body.template_id is not None and not public_note:
        public_note = actions.apply_template(
            db, template_id=body.template_id, request=_workable(db, actor, code), effects=effects
        )
    updated = actions.transition(
        db,
        actor=actor,
        code=code,
        to=body.sub_status,
        public_note=public_note,
        internal_note=body.internal_note,
        effects=effects,
    )
    return request_staff(db, updated, full=True)


@router.post("/requests/{code}/notes", response_model=RequestStaff, summary="Add a note")
def add_note(
    code: str, body: NoteInput, db: DbSession, actor: Worker, request: Request
) -> RequestStaff:
    updated = actions.add_note(
        db,
        actor=actor,
        code=code,
        public_note=body.public_note,
        internal_note=body.internal_note,
        effects=effects_for(request),
    )
    return request_staff(db, updated, full=True)


@router.post("/requests/{code}/assignment", response_model=RequestStaff, summary="Assign")
def assign(
    code: str, body: AssignInput, db: DbSession, actor: Worker, request: Request
) -> RequestStaff:
    updated = actions.assign(
        db,
        actor=actor,
        code=code,
        user_id=body.user_id,
        internal_note=body.internal_note,
        effects=effects_for(request),
    )
    return request_staff(db, updated, full=True)


@router.post("/requests/{code}/priority", response_model=RequestStaff, summary="Set priority")
def set_priority(
    code: str, body: PriorityInput, db: DbSession, actor: Worker, request: Request
) -> RequestStaff:
    updated = actions.set_priority(
        db, actor=actor, code=code, priority=body.priority, effects=effects_for(request)
    )
    return request_staff(db, updated, full=True)


@router.post("/requests/{code}/merge", response_model=RequestStaff, summary="Close as a duplicate")
def merge(
    code: str, body: MergeInput, db: DbSession, actor: Worker, request: Request
) -> RequestStaff:
    updated = actions.merge_duplicate(
        db, actor=actor, code=code, into_code=body.into, effects=effects_for(request)
    )
    return request_staff(db, updated, full=True)


@router.post(
    "/requests/{code}/replies",
    response_model=RequestStaff,
    status_code=201,
    summary="Message the resident",
)
def reply(
    code: str, body: ReplyInput, db: DbSession, actor: Worker, request: Request
) -> RequestStaff:
    actions.reply_to_resident(
        db, actor=actor, code=code, body=body.body, effects=effects_for(request)
    )
    return request_staff(db, _workable(db, actor, code), full=True)


@router.get("/request-templates", response_model=list[TemplatePublic], summary="Reply templates")
def list_templates(db: DbSession, actor: Worker) -> list[TemplatePublic]:
    return [TemplatePublic.model_validate(t) for t in queries.response_templates(db)]


@router.post(
    "/request-templates",
    response_model=TemplatePublic,
    status_code=201,
    summary="Add a reply template",
)
def create_template(body: TemplateCreate, db: DbSession, actor: Editor) -> TemplatePublic:
    template = actions.create_response_template(
        db, actor=actor, name=body.name, body=body.body, sub_status=body.sub_status
    )
    return TemplatePublic.model_validate(template)
