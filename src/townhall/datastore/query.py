"""Reads over published tables: rows with filters and keyset cursors, aggregates, user SQL.

Which table and snapshot a request reads is settled in the SQL database (`published_table`),
with the catalog's visibility rules; the query then runs on the locked read-only DuckDB
(`engine`) against that snapshot only (`lake.main.r_<id> AT (VERSION => n)`).

Filters, sorts and metrics are compiled to sqlglot expressions: column names are checked
against the version's columns and quoted by sqlglot, and values are written as literals that
sqlglot quotes (`Binder`: a string can only ever be a string constant), cast to the column's
type. They are not bound parameters: DuckDB's Python client imports pandas and PyArrow to
convert any parameter (measured: about 90 MB more resident memory per process and a second at
the first filtered query). Rows are turned into JSON by DuckDB (`to_json`), so no value is
converted row by row in Python.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import functools
import hashlib
import json
import re
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import duckdb
import sqlglot
from sqlalchemy import bindparam
from sqlalchemy import select as sql_select
from sqlalchemy.orm import Session
from sqlglot import exp

from townhall.actor import Actor
from townhall.catalog import queries as catalog_queries
from townhall.catalog.models import Dataset, DatasetVersion, Resource
from townhall.datastore import serving
from townhall.datastore.coltypes import (
    is_geometry,
    is_numeric,
    is_orderable,
    is_text,
    logical_type,
)
from townhall.datastore.engine import QueryEngine, elapsed_ms, out_of_memory
from townhall.datastore.lake import LAKE
from townhall.datastore.sql_guard import GuardedSql, TableBinding, guard_sql
from townhall.errors import NotFoundError, TownhallError

OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "like", "isnull", "bbox", "near")
"""Filter operators (`col__op=value`); docs/api.md lists them. `bbox` and `near` are for
geometry columns; `col=value` is shorthand for `col__eq=value`."""
RESERVED_PARAMS = frozenset(
    {"resource", "version", "q", "fields", "sort", "limit", "offset", "cursor", "group_by"}
    | {"metric", "sql", "format"}
)
METRICS = ("count", "count_distinct", "sum", "avg", "min", "max", "median")
DEFAULT_LIMIT = 100
MAX_IN_VALUES = 1_000
# A filtered page's exact total gets this long; past it the total is estimated from a sample.
# Small, because it is paid on every filtered first page: on a serving copy clustered by the
# filtered column the count takes a few milliseconds even on 5M rows.
COUNT_BUDGET_SECONDS = 0.25
ESTIMATE_SAMPLE_ROWS = 100_000
# The estimate reads about ESTIMATE_SAMPLE_ROWS rows: it may take longer than the count's budget
# on a busy machine, and it only runs once the count has given up.
ESTIMATE_BUDGET_SECONDS = 1.0
ROWID = "rowid"
_TRUE = frozenset({"1", "true", "yes", "t", "y"})
_FALSE = frozenset({"0", "false", "no", "f", "n"})
_COMPARISONS: dict[str, type[exp.Binary]] = {
    "eq": exp.EQ,
    "ne": exp.NEQ,
    "lt": exp.LT,
    "lte": exp.LTE,
    "gt": exp.GT,
    "gte": exp.GTE,
}


def invalid_filter(message: str, column: str | None = None) -> TownhallError:
    errors = [{"loc": ["query", column], "message": message}] if column else []
    return TownhallError(422, "invalid_filter", message, errors=errors)


# Which table -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedTable:
    """A resource's table at one version: everything a query needs, read from the database."""

    dataset_slug: str
    resource_id: int
    resource_name: str
    table_name: str
    snapshot_id: int
    version: int
    row_count: int
    columns: tuple[dict[str, Any], ...]
    current: bool = False
    """The resource's published version (the one a serving copy is built for)."""
    dataset_id: int | None = None
    """The dataset's id (what a kept lookup of this table is dropped by)."""
    copy_alias: str | None = None
    """Set by `serve()` when the node's serving copy of this version answers the query."""
    cluster: tuple[str, ...] = ()
    """The serving copy's sort key (what its row ids follow, with the lake row id)."""

    def column(self, name: str) -> dict[str, Any]:
        for column in self.columns:
            if column["name"] == name:
                return column
        raise invalid_filter(f"No column {name!r} in this table.", name)

    @property
    def has_rowid(self) -> bool:
        # A column of the user's named rowid hides DuckLake's row id.
        return not any(c["name"].lower() == ROWID for c in self.columns)

    def ref(self) -> exp.Table:
        if self.copy_alias is not None:
            return exp.Table(
                this=exp.to_identifier(self.table_name, quoted=True),
                db=exp.to_identifier("main", quoted=True),
                catalog=exp.to_identifier(self.copy_alias, quoted=True),
            )
        return self.lake_ref()

    def lake_ref(self) -> exp.Table:
        return exp.Table(
            this=exp.to_identifier(self.table_name, quoted=True),
            db=exp.to_identifier("main", quoted=True),
            catalog=exp.to_identifier(LAKE, quoted=True),
            when=exp.HistoricalData(
                this="AT", kind="VERSION", expression=exp.Literal.number(self.snapshot_id)
            ),
        )

    @property
    def served_from(self) -> str:
        return "lake" if self.copy_alias is None else "copy"

    @property
    def label(self) -> str:
        return f"{self.dataset_slug}@{self.version}"


def readable_dataset(session: Session, actor: Actor, slug: str) -> Dataset:
    """The dataset if the actor may read it; 404 otherwise (existence is not leaked)."""
    dataset = catalog_queries.dataset_by_slug(session, slug)
    if (
        dataset is None
        or dataset.state == "deleted"
        or not catalog_queries.can_read(actor, dataset)
    ):
        raise NotFoundError("dataset", slug)
    return dataset


def _table_of(
    session: Session, actor: Actor, dataset: Dataset, resource: Resource, number: int | None
) -> PublishedTable:
    version: DatasetVersion | None = catalog_queries.version_of(session, resource, number)
    if version is None:
        if number is None:
            raise NotFoundError("table", f"for {dataset.slug} (nothing ingested yet)")
        raise NotFoundError("version", f"{number} of {dataset.slug}")
    if version.status == "withdrawn" and not catalog_queries.can_edit(actor, dataset):
        raise NotFoundError("version", f"{version.number} of {dataset.slug}")
    if version.snapshot_id is None:
        raise NotFoundError("table", f"for {dataset.slug} version {version.number}")
    return PublishedTable(
        dataset_slug=dataset.slug,
        resource_id=resource.id,
        resource_name=resource.name,
        table_name=version.table_name,
        snapshot_id=int(version.snapshot_id),
        version=version.number,
        row_count=int(version.row_count),
        columns=tuple(version.columns or ()),
        current=resource.published_version_id == version.id,
        dataset_id=dataset.id,
    )


