"""Downloads: a whole table, a filtered one, or a query's result, in bounded memory.

DuckDB writes the file itself (`COPY (query) TO '<data>/tmp/exports/<random>' (FORMAT ...)`),
streaming and spilling as it goes, never holding the table; the response then streams that file
from disk and deletes it. Python never touches a row. Downloads have no row cap; they run under
`EXPORT_TIMEOUT_FACTOR` times the query time limit, since a whole table takes longer than a page.

Each download runs on a DuckDB instance of its own (`engine.download_engine`, closed after the
file is written): keeping insertion order with several threads made DuckDB's CSV writer hold
rows back (about 1 GB peak on 5M rows). A table without `sort` is written by one thread from the
lake, in the lake's order (the same bytes on every node and every run, as `townhall verify`
needs); a sorted table or a SQL result is written without keeping insertion order (its
`ORDER BY` still holds), from the serving copy where there is one.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlglot import exp

from townhall.datastore.coltypes import is_geometry
from townhall.datastore.engine import QueryEngine
from townhall.datastore.query import (
    Binder,
    PublishedTable,
    RowsRequest,
    _column,
    _run_user_facing,
    invalid_filter,
    render,
    serve,
    serve_sql,
    where_clause,
)
from townhall.datastore.sql_guard import GuardedSql
from townhall.datastore.sqltext import string_literal

EXPORT_FORMATS: dict[str, tuple[str, str]] = {
    "csv": ("text/csv; charset=utf-8", "FORMAT csv, HEADER true"),
    "ndjson": ("application/x-ndjson", "FORMAT json"),
    "json": ("application/json", "FORMAT json, ARRAY true"),
    "parquet": ("application/vnd.apache.parquet", "FORMAT parquet, COMPRESSION zstd"),
    "geojson": ("application/geo+json", "FORMAT json, ARRAY true"),
}
EXPORT_TIMEOUT_FACTOR = 30
MIN_EXPORT_TIMEOUT_SECONDS = 300.0
CHUNK_BYTES = 1024 * 1024


@dataclass
class ExportFile:
    path: Path
    media_type: str
    filename: str
    prefix: bytes = b""
    suffix: bytes = b""

    def stream(self) -> Iterator[bytes]:
        """The file's bytes (wrapped in prefix/suffix), then the file is deleted."""
        try:
            if self.prefix:
                yield self.prefix
            with self.path.open("rb") as handle:
                while chunk := handle.read(CHUNK_BYTES):
                    yield chunk
            if self.suffix:
                yield self.suffix
        finally:
            self.discard()

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()

    @property
    def size(self) -> int:
        return self.path.stat().st_size + len(self.prefix) + len(self.suffix)


def export_timeout(engine: QueryEngine) -> float:
    return max(engine.timeout_seconds * EXPORT_TIMEOUT_FACTOR, MIN_EXPORT_TIMEOUT_SECONDS)


def _projection(name: str, db_type: str, fmt: str) -> exp.Expression:
    """How a column is written: geometry as WKT in CSV, as GeoJSON in JSON, native in Parquet."""
    ref = _column(name)
    if not is_geometry(db_type) or fmt == "parquet":
        return ref
    if fmt == "csv":
        return exp.alias_(exp.Anonymous(this="ST_AsText", expressions=[ref]), name, quoted=True)
    geojson = exp.Cast(
        this=exp.Anonymous(this="ST_AsGeoJSON", expressions=[ref]),
        to=exp.DataType.build("JSON", dialect="duckdb"),
    )
    return exp.alias_(geojson, name, quoted=True)


def _geometry_as_json(name: str, db_type: str, spatial_type: bool) -> exp.Expression:
    ref = _column(name)
    if spatial_type:
        value: exp.Expression = exp.Anonymous(this="ST_AsGeoJSON", expressions=[ref])
    else:
        value = ref  # kept as GeoJSON text when the spatial extension was missing at ingest
    return exp.Cast(this=value, to=exp.DataType.build("JSON", dialect="duckdb"))