def serve(
    engine: QueryEngine, table: PublishedTable, *, from_lake: bool = False
) -> tuple[QueryEngine, PublishedTable]:
    """The engine and table a query should use: the node's serving copy of this version when
    there is one (the engine is pinned to the instance that has it attached), else the lake.
    Asking for the published version of a table with no copy yet queues its build.
    `from_lake` keeps the lake (a cursor made on the lake continues there)."""
    if table.copy_alias is not None:
        return engine, table
    pinned = engine.pin()
    alias = None if from_lake else pinned.copy_alias(table.table_name, table.snapshot_id)
    copies = engine.serving
    if alias is None:
        if table.current and copies is not None and not from_lake:
            copies.want(table.table_name, table.snapshot_id, table.row_count, list(table.columns))
        return pinned, table
    cluster = copies.cluster(table.table_name, table.snapshot_id) if copies else None
    if cluster is None:
        return pinned, table
    return pinned, replace(table, copy_alias=alias, cluster=tuple(cluster))


def published_table(
    session: Session,
    actor: Actor,
    slug: str,
    *,
    resource: str | None = None,
    version: int | None = None,
) -> PublishedTable:
    """The table a request on dataset `slug` reads: resource `resource` (its id or name; by
    default the first resource holding a table) at version `version` (default: published).

    Raises NotFoundError (dataset, resource, table, version) when it does not exist or the actor
    may not read it.
    """
    if version is not None:
        return _published_table(session, actor, slug, resource=resource, version=version)
    # The stamp is read first: a change landing after it makes the next stamp differ.
    stamp = _table_stamp(session, slug)
    cache = _table_cache(session)
    cached = _cached_table(cache, actor, slug, resource, stamp)
    if cached is not None:
        return cached
    table = _published_table(session, actor, slug, resource=resource, version=version)
    with _table_caches_lock:
        if len(cache) >= _TABLE_CACHE_SIZE:
            cache.clear()
        cache[(slug, resource)] = (stamp, table)
    return table


# The published table per slug, kept in the process: loading the dataset, its resources and the
# version through the ORM costs about 7 ms a request (measured on the benchmark's machine), more
# than a first page takes on a serving copy. Each use re-reads one row per resource (a single
# Core query) as a stamp: any change of the dataset's state, visibility or organization, of a
# resource, its published pointer or that version's status gives another stamp and a reload.
# The permission check runs on every request, from the stamped fields.
_TABLE_CACHE_SIZE = 512
_table_caches: weakref.WeakKeyDictionary[Any, dict[tuple[str, str | None], Any]] = (
    weakref.WeakKeyDictionary()
)
_table_caches_lock = threading.Lock()


@dataclass(frozen=True)
class _Access:
    """The fields of a dataset `catalog_queries.can_read` and `can_edit` look at."""

    organization_id: int
    state: str
    visibility: str


def _stamp_statement() -> Any:
    return (
        sql_select(
            Dataset.id,
            Dataset.state,
            Dataset.visibility,
            Dataset.organization_id,
            Dataset.updated_at,
            Resource.id,
            Resource.name,
            Resource.position,
            Resource.published_version_id,
            Resource.updated_at,
            DatasetVersion.status,
        )
        .select_from(Dataset)
        .outerjoin(Resource, Resource.dataset_id == Dataset.id)
        .outerjoin(DatasetVersion, DatasetVersion.id == Resource.published_version_id)
        .where(Dataset.slug == bindparam("slug"))
        .order_by(Resource.position, Resource.id)
    )


# Built once, run on the session's connection (Core): building it and the ORM's execution path
# were about 0.5 ms of each read request.
_STAMP = _stamp_statement()


def _table_stamp(session: Session, slug: str) -> tuple[tuple[Any, ...], ...]:
    rows = session.connection().execute(_STAMP, {"slug": slug}).all()
    return tuple(tuple(row) for row in rows)


def _table_cache(session: Session) -> dict[tuple[str, str | None], Any]:
    bind = session.get_bind()
    with _table_caches_lock:
        cache = _table_caches.get(bind)
        if cache is None:
            cache = {}
            _table_caches[bind] = cache
        return cache


def _cached_table(
    cache: dict[tuple[str, str | None], Any],
    actor: Actor,
    slug: str,
    resource: str | None,
    fresh: tuple[tuple[Any, ...], ...],
) -> PublishedTable | None:
    entry = cache.get((slug, resource))
    if entry is None:
        return None
    stamp, table = entry
    # A withdrawn version's visibility depends on who asks: always the full path then.
    if fresh != stamp or not fresh or any(row[-1] == "withdrawn" for row in fresh):
        return None
    _, state, visibility, organization_id, *_ = fresh[0]
    access = _Access(int(organization_id), str(state), str(visibility))
    # Duck-typed: both checks read only these three fields of the dataset.
    if state == "deleted" or not catalog_queries.can_read(actor, access):  # type: ignore[arg-type]
        raise NotFoundError("dataset", slug)
    return table  # type: ignore[no-any-return]


def _published_table(
    session: Session,
    actor: Actor,
    slug: str,
    *,
    resource: str | None,
    version: int | None,
) -> PublishedTable:
    dataset = readable_dataset(session, actor, slug)
    if resource is not None:
        chosen = next(
            (r for r in dataset.resources if str(r.id) == resource or r.name == resource), None
        )
        if chosen is None:
            raise NotFoundError("resource", f"{resource} in {slug}")
    else:
        chosen = next((r for r in dataset.resources if r.published_version_id), None)
        if chosen is None:
            raise NotFoundError("table", f"for {slug} (nothing ingested yet)")
    return _table_of(session, actor, dataset, chosen, version)


def resource_table(
    session: Session, actor: Actor, resource_id: int, version: int | None = None
) -> PublishedTable:
    """The table of resource `resource_id` (as CKAN's datastore names tables by resource)."""
    resource = catalog_queries.resource_by_id(session, resource_id)
    if resource is None:
        raise NotFoundError("resource", resource_id)
    dataset = resource.dataset
    if dataset.state == "deleted" or not catalog_queries.can_read(actor, dataset):
        raise NotFoundError("resource", resource_id)
    return _table_of(session, actor, dataset, resource, version)


_RESOURCE_TABLE = re.compile(r"^(?:r_)?(\d+)$")


def sql_resolver(
    session: Session, actor: Actor, pinned: PublishedTable | None = None
) -> Any:  # Resolver
    """Resolve table names in user SQL: a dataset slug (`street-trees`, `street-trees@2`) or a
    resource table (`r_12`, `12`). `pinned` is the table the dataset-scoped endpoint was asked
    about (its `version` parameter applies when the SQL names no version)."""

    def resolve(name: str, version: int | None) -> TableBinding:
        match = _RESOURCE_TABLE.match(name)
        if match:
            table = resource_table(session, actor, int(match.group(1)), version)
        elif pinned is not None and name == pinned.dataset_slug and version is None:
            table = pinned
        else:
            table = published_table(session, actor, name, version=version)
        return TableBinding(table.table_name, table.snapshot_id, table.label)

    return resolve


# Filters ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filter:
    column: str
    op: str
    value: str


def sql_literal(value: Any) -> exp.Expression:
    """A Python value as a DuckDB constant: strings quoted by sqlglot (quotes doubled; DuckDB
    reads no other escape in '...'), floats as `CAST('repr' AS DOUBLE)` (the type a bound
    float had; covers nan and inf), dates and times as typed strings. Raises a 422 for any
    other value (a forged cursor's list or object) and for a NUL character, which DuckDB's
    SQL text cannot hold."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        return exp.Literal.number(value)
    if isinstance(value, float):
        return exp.Cast(this=exp.Literal.string(repr(value)), to=data_type("DOUBLE", None))
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return exp.Literal.number(str(value))
    if isinstance(value, str):
        if "\x00" in value:
            raise invalid_filter("Values cannot contain the NUL character.")
        return exp.Literal.string(value)
    for kind, name in ((dt.datetime, "TIMESTAMP"), (dt.date, "DATE"), (dt.time, "TIME")):
        if isinstance(value, kind):
            if isinstance(value, dt.datetime) and value.tzinfo is not None:
                name = "TIMESTAMPTZ"
            literal = exp.Literal.string(value.isoformat())
            return exp.Cast(this=literal, to=data_type(name))
    raise invalid_filter(f"Cannot use a value of type {type(value).__name__} here.")


class Binder:
    """Values of a query, written into its SQL as quoted constants (`sql_literal`).

    `values` stays empty, so callers that pass it to `execute()` as parameters pass none;
    `bound` lists the values written, in order."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.bound: list[Any] = []

    def bind(self, value: Any) -> exp.Expression:
        literal = sql_literal(value)
        self.bound.append(value)
        return literal

    def typed(self, value: Any, db_type: str) -> exp.Expression:
        return exp.Cast(this=self.bind(value), to=data_type(db_type))


def parse_filters(params: Sequence[tuple[str, str]]) -> list[Filter]:
    """`col__op=value` pairs from the query string (reserved names excluded)."""
    filters = []
    for key, value in params:
        if key in RESERVED_PARAMS or key.startswith("_"):
            continue
        column, sep, op = key.rpartition("__")
        if not sep or op not in OPERATORS:
            column, op = key, "eq"
        filters.append(Filter(column, op, value))
    return filters


def _limit(rows: int) -> exp.Limit:
    """`LIMIT rows` as a node (the builder `.limit(n)` parses the number's text)."""
    return exp.Limit(expression=exp.Literal.number(rows))


def _column(name: str) -> exp.Column:
    # From the name, not from an Identifier: `exp.column` deep-copies a node it is given
    # (about a third of the sqlglot work of a first page).
    return exp.Column(this=exp.Identifier(this=name, quoted=True))