def table_query(
    table: PublishedTable, request: RowsRequest, fmt: str, binder: Binder
) -> exp.Select:
    """The SELECT a table download writes: fields, filters, q and sort as for /rows."""
    types = {c["name"]: str(c.get("db_type") or "VARCHAR") for c in table.columns}
    names = request.fields or [c["name"] for c in table.columns]
    if fmt == "geojson":
        geometry = next(
            (c for c in table.columns if c.get("type") == "geometry" and c["name"] in names),
            None,
        )
        if geometry is None:
            raise invalid_filter("GeoJSON needs a geometry column; this table has none.", "format")
        properties = [
            exp.PropertyEQ(this=exp.to_identifier(n, quoted=True), expression=_column(n))
            for n in names
            if n != geometry["name"]
        ]
        select = exp.select(
            exp.alias_(exp.Literal.string("Feature"), "type", quoted=True),
            exp.alias_(
                _geometry_as_json(
                    geometry["name"], types[geometry["name"]], is_geometry(types[geometry["name"]])
                ),
                "geometry",
                quoted=True,
            ),
            exp.alias_(
                exp.Anonymous(this="struct_pack", expressions=properties)
                if properties
                else exp.Anonymous(this="json_object"),
                "properties",
                quoted=True,
            ),
        )
    else:
        select = exp.select(*[_projection(n, types[n], fmt) for n in names])
    select = select.from_(table.ref())
    where = where_clause(table, request.filters, request.q, binder)
    if where is not None:
        select = select.where(where)
    if request.sort:
        select = select.order_by(
            *[
                exp.Ordered(this=_column(name), desc=descending, nulls_first=False)
                for name, descending in request.sort
            ]
        )
    return select


def export_table(
    engine: QueryEngine, table: PublishedTable, request: RowsRequest, fmt: str
) -> ExportFile:
    """Write the (filtered) table to a temporary file in format `fmt`. Raises invalid_filter
    for bad filters or GeoJSON of a table without geometry, query_timeout past the limit."""
    # Unsorted: the lake's order, the same bytes on every node (a node's serving copy is sorted
    # by its cluster key, and a node may have none); see `download_engine`.
    unsorted = not request.sort
    spatial = any(
        c.get("type") == "geometry" or is_geometry(str(c.get("db_type") or ""))
        for c in table.columns
    )
    with engine.for_download(in_storage_order=unsorted, spatial=spatial) as download:
        download, table = serve(download, table, from_lake=unsorted)
        binder = Binder()
        select = table_query(table, request, fmt, binder)
        name = f"{table.dataset_slug}-v{table.version}"
        return _copy(download, render(select), binder.values, fmt, name)


def export_sql(engine: QueryEngine, guarded: GuardedSql, fmt: str) -> ExportFile:
    """Write the result of checked user SQL. GeoJSON is not offered for SQL (no way to know
    which column is the geometry): use JSON."""
    if fmt == "geojson":
        raise invalid_filter("GeoJSON downloads are for tables; download SQL results as JSON.")
    with engine.for_download(in_storage_order=False) as download:
        download, sql = serve_sql(download, guarded)
        return _copy(download, sql, [], fmt, "query")


def _copy(engine: QueryEngine, sql: str, values: list[object], fmt: str, name: str) -> ExportFile:
    media_type, options = EXPORT_FORMATS[fmt]
    suffix = "json" if fmt == "geojson" else fmt
    path = engine.export_directory / f"{uuid.uuid4().hex}.{suffix}"
    statement = f"COPY ({sql}) TO {string_literal(str(path))} ({options})"
    try:
        _run_user_facing(
            engine,
            lambda cursor: cursor.execute(statement, values or None),
            export_timeout(engine),
        )
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    export = ExportFile(path, media_type, f"{name}.{fmt}")
    if fmt == "geojson":
        export.prefix = b'{"type":"FeatureCollection","features":'
        export.suffix = b"}\n"
    return export