def _truthy(value: str, column: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise invalid_filter(f"{column}__isnull takes true or false, not {value!r}.", column)


def _numbers(value: str, count: int, what: str, column: str) -> list[float]:
    try:
        numbers = [float(part) for part in value.split(",")]
    except ValueError:
        numbers = []
    if len(numbers) != count:
        raise invalid_filter(f"{column}__{what} takes {count} comma-separated numbers.", column)
    return numbers


def compile_filter(table: PublishedTable, item: Filter, binder: Binder) -> exp.Expression:
    column = table.column(item.column)
    db_type = str(column.get("db_type") or "VARCHAR")
    ref = _column(item.column)
    if item.op == "isnull":
        is_null = exp.Is(this=ref, expression=exp.Null())
        return is_null if _truthy(item.value, item.column) else exp.Not(this=is_null)
    if item.op in ("bbox", "near"):
        if not is_geometry(db_type):
            raise invalid_filter(f"{item.op} works on geometry columns only.", item.column)
        if item.op == "bbox":
            xmin, ymin, xmax, ymax = _numbers(item.value, 4, "bbox", item.column)
            envelope = exp.Anonymous(
                this="ST_MakeEnvelope",
                expressions=[binder.bind(v) for v in (xmin, ymin, xmax, ymax)],
            )
            return exp.Anonymous(this="ST_Intersects", expressions=[ref, envelope])
        lon, lat, meters = _numbers(item.value, 3, "near", item.column)
        point = exp.Anonymous(this="ST_Point", expressions=[binder.bind(lon), binder.bind(lat)])
        # Sphere distance from the shape's centroid: exact for points, close for small shapes.
        distance = exp.Anonymous(
            this="ST_Distance_Sphere",
            expressions=[exp.Anonymous(this="ST_Centroid", expressions=[ref]), point],
        )
        return exp.LTE(this=distance, expression=binder.bind(meters))
    if is_geometry(db_type):
        raise invalid_filter(
            f"Column {item.column!r} is geometry: filter it with __bbox, __near or __isnull.",
            item.column,
        )
    if item.op == "like":
        as_text = ref if is_text(db_type) else exp.Cast(this=ref, to=data_type("VARCHAR", None))
        return exp.Like(this=as_text, expression=binder.bind(item.value))
    if item.op == "in":
        values = item.value.split(",")
        if len(values) > MAX_IN_VALUES:
            raise invalid_filter(f"__in takes at most {MAX_IN_VALUES} values.", item.column)
        return exp.In(this=ref, expressions=[binder.typed(v, db_type) for v in values])
    return _COMPARISONS[item.op](this=ref, expression=binder.typed(item.value, db_type))


def text_search(table: PublishedTable, q: str, binder: Binder) -> exp.Expression | None:
    """`q`: rows where any text column contains the words, case-insensitively."""
    words = [w for w in q.lower().split() if w]
    if not words:
        return None
    texts = [c["name"] for c in table.columns if is_text(str(c.get("db_type") or ""))]
    if not texts:
        return exp.false()
    conditions = []
    for word in words:
        needle = binder.bind(word)
        matches = [
            exp.Anonymous(
                this="contains",
                expressions=[exp.Lower(this=_column(name)), needle.copy()],
            )
            for name in texts
        ]
        conditions.append(exp.or_(*matches) if len(matches) > 1 else matches[0])
    return exp.and_(*conditions) if len(conditions) > 1 else conditions[0]


def where_clause(
    table: PublishedTable, filters: Sequence[Filter], q: str, binder: Binder
) -> exp.Expression | None:
    conditions = [compile_filter(table, item, binder) for item in filters]
    searched = text_search(table, q, binder) if q else None
    if searched is not None:
        conditions.append(searched)
    if not conditions:
        return None
    return exp.and_(*conditions) if len(conditions) > 1 else conditions[0]


# Serialising -----------------------------------------------------------------------------------


def json_value(name: str, db_type: str) -> exp.Expression:
    """A column as it should reach JSON: geometry as a GeoJSON object, NaN and infinities as
    null (JSON has no word for them)."""
    ref = _column(name)
    upper = db_type.upper()
    if is_geometry(db_type):
        geojson = exp.Anonymous(this="ST_AsGeoJSON", expressions=[ref])
        return exp.Cast(this=geojson, to=data_type("JSON"))
    if upper in ("DOUBLE", "FLOAT", "REAL"):
        return exp.If(this=exp.Anonymous(this="isfinite", expressions=[ref]), true=ref)
    if upper == "JSON":
        return exp.Cast(this=ref, to=data_type("JSON"))
    return ref


def row_json(columns: Sequence[tuple[str, str]]) -> exp.Expression:
    """`CAST(to_json(struct_pack(name := value, ...)) AS VARCHAR)` for one output row."""
    pairs = [
        exp.PropertyEQ(this=exp.to_identifier(name, quoted=True), expression=json_value(name, t))
        for name, t in columns
    ]
    packed = exp.Anonymous(this="struct_pack", expressions=pairs)
    return exp.Cast(
        this=exp.Anonymous(this="to_json", expressions=[packed]),
        to=data_type("VARCHAR", None),
    )


@functools.lru_cache(maxsize=256)
def row_json_sql(columns: tuple[tuple[str, str], ...]) -> str:
    """`row_json(columns)` rendered, kept per column list: the same list comes back on every
    request for a table (rendering it was about 0.3 ms of a first page)."""
    return render(row_json(columns))


@functools.lru_cache(maxsize=256)
def _parsed_type(name: str, dialect: str | None) -> exp.DataType:
    return exp.DataType.build(name, dialect=dialect)


def data_type(name: str, dialect: str | None = "duckdb") -> exp.DataType:
    """A type node for a cast, parsed once per name (sqlglot parses the text on every
    `DataType.build`); a copy, as a node belongs to one tree."""
    return _parsed_type(name, dialect).copy()


def render(node: exp.Expression) -> str:
    return node.sql(dialect="duckdb", identify=True)


# Rows ------------------------------------------------------------------------------------------


@dataclass
class RowsRequest:
    fields: list[str] | None = None
    filters: list[Filter] = field(default_factory=list)
    q: str = ""
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (column, descending)
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    cursor: str | None = None


@dataclass
class QueryResult:
    rows_json: list[str]
    fields: list[dict[str, str]]
    total: int | None
    total_estimated: bool
    truncated: bool
    elapsed_ms: float
    version: int | None
    next_cursor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json_bytes(self) -> bytes:
        """The response body, rows spliced in as DuckDB wrote them."""
        meta = {
            "fields": self.fields,
            "total": self.total,
            "total_estimated": self.total_estimated,
            "truncated": self.truncated,
            "elapsed_ms": self.elapsed_ms,
            "version": self.version,
            "next_cursor": self.next_cursor,
            **self.extra,
        }
        tail = json.dumps(meta, separators=(",", ":"), default=str)[1:]
        return ('{"ok":true,"rows":[' + ",".join(self.rows_json) + "]," + tail).encode()


def parse_sort(raw: str | None, table: PublishedTable) -> list[tuple[str, bool]]:
    if not raw:
        return []
    keys = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        descending = part.startswith("-")
        name = part[1:] if descending else part
        column = table.column(name)
        if not is_orderable(str(column.get("db_type") or "")):
            raise invalid_filter(f"Column {name!r} cannot be sorted on.", name)
        keys.append((name, descending))
    if len(keys) > 8:
        raise invalid_filter("Sort on at most 8 columns.")
    return keys


def parse_fields(raw: str | None, table: PublishedTable) -> list[str] | None:
    if not raw:
        return None
    names = [name.strip() for name in raw.split(",") if name.strip()]
    for name in names:
        table.column(name)
    return list(dict.fromkeys(names))


def _cursor_fingerprint(table: PublishedTable, request: RowsRequest) -> str:
    basis = json.dumps(
        [
            table.resource_id,
            table.version,
            request.sort,
            [(f.column, f.op, f.value) for f in request.filters],
            request.q,
        ],
        default=str,
    )
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


def encode_cursor(
    fingerprint: str,
    keys: list[Any],
    rowid: int | None,
    offset: int | None,
    *,
    copy_order: list[str] | None = None,
) -> str:
    """`copy_order`: the page came in a serving copy's order (its cluster key); None: the
    lake's."""
    doc: dict[str, Any] = {"h": fingerprint, "k": keys, "r": rowid, "o": offset}
    if copy_order is not None:
        doc["s"] = "c"
        doc["c"] = copy_order
    raw = json.dumps(doc, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(raw: str, fingerprint: str) -> dict[str, Any]:
    try:
        padded = raw + "=" * (-len(raw) % 4)
        doc = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as error:
        raise TownhallError(
            400, "invalid_cursor", "The cursor is not one this API made."
        ) from error
    if not isinstance(doc, dict) or doc.get("h") != fingerprint:
        raise TownhallError(
            400,
            "invalid_cursor",
            "The cursor belongs to another query: keep filters, sort, q and version unchanged "
            "while paging.",
        )
    if not isinstance(doc.get("k"), list) or not (
        isinstance(doc.get("r"), int) or isinstance(doc.get("o"), int)
    ):
        raise TownhallError(400, "invalid_cursor", "The cursor is incomplete.")
    order = doc.get("c")
    if doc.get("s") not in (None, "c") or (
        doc.get("s") == "c"
        and not (isinstance(order, list) and all(isinstance(n, str) for n in order))
    ):
        raise TownhallError(400, "invalid_cursor", "The cursor is incomplete.")
    return doc


def _after(
    keys: list[tuple[exp.Expression, bool, str, bool]], values: list[Any], binder: Binder
) -> exp.Expression:
    """Rows strictly after `values` in the order `keys` (column, descending, type, nullable),
    NULLS LAST.

    Expanded as (k1 after v1) OR (k1 = v1 AND (rest after ...)), NULL counting as the largest
    value in both directions. `IS NULL` is only written for nullable keys: DuckDB 1.5.5 with the
    spatial extension loaded fails with an internal error on `rowid IS NULL` inside an OR.
    """
    (ref, descending, db_type, nullable), *rest = keys
    value, *rest_values = values
    if value is None:
        # Only NULLs remain in this key; among them, order by the rest.
        if not rest:
            return exp.false()
        same = exp.Is(this=ref.copy(), expression=exp.Null())
        return exp.and_(same, _after(rest, rest_values, binder))
    typed = binder.typed(value, db_type)
    later: exp.Expression = (exp.LT if descending else exp.GT)(this=ref.copy(), expression=typed)
    if nullable:
        later = exp.or_(later, exp.Is(this=ref.copy(), expression=exp.Null()))
    if not rest:
        return later
    same = exp.EQ(this=ref.copy(), expression=typed.copy())
    return exp.or_(later, exp.and_(same, _after(rest, rest_values, binder)))


# A page of rows is an answer about an immutable snapshot too: kept in the engine's answers
# per (table, snapshot, SQL) unless its rows take more than this (a page of 100 rows of the
# bench's 16 columns is about 40 KB).
PAGE_KEEP_MAX_BYTES = 256 * 1024


@dataclass(frozen=True)
class RowsPlan:
    """What one page request compiles to on one table: the same for the same request shape,
    so kept per shape in the engine's answers (compiling with sqlglot was most of the Python
    work of a first page). Never mutated once made."""

    sql: str
    offset: int
    limit: int
    fields: list[dict[str, str]]
    use_rowid: bool
    ordered_as: list[str] | None
    """The storage order the page comes in, for its cursor (None: the lake's)."""
    filtered: bool


def query_rows(engine: QueryEngine, table: PublishedTable, request: RowsRequest) -> QueryResult:
    """One page of rows. Raises TownhallError invalid_filter/invalid_cursor (bad input, 4xx),
    query_timeout (400).

    The page's rows are kept per (table, snapshot, SQL) (`PAGE_KEEP_MAX_BYTES`): the same
    request on the same version is answered from memory, with the same bytes except
    `elapsed_ms`. Which table and version the caller may read is settled before this, on
    every request (`published_table`)."""
    started = time.perf_counter()
    cap = engine.row_cap
    limit = max(1, min(request.limit, cap))
    fingerprint = _cursor_fingerprint(table, request)
    doc: dict[str, Any] | None = None
    if request.cursor:
        if request.offset:
            raise invalid_filter("Use either offset or cursor, not both.")
        doc = decode_cursor(request.cursor, fingerprint)
    # Row ids follow the storage's order: the lake's, or a serving copy's (its cluster key, then
    # the lake row id). A cursor continues in the order it was made in: on the lake, on this
    # node's copy, or, on a node whose copy is missing or differs, on the lake with the copy's
    # row ids computed (`row_number()` over the copy's order: slower, still correct).
    replayed = False
    if doc is None or doc.get("s") != "c":
        engine, table = serve(engine, table, from_lake=doc is not None)
    else:
        wanted = [str(name) for name in doc.get("c") or []]
        engine, table = serve(engine, table)
        if table.copy_alias is None or list(table.cluster) != wanted:
            table = replace(table, copy_alias=None, cluster=tuple(wanted))
            replayed = True
    # Everything the plan is made from: the table at its snapshot (its columns never change),
    # where it is read, and the request.
    shape = (
        "rows-plan",
        table.table_name,
        table.snapshot_id,
        table.copy_alias,
        table.cluster,
        replayed,
        None if request.fields is None else tuple(request.fields),
        tuple(request.filters),
        request.q,
        tuple(request.sort),
        limit,
        request.offset,
        request.cursor,
    )
    plan: RowsPlan | None = engine.answers.get(shape)
    if plan is None:
        plan = _rows_plan(table, request, limit, doc, replayed)
        engine.answers.put(shape, plan, 512 + 2 * len(plan.sql))
    page_key = ("page", table.table_name, table.snapshot_id, plan.sql)
    fetched: list[tuple[str, str | None]] | None = engine.answers.get(page_key)
    if fetched is None:
        sql = plan.sql
        fetched = _run_user_facing(engine, lambda cursor: cursor.execute(sql).fetchall())
        size = 256 + sum(len(row[0]) + len(row[1] or "") + 64 for row in fetched)
        if size <= PAGE_KEEP_MAX_BYTES:
            engine.answers.put(page_key, fetched, size)
    more = len(fetched) > limit
    page = fetched[:limit]
    offset = plan.offset
    next_cursor = None
    if more and page:
        if plan.use_rowid:
            last = json.loads(page[-1][1] or "[]")
            next_cursor = encode_cursor(
                fingerprint, last[:-1], int(last[-1]), None, copy_order=plan.ordered_as
            )
        else:
            next_cursor = encode_cursor(
                fingerprint, [], None, offset + limit, copy_order=plan.ordered_as
            )
    total, estimated = _total(engine, table, request, plan.filtered, len(page), offset, more)
    return QueryResult(
        rows_json=[row[0] for row in page],
        fields=plan.fields,
        total=total,
        total_estimated=estimated,
        truncated=more and request.limit > cap,
        elapsed_ms=elapsed_ms(started),
        version=table.version,
        next_cursor=next_cursor,
        extra={
            "resource_id": table.resource_id,
            "offset": offset,
            "limit": limit,
            "served_from": table.served_from,
        },
    )


def _rows_plan(
    table: PublishedTable,
    request: RowsRequest,
    limit: int,
    doc: dict[str, Any] | None,
    replayed: bool,
) -> RowsPlan:
    """Compile a page request on `table` (already served: copy or lake) to its SQL."""
    names = request.fields or [c["name"] for c in table.columns]
    types = {c["name"]: str(c.get("db_type") or "VARCHAR") for c in table.columns}
    binder = Binder()
    where = where_clause(table, request.filters, request.q, binder)
    use_rowid = table.has_rowid
    nullable = {c["name"]: bool(c.get("nullable", True)) for c in table.columns}
    sort_keys: list[tuple[exp.Expression, bool, str, bool]] = [
        (_column(name), descending, types[name], nullable[name])
        for name, descending in request.sort
    ]
    offset = request.offset
    conditions = [where] if where is not None else []
    rowid_ref: exp.Expression = exp.column(ROWID)
    source: exp.Expression = table.ref()
    if replayed:
        rowid_ref = exp.column("__th_crowid", quoted=True)
        source = _copy_order_on_lake(table)
    if doc is not None:
        if doc.get("o") is not None:
            offset = int(doc["o"])
        else:
            rowid_key = (rowid_ref, False, "BIGINT", False)
            if len(doc["k"]) != len(sort_keys):
                raise TownhallError(400, "invalid_cursor", "The cursor does not match the sort.")
            conditions.append(_after([*sort_keys, rowid_key], [*doc["k"], doc["r"]], binder))
    select = exp.select(*[_column(name) for name in names])
    key_columns = [
        exp.alias_(ref.copy(), f"__th_k{i}", quoted=True) for i, (ref, *_) in enumerate(sort_keys)
    ]
    if use_rowid:
        key_columns.append(exp.alias_(rowid_ref.copy(), "__th_rowid", quoted=True))
    # The tree is built here and used once: sqlglot's builders need not copy it at every step
    # (`copy=False`; copying was about a fifth of the Python work of a first page).
    select = select.select(*key_columns, append=True, copy=False).from_(source, copy=False)
    if conditions:
        select = select.where(
            exp.and_(*conditions) if len(conditions) > 1 else conditions[0], copy=False
        )
    if sort_keys:
        order = [
            exp.Ordered(this=ref.copy(), desc=descending, nulls_first=False)
            for ref, descending, *_ in sort_keys
        ]
        if use_rowid:
            order.append(exp.Ordered(this=rowid_ref.copy(), desc=False, nulls_first=False))
        select = select.order_by(*order, copy=False)
    elif replayed and use_rowid:
        select = select.order_by(exp.Ordered(this=rowid_ref.copy(), desc=False), copy=False)
    # Without a sort, no ORDER BY: DuckDB returns a scan in storage order (insertion order is
    # preserved), which is row id order, so `rowid > last` continues the page and lets DuckDB
    # skip whole row groups on deep pages. A global sort is only paid for when asked.
    fetch = limit + 1
    select.set("limit", _limit(fetch))
    if offset and use_rowid and table.copy_alias is not None and not conditions and not sort_keys:
        # A serving copy is written once, in order, never deleted from: its row ids are
        # 0..n-1 in storage order, so row `offset` is row id `offset`, and the scan skips every
        # row group before it (5M rows, offset 1,000,000: 1.5 ms against 8 ms for OFFSET).
        select = select.where(
            exp.GTE(this=exp.column(ROWID), expression=sql_literal(offset)), copy=False
        )
    elif offset:
        select.set("offset", exp.Offset(expression=exp.Literal.number(offset)))
    # Geometry kept as GeoJSON text (no spatial extension at ingest) goes out as JSON.
    geojson_text = {c["name"] for c in table.columns if c.get("format") == "geojson"}
    out_columns = [(name, "JSON" if name in geojson_text else types[name]) for name in names]
    key_count = len(sort_keys) + (1 if use_rowid else 0)
    key_refs = [exp.column(f"__th_k{i}", quoted=True) for i in range(len(sort_keys))]
    if use_rowid:
        key_refs.append(exp.column("__th_rowid", quoted=True))
    keys_sql = (
        render(
            exp.Cast(
                this=exp.Anonymous(this="json_array", expressions=key_refs),
                to=data_type("VARCHAR", None),
            )
        )
        if key_count
        else "NULL"
    )
    sql = (
        f'SELECT {row_json_sql(tuple(out_columns))}, {keys_sql} FROM ({render(select)}) AS "__th_q"'
    )

    return RowsPlan(
        sql=sql,
        offset=offset,
        limit=limit,
        fields=[
            {"name": name, "type": "geometry" if name in geojson_text else logical_type(t)}
            for name, t in out_columns
        ],
        use_rowid=use_rowid,
        ordered_as=list(table.cluster) if table.copy_alias is not None or replayed else None,
        filtered=where is not None,
    )


def _copy_order_on_lake(table: PublishedTable) -> exp.Expression:
    """The lake table with `__th_crowid`, the row id its serving copy gives each row (the copy
    is written ORDER BY its cluster key NULLS LAST, then the lake row id; see serving.py)."""
    names = {c["name"] for c in table.columns}
    try:
        order = serving.order_by(list(table.cluster), names)
    except ValueError as error:
        raise TownhallError(
            400, "invalid_cursor", "The cursor is not one this API made."
        ) from error
    inner = sqlglot.parse_one(
        f"SELECT *, row_number() OVER (ORDER BY {order}) - 1 AS __th_crowid "
        f"FROM {render(table.lake_ref())}",
        read="duckdb",
    )
    return exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("__th_t")))


def _run_user_facing(engine: QueryEngine, work: Any, timeout: float | None = None) -> Any:
    """Run on the engine; a value that does not fit its column (`age__eq=abc`) is a 422."""
    try:
        return engine.run(work, timeout)
    except (duckdb.ConversionException, duckdb.InvalidInputException) as error:
        raise invalid_filter(_duckdb_message(error)) from error
    except duckdb.BinderException as error:
        raise invalid_filter(_duckdb_message(error)) from error


def _duckdb_message(error: Exception) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return re.sub(r"^[A-Za-z ]+ Error: ", "", text)[:500]


def exact_count(engine: QueryEngine, sql: str, values: list[Any], budget: float) -> int:
    """Run a count query within `budget` seconds (TownhallError query_timeout past it)."""
    row = engine.run(lambda cursor: cursor.execute(sql, values or None).fetchone(), budget)
    return int(row[0]) if row else 0


def _values_key(binder: Binder) -> str:
    """Values beside the SQL in a cache key (the SQL holds them as literals already; this is
    for values still bound as parameters, should a caller add some)."""
    return json.dumps([[type(v).__name__, v] for v in binder.values], default=str)


def _recorded_count(engine: QueryEngine, table: PublishedTable, request: RowsRequest) -> int | None:
    """The count of a single `col=value` or `col__in=a,b` filter (no `q`) on a text column,
    read from the per-value counts recorded with this node's serving copy (serving.py); None
    when the filter is another kind or there are no counts for the column."""
    if request.q or len(request.filters) != 1 or engine.serving is None:
        return None
    (item,) = request.filters
    if item.op not in ("eq", "in") or not is_text(str(table.column(item.column).get("db_type"))):
        return None
    values = item.value.split(",") if item.op == "in" else [item.value]
    return engine.serving.value_count(table.table_name, table.snapshot_id, item.column, values)


def _total(
    engine: QueryEngine,
    table: PublishedTable,
    request: RowsRequest,
    filtered: bool,
    page_rows: int,
    offset: int,
    more: bool,
) -> tuple[int | None, bool]:
    """Exact where cheap, else estimated: the version's row count when unfiltered; the page
    itself when it is the whole answer; a count within a small time budget; else a sample."""
    if not filtered:
        return table.row_count, False
    if not more and not request.cursor:
        return offset + page_rows, False
    recorded = _recorded_count(engine, table, request)
    if recorded is not None:
        return recorded, False
    # The page's binder also holds the cursor's values: count with the filters' own.
    binder = Binder()
    where = where_clause(table, request.filters, request.q, binder)
    if where is None:
        return table.row_count, False
    # A version never changes: its exact count for these filters is kept once known.
    key = ("count", table.table_name, table.snapshot_id, render(where), _values_key(binder))
    known = engine.answers.get(key)
    if known is not None:
        return int(known), False
    count_sql = render(exp.select(exp.Count(this=exp.Star())).from_(table.ref()).where(where))
    budget = min(COUNT_BUDGET_SECONDS, engine.timeout_seconds)
    try:
        counted = exact_count(engine, count_sql, binder.values, budget)
    except TownhallError as error:
        if error.code != "query_timeout":
            raise
    else:
        engine.answers.put(key, counted)
        return counted, False
    # Whole vectors picked at random across the table (`system` sampling, fixed seed): the
    # first rows would be a biased sample of a copy sorted by its cluster key.
    percent = min(100.0, 100.0 * ESTIMATE_SAMPLE_ROWS / max(table.row_count, 1))
    counts = exp.select(
        exp.Count(this=exp.Star()),
        exp.Filter(this=exp.Count(this=exp.Star()), expression=exp.Where(this=where.copy())),
    )
    ratio_sql = (
        f"{render(counts)} FROM {render(table.ref())} USING SAMPLE {percent:.6f}% (system, 7)"
    )
    try:
        row = engine.run(
            lambda cursor: cursor.execute(ratio_sql, binder.values or None).fetchone(),
            min(ESTIMATE_BUDGET_SECONDS, engine.timeout_seconds),
        )
    except TownhallError:
        return None, True
    if not row or not row[0]:
        return None, True
    return round(table.row_count * int(row[1]) / int(row[0])), True


# Aggregates ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    function: str
    column: str | None

    @property
    def name(self) -> str:
        return self.function if self.column is None else f"{self.function}_{self.column}"


def parse_metrics(raw: Sequence[str], table: PublishedTable) -> list[Metric]:
    metrics = []
    for item in raw or ["count"]:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            function, _, column = part.partition(":")
            if function not in METRICS:
                raise invalid_filter(
                    f"Unknown metric {function!r}; use one of {', '.join(METRICS)}.", "metric"
                )
            if function == "count" and not column:
                metrics.append(Metric("count", None))
                continue
            if not column:
                raise invalid_filter(f"Metric {function} needs a column: {function}:col.", "metric")
            db_type = str(table.column(column).get("db_type") or "")
            if function in ("sum", "avg") and not is_numeric(db_type):
                raise invalid_filter(
                    f"{function} needs a numeric column; {column!r} is not.", column
                )
            if function in ("min", "max", "median") and not is_orderable(db_type):
                raise invalid_filter(f"{function} cannot be taken of {column!r}.", column)
            metrics.append(Metric(function, column))
    if len(metrics) > 20:
        raise invalid_filter("Ask for at most 20 metrics.", "metric")
    return metrics


def _metric_expression(metric: Metric) -> exp.Expression:
    if metric.column is None:
        return exp.Count(this=exp.Star())
    ref = _column(metric.column)
    if metric.function == "count":
        return exp.Count(this=ref)
    if metric.function == "count_distinct":
        return exp.Count(this=exp.Distinct(expressions=[ref]))
    name = {"sum": "sum", "avg": "avg", "min": "min", "max": "max", "median": "median"}
    return exp.Anonymous(this=name[metric.function], expressions=[ref])


def query_aggregate(
    engine: QueryEngine,
    table: PublishedTable,
    *,
    group_by: list[str],
    metrics: list[Metric],
    filters: list[Filter],
    q: str,
    sort: str | None,
    limit: int | None,
) -> QueryResult:
    started = time.perf_counter()
    engine, table = serve(engine, table)
    cap = engine.row_cap
    limit = max(1, min(limit or cap, cap))
    # The SQL is kept per request shape on this table and snapshot, as a page's plan is.
    shape = (
        "aggregate-plan",
        table.table_name,
        table.snapshot_id,
        table.copy_alias,
        tuple(group_by),
        tuple(metrics),
        tuple(filters),
        q,
        sort,
        limit,
    )
    inner_sql: str | None = engine.answers.get(shape)
    if inner_sql is None:
        inner_sql = _aggregate_sql(table, group_by, metrics, filters, q, sort, limit)
        engine.answers.put(shape, inner_sql, 512 + 2 * len(inner_sql))
    binder = Binder()  # values are written into the SQL as constants: none are bound
    # A version never changes, so neither does its aggregate: kept once computed.
    key = ("aggregate", table.table_name, table.snapshot_id, inner_sql, _values_key(binder))
    known = engine.answers.get(key)
    if known is not None:
        result_types, fetched = known
    else:

        def work(cursor: duckdb.DuckDBPyConnection) -> tuple[list[tuple[str, str]], list[Any]]:
            # One cursor for both steps; the outer query wraps the inner SQL as rendered.
            types = _result_types(cursor, inner_sql, binder.values)
            sql = f'SELECT {row_json_sql(tuple(types))} FROM ({inner_sql}) AS "__th_q"'
            return types, cursor.execute(sql, binder.values or None).fetchall()

        result_types, fetched = _run_user_facing(engine, work)
        size = 256 + sum(len(row[0]) for row in fetched)
        engine.answers.put(key, (result_types, fetched), size)
    more = len(fetched) > limit
    page = fetched[:limit]
    return QueryResult(
        rows_json=[row[0] for row in page],
        fields=[{"name": n, "type": logical_type(t)} for n, t in result_types],
        total=None if more else len(page),
        total_estimated=more,
        truncated=more,
        elapsed_ms=elapsed_ms(started),
        version=table.version,
        extra={"resource_id": table.resource_id, "served_from": table.served_from},
    )


def _aggregate_sql(
    table: PublishedTable,
    group_by: list[str],
    metrics: list[Metric],
    filters: list[Filter],
    q: str,
    sort: str | None,
    limit: int,
) -> str:
    """Compile an aggregate request on `table` (already served) to its SQL; 422 for a bad one."""
    for name in group_by:
        if is_geometry(str(table.column(name).get("db_type") or "")):
            raise invalid_filter(f"Cannot group by geometry column {name!r}.", name)
    if len(group_by) > 8:
        raise invalid_filter("Group by at most 8 columns.", "group_by")
    binder = Binder()
    where = where_clause(table, filters, q, binder)
    outputs = [*group_by, *[m.name for m in metrics]]
    if len(set(outputs)) != len(outputs):
        raise invalid_filter("Group columns and metric names must differ.", "metric")
    select = exp.select(
        *[_column(name) for name in group_by],
        *[exp.alias_(_metric_expression(m), m.name, quoted=True) for m in metrics],
    ).from_(table.ref(), copy=False)
    # Built once and rendered once: no copies at each builder step (`copy=False`).
    if where is not None:
        select = select.where(where, copy=False)
    if group_by:
        select = select.group_by(*[_column(name) for name in group_by], copy=False)
    order: list[exp.Ordered] = []
    for part in (sort or "").split(","):
        part = part.strip()
        if not part:
            continue
        descending = part.startswith("-")
        name = part[1:] if descending else part
        if name not in outputs:
            raise invalid_filter(f"Sort by a group column or a metric, not {name!r}.", name)
        order.append(exp.Ordered(this=_column(name), desc=descending, nulls_first=False))
    if not order and group_by:
        order = [exp.Ordered(this=_column(name), nulls_first=False) for name in group_by]
    if order:
        select = select.order_by(*order, copy=False)
    select.set("limit", _limit(limit + 1))
    return render(select)


def _result_types(
    cursor: duckdb.DuckDBPyConnection, sql: str, values: list[Any]
) -> list[tuple[str, str]]:
    """Bind the query without running it: its output columns and types."""
    # Without parameters (values are constants, see `Binder`) `cursor.sql()` makes a relation
    # and only binds it: 0.06 ms against 0.3 ms for DESCRIBE (1M rows). With parameters it
    # would run the whole query at once in DuckDB 1.5 (1.4 s for a keyword count): DESCRIBE.
    try:
        if not values:
            relation = cursor.sql(sql)
            return [
                (str(name), str(kind))
                for name, kind in zip(relation.columns, relation.types, strict=True)
            ]
        described = cursor.execute(f"DESCRIBE {sql}", values).fetchall()
    except (duckdb.BinderException, duckdb.ConversionException) as error:
        raise invalid_filter(_duckdb_message(error)) from error
    return [(str(row[0]), str(row[1])) for row in described]


# User SQL --------------------------------------------------------------------------------------


def check_sql(
    session: Session, actor: Actor, engine: QueryEngine, sql: str, pinned: PublishedTable | None
) -> GuardedSql:
    """Check user SQL and bind its tables (needs the database session: permissions)."""
    return guard_sql(sql, sql_resolver(session, actor, pinned), engine.allowed_functions)


def run_sql(engine: QueryEngine, guarded: GuardedSql, *, version: int | None) -> QueryResult:
    """Run checked SQL with the row cap: `truncated` when it had more rows."""
    started = time.perf_counter()
    engine, sql = serve_sql(engine, guarded)
    cap = engine.row_cap
    inner = f"SELECT * FROM ({sql}) AS __th_user LIMIT {cap + 1}"

    def work(cursor: duckdb.DuckDBPyConnection) -> tuple[list[tuple[str, str]], list[Any]]:
        try:
            relation = cursor.sql(inner)
            columns = [
                (str(n), str(t)) for n, t in zip(relation.columns, relation.types, strict=True)
            ]
        except duckdb.Error as error:
            raise _sql_error(error) from error
        replacements = [
            f"{render(json_value(name, t))} AS {render(exp.to_identifier(name, quoted=True))}"
            for name, t in columns
            if is_geometry(t) or t.upper() in ("DOUBLE", "FLOAT", "REAL")
        ]
        replace = f" REPLACE ({', '.join(replacements)})" if replacements else ""
        outer = (
            f"SELECT CAST(to_json(__th_row) AS VARCHAR) FROM "
            f"(SELECT *{replace} FROM ({inner}) AS __th_inner) AS __th_row"
        )
        try:
            return columns, cursor.execute(outer).fetchall()
        except duckdb.InterruptException:
            raise
        except duckdb.Error as error:
            raise _sql_error(error) from error

    columns, fetched = engine.run(work)
    more = len(fetched) > cap
    page = fetched[:cap]
    return QueryResult(
        rows_json=[row[0] for row in page],
        fields=[{"name": n, "type": logical_type(t)} for n, t in columns],
        total=None if more else len(page),
        total_estimated=more,
        truncated=more,
        elapsed_ms=elapsed_ms(started),
        version=version,
        extra={
            "tables": list(guarded.tables),
            "served_from": "lake" if sql == guarded.sql else "copy",
        },
    )


def serve_sql(engine: QueryEngine, guarded: GuardedSql) -> tuple[QueryEngine, str]:
    """Checked SQL with each table read from this node's serving copy where it has one (the
    engine pinned to the instance that has them attached), from the lake otherwise."""
    pinned = engine.pin()
    return pinned, guarded.sql_on_copies(pinned.copy_alias)


def _sql_error(error: duckdb.Error) -> TownhallError:
    if isinstance(error, duckdb.InterruptException):
        raise error
    if isinstance(error, duckdb.OutOfMemoryException):
        return out_of_memory()
    if isinstance(error, duckdb.PermissionException):
        return TownhallError(400, "sql_not_allowed", _duckdb_message(error))
    return TownhallError(400, "invalid_sql", _duckdb_message(error))
