"""Ingest: a file becomes the next version of a resource's table, or nothing changes at all.

Flow (DESIGN.md, Data flows): recognise the format and encoding from a sample (`detect`), let
DuckDB read the file straight from disk (`read_csv` with type detection, `read_json`,
`read_xlsx`, `read_parquet`, `ST_Read`), check a supplied Frictionless Table Schema with cast
and constraint predicates counted in one columnar query, write the whole table in one DuckLake
transaction (a new snapshot; the new table is checked inside the transaction, before COMMIT),
then record the version and switch the published pointer in one database unit of work.

Any failure before that last commit leaves the resource on its previous version: the lake
transaction rolls back, or, if the lake committed and the database did not, the new snapshot is
simply never pointed at. The file is never loaded into Python memory; the SHA-256 is computed
by a thread reading the file in chunks while DuckDB reads it too. Nothing here runs per row in
Python.

Row numbers in reports count the header as row 1 (as spreadsheets and Frictionless do), so the
first data row of a CSV or xlsx file is row 2; JSON and Parquet rows are numbered from 1.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from townhall.actor import Actor
from townhall.catalog import actions as catalog_actions
from townhall.catalog import queries as catalog_queries
from townhall.catalog.models import DatasetVersion
from townhall.datastore.coltypes import column_entry, is_text
from townhall.datastore.detect import SourceFormat, detect_format, ingest_error, transcode_to_utf8
from townhall.datastore.lake import Lake, LakeExtensionError, table_ref
from townhall.datastore.sqltext import Params, quote_identifier, string_literal
from townhall.datastore.table_schema import (
    Check,
    TableSchema,
    cast_expression,
    checks_for,
    parse_table_schema,
)
from townhall.db import unit_of_work
from townhall.errors import NotFoundError, PermissionDenied, TownhallError
from townhall.integrity.manifests import describe_lake_version, seal_version

if TYPE_CHECKING:
    from townhall.runtime import Runtime

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, float | None], None]
"""`progress(stage, fraction)`: stage is one of `detecting`, `reading`, `validating`,
`writing`, `recording`, `done`; fraction is 0..1 when DuckDB can tell, else None."""

CSV_SAMPLE_ROWS = 20_480
MAX_REPORTED_ERRORS = 100
ERRORS_PER_CHECK = 20
HASH_CHUNK_BYTES = 1024 * 1024
PROGRESS_POLL_SECONDS = 0.25
GEOMETRY_COLUMN = "geometry"

_REJECT_TYPES = {
    "CAST": "type-error",
    "MISSING COLUMNS": "missing-cell",
    "TOO MANY COLUMNS": "extra-cell",
    "UNQUOTED VALUE": "source-error",
    "LINE SIZE OVER MAXIMUM": "source-error",
    "INVALID ENCODING": "encoding-error",
    "INVALID STATE": "source-error",
}
_REJECT_LABELS = {
    "type-error": "values that do not fit the column's type",
    "missing-cell": "rows with too few fields",
    "extra-cell": "rows with too many fields",
    "encoding-error": "undecodable bytes",
    "source-error": "malformed rows",
}


@dataclass
class _Source:
    format: SourceFormat
    path: Path
    """What DuckDB reads: the upload itself, or its UTF-8 transcoding."""
    source_name: str
    original_path: Path
    spatial: bool = False
    """GeoJSON read by the spatial extension (else the geometry is kept as GeoJSON text)."""
    encoding: str | None = None
    """The file's own encoding, as detected (the reader may see a UTF-8 transcoding)."""

    @property
    def header_rows(self) -> int:
        return 1 if self.format.kind in ("csv", "xlsx") else 0

    @property
    def extensions(self) -> tuple[str, ...]:
        if self.format.kind == "xlsx":
            return ("excel",)
        if self.format.kind == "geojson" and self.spatial:
            return ("spatial",)
        return ()


@dataclass
class _Written:
    snapshot: int
    row_count: int
    columns: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


class _WidenTypes(Exception):
    """The CSV sniffer's sample was too small: a later row broke a detected type."""


class _NotUtf8(Exception):
    """A file whose sample was plain ASCII turned out not to be UTF-8 further on."""


def ingest_file(
    runtime: Runtime,
    *,
    actor: Actor,
    resource_id: int,
    path: Path | str,
    source_name: str,
    table_schema: dict[str, Any] | str | None = None,
    progress: ProgressCallback | None = None,
    source_sha256: str | None = None,
    source_bytes: int | None = None,
) -> DatasetVersion:
    """Load the file at `path` as the next version of resource `resource_id` and publish it.

    `source_name` is the name the file had for its owner (shown in reports and versions).
    `table_schema` is an optional Frictionless Table Schema (dict or JSON) whose fields override
    the inferred types and add constraints. `source_sha256`/`source_bytes` may be passed when the
    caller already computed them while receiving the file; otherwise they are computed here.

    Returns the new DatasetVersion (detached; attributes loaded). Raises NotFoundError for an
    unknown resource, PermissionDenied/401 when the actor may not publish it, TownhallError
    `invalid_table_schema` for a bad schema and `ingest_failed` (422, `errors` naming rows and
    columns) for a file that cannot be loaded; in every failure the previous version stays
    published. Not idempotent by itself: each success records a new version.
    """
    started = time.monotonic()
    notify = progress or (lambda _stage, _fraction: None)
    path = Path(path)
    schema = parse_table_schema(table_schema)
    table_name = _writable_table(runtime, actor, resource_id)
    if not path.is_file():
        raise ingest_error(f"No file at {source_name or path.name}.")
    hasher = None if source_sha256 else _FileHasher(path)
    notify("detecting", None)
    fmt = detect_format(path, source_name)
    workdir = runtime.settings.data_dir.resolve() / "tmp" / "ingest" / uuid.uuid4().hex
    try:
        source = _prepare_source(runtime.lake, fmt, path, source_name, workdir)
        con = runtime.lake.connect(extensions=source.extensions)
        try:
            try:
                written = _load(con, runtime.lake, source, schema, table_name, actor, notify)
            except _NotUtf8:
                # The ASCII sample said nothing; the bytes past it are the usual Windows text.
                fmt = SourceFormat(fmt.kind, "windows-1252", False)
                source = _prepare_source(runtime.lake, fmt, path, source_name, workdir)
                written = _load(con, runtime.lake, source, schema, table_name, actor, notify)
        finally:
            con.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if hasher is not None:
            hasher.join()
    if hasher is not None:
        source_sha256, source_bytes = hasher.result()
    elif source_bytes is None:
        source_bytes = path.stat().st_size
    notify("recording", None)
    report = build_report(
        valid=True,
        source=source,
        written=written,
        errors=[],
        seconds=time.monotonic() - started,
        sha256=source_sha256,
        size=source_bytes,
    )
    # Hashing the snapshot's Parquet files happens here, outside the database transaction.
    facts = describe_lake_version(runtime.lake, table_name=table_name, snapshot_id=written.snapshot)
    with unit_of_work(runtime.session_factory) as session:
        version = catalog_actions.record_version(
            session,
            actor=actor,
            resource_id=resource_id,
            snapshot_id=written.snapshot,
            row_count=written.row_count,
            columns=written.columns,
            source_name=source_name,
            source_sha256=source_sha256,
            source_bytes=source_bytes,
            validation_report=report,
            manifest={
                "format": fmt.kind,
                "encoding": source.encoding,
                "table": table_name,
                "geometry": "spatial" if source.spatial else None,
            },
            bus=runtime.events,
        )
        # The signed manifest (docs/integrity.md) commits with the version, or neither does.
        seal_version(session, version, facts, settings=runtime.settings)
    notify("done", 1.0)
    log.info(
        "ingested %s into %s: %d rows, snapshot %d, %.2f s",
        source_name,
        table_name,
        written.row_count,
        written.snapshot,
        time.monotonic() - started,
    )
    return version


def _writable_table(runtime: Runtime, actor: Actor, resource_id: int) -> str:
    """Check up front (before reading a byte) that the actor may publish this resource."""
    with unit_of_work(runtime.session_factory) as session:
        resource = catalog_queries.resource_by_id(session, resource_id)
        if resource is None or resource.dataset.state == "deleted":
            raise NotFoundError("resource", resource_id)
        actor.require("datasets:publish")
        if not catalog_queries.can_edit(actor, resource.dataset):
            raise PermissionDenied(f"datasets:publish for {resource.dataset.organization.slug}")
        return resource.table_name or f"r_{resource.id}"


class _FileHasher(threading.Thread):
    """SHA-256 and size of a file, computed in chunks on a thread while DuckDB reads it."""

    def __init__(self, path: Path) -> None:
        super().__init__(name="ingest-sha256", daemon=True)
        self._path = path
        self._digest = hashlib.sha256()
        self._size = 0
        self._error: OSError | None = None
        self.start()

    def run(self) -> None:
        try:
            with self._path.open("rb") as handle:
                while chunk := handle.read(HASH_CHUNK_BYTES):
                    self._digest.update(chunk)
                    self._size += len(chunk)
        except OSError as error:
            self._error = error

    def result(self) -> tuple[str, int]:
        self.join()
        if self._error is not None:
            raise self._error
        return self._digest.hexdigest(), self._size


def _prepare_source(
    lake: Lake, fmt: SourceFormat, path: Path, source_name: str, workdir: Path
) -> _Source:
    read_path = path
    original_encoding = fmt.encoding
    if fmt.encoding == "windows-1252":
        # DuckDB's CSV reader speaks UTF-8, UTF-16 and Latin-1 natively, not Windows-1252.
        workdir.mkdir(parents=True, exist_ok=True)
        read_path = workdir / "source.utf8"
        try:
            transcode_to_utf8(path, "cp1252", read_path)
            fmt = SourceFormat(fmt.kind, "utf-8", False)
        except TownhallError:
            # A byte Windows-1252 leaves undefined: Latin-1 decodes every byte.
            read_path = path
            fmt = SourceFormat(fmt.kind, "latin-1", False)
            original_encoding = "latin-1"
    spatial = False
    if fmt.kind == "geojson":
        spatial = spatial_available(lake)
    return _Source(fmt, read_path, source_name, path, spatial, original_encoding)


_spatial_state: dict[str, bool] = {}


def spatial_available(lake: Lake) -> bool:
    """Whether DuckDB's spatial extension loads here (package `duckdb-extension-spatial`)."""
    key = str(lake.extension_directory)
    if key not in _spatial_state:
        try:
            lake.connect(read_only=True, extensions=("spatial",)).close()
            _spatial_state[key] = True
        except (LakeExtensionError, duckdb.Error):
            log.warning("spatial extension unavailable: geometry is kept as GeoJSON text")
            _spatial_state[key] = False
    return _spatial_state[key]


# Reading ---------------------------------------------------------------------------------------


@dataclass
class _Rejects:
    """The two temporary tables DuckDB's CSV reader fills with the rows it could not read."""

    table: str = field(default_factory=lambda: f"th_rejects_{uuid.uuid4().hex[:12]}")
    scan: str = field(default_factory=lambda: f"th_rejects_scan_{uuid.uuid4().hex[:12]}")

    def options(self) -> str:
        return (
            f"store_rejects=true, rejects_table={string_literal(self.table)}, "
            f"rejects_scan={string_literal(self.scan)}"
        )

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        for name in (self.table, self.scan):
            with contextlib.suppress(duckdb.Error):
                con.execute(f"DROP TABLE IF EXISTS temp.{quote_identifier(name)}")


def _reader(
    source: _Source,
    *,
    schema: TableSchema | None,
    text_columns: list[str],
    sample_rows: int,
    rejects: _Rejects | None,
) -> str:
    """The FROM clause that reads the source. `text_columns` are read as text (CSV only), so a
    declared type is applied by our casts and each failure is counted and located."""
    path = string_literal(str(source.path))
    kind = source.format.kind
    if kind == "csv":
        options = [
            "auto_detect=true",
            f"sample_size={int(sample_rows)}",
            f"encoding={string_literal(_duckdb_encoding(source))}",
            # A row with too many fields is an error, not silently cut.
            "strict_mode=true",
        ]
        if rejects is not None:
            options.append(rejects.options())
        if text_columns:
            pairs = ", ".join(f"{string_literal(name)}: 'VARCHAR'" for name in text_columns)
            options.append(f"types={{{pairs}}}")
        if schema is not None and schema.missing_values != ("",):
            values = ", ".join(string_literal(v) for v in schema.missing_values)
            options.append(f"nullstr=[{values}]")
        return f"read_csv({path}, {', '.join(options)})"
    if kind == "json":
        return f"read_json({path}, format='auto', records='auto')"
    if kind == "parquet":
        return f"read_parquet({path})"
    if kind == "xlsx":
        return f"read_xlsx({path}, header=true)"
    if kind == "geojson":
        if source.spatial:
            return f"ST_Read({path})"
        size = max(source.path.stat().st_size + 1, 16 * 1024 * 1024)
        # No spatial extension: features unpacked by DuckDB's JSON reader, geometry as text.
        return (
            "(SELECT unnest(feature.properties), "
            f"CAST(to_json(feature.geometry) AS VARCHAR) AS {GEOMETRY_COLUMN} FROM "
            f"(SELECT unnest(features) AS feature FROM read_json({path}, "
            f"format='unstructured', maximum_object_size={size})))"
        )
    raise AssertionError(f"unknown format {kind}")


def _duckdb_encoding(source: _Source) -> str:
    return "latin-1" if source.format.encoding == "latin-1" else "utf-8"


def _describe(
    con: duckdb.DuckDBPyConnection,
    source: _Source,
    schema: TableSchema | None,
    text_columns: list[str],
    sample_rows: int,
) -> list[tuple[str, str]]:
    """The columns the reader yields. CSV readers always store rejects: with them DuckDB's
    sniffer tolerates a ragged row instead of settling on a one-column dialect."""
    rejects = _Rejects() if source.format.kind == "csv" else None
    reader = _reader(
        source, schema=schema, text_columns=text_columns, sample_rows=sample_rows, rejects=rejects
    )
    try:
        rows = _run(con, source, lambda: con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall())
    finally:
        if rejects is not None:
            rejects.drop(con)
    return [(str(row[0]), str(row[1])) for row in rows]


def _load(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    source: _Source,
    schema: TableSchema | None,
    table_name: str,
    actor: Actor,
    notify: ProgressCallback,
) -> _Written:
    sample_rows = CSV_SAMPLE_ROWS
    for attempt in (1, 2):
        try:
            return _load_once(con, lake, source, schema, table_name, actor, notify, sample_rows)
        except _WidenTypes:
            if attempt == 2:
                break
            # The sniffer saw too few rows; read the whole file to pick types that fit all.
            sample_rows = -1
    raise ingest_error("The file's column types could not be settled.")


def _load_once(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    source: _Source,
    schema: TableSchema | None,
    table_name: str,
    actor: Actor,
    notify: ProgressCallback,
    sample_rows: int,
) -> _Written:
    notify("reading", None)
    columns = _describe(con, source, schema, [], sample_rows)
    names = [name for name, _ in columns]
    warnings: list[str] = []
    declared = schema.by_name() if schema else {}
    if schema is not None:
        missing = [f for f in schema.fields if f.name not in names]
        if missing:
            raise ingest_error(
                "The file lacks columns the table schema declares: "
                + ", ".join(repr(f.name) for f in missing)
                + ".",
                [
                    {
                        "type": "missing-label",
                        "row": 1 if source.header_rows else None,
                        "column": f.name,
                        "message": f"Column {f.name!r} is declared but not in the file.",
                    }
                    for f in missing
                ],
            )
        extra = [name for name in names if name not in declared]
        if extra:
            warnings.append(
                "Columns not in the table schema keep their inferred types: " + ", ".join(extra)
            )
    text_columns = (
        [name for name in names if name in declared] if source.format.kind == "csv" else []
    )
    if text_columns:
        columns = _describe(con, source, schema, text_columns, sample_rows)
    params = Params()
    select: list[str] = []
    checks: list[Check] = []
    pending_checks: list[tuple[str, Any, str, str]] = []
    integral: set[str] = set()
    if source.format.kind == "xlsx":
        plain = _reader(source, schema=None, text_columns=[], sample_rows=0, rejects=None)
        integral = _integral_doubles(con, source, columns, plain)
    for name, db_type in columns:
        if source.format.kind == "geojson" and name == "OGC_FID":
            continue  # GDAL's feature counter, not data
        quoted = quote_identifier(name)
        target = GEOMETRY_COLUMN if source.spatial and name == "geom" else name
        if name in declared:
            field_ = declared[name]
            cast = cast_expression(field_, quoted, is_text(db_type), params)
            pending_checks.append((name, field_, quoted, cast))
            select.append(f"{cast} AS {quote_identifier(target)}")
        elif name in integral:
            select.append(f"CAST({quoted} AS BIGINT) AS {quote_identifier(target)}")
        else:
            select.append(f"{quoted} AS {quote_identifier(target)}")
    if not select:
        raise ingest_error("The file has no columns.", [{"type": "blank-header", "row": 1}])
    # Checks bind their own values numbered after the casts', so the write (casts only) and
    # the validation (casts and checks) each bind exactly the parameters they use.
    check_params = Params(after=params)
    for name, field_, quoted, cast in pending_checks:
        checks.extend(
            checks_for(
                field_,
                quoted,
                cast,
                check_params,
                in_primary_key=name in (schema.primary_key if schema else ()),
            )
        )
    validation_params = Params()
    validation_params.values = params.values + check_params.values
    if schema is not None and len(schema.primary_key) > 1:
        keys = ", ".join(quote_identifier(k) for k in schema.primary_key)
        checks.append(
            Check(
                schema.primary_key[0],
                "primary-key",
                f"(count(*) OVER (PARTITION BY {keys}) > 1)",
                f"primary key {list(schema.primary_key)} repeats",
            )
        )
    column_names = [name for name, _ in columns]
    if checks:
        notify("validating", None)
        _validate(con, source, schema, column_names, checks, validation_params, sample_rows)
    notify("writing", None)
    rejects = _Rejects() if source.format.kind == "csv" else None
    reader = _reader(
        source, schema=schema, text_columns=text_columns, sample_rows=sample_rows, rejects=rejects
    )
    verifier = _Verifier(table_name, source, rejects, set(declared), column_names)
    try:
        with _watch_progress(con, "writing", notify):
            snapshot = _run(
                con,
                source,
                lambda: lake.write_table(
                    table_name,
                    f"SELECT {', '.join(select)} FROM {reader}",
                    params=params.values or None,
                    con=con,
                    author=actor.label,
                    message=f"ingest {source.source_name}"[:500],
                    verify=verifier,
                ),
            )
    finally:
        if rejects is not None:
            rejects.drop(con)
    return _Written(snapshot, verifier.row_count, verifier.columns, warnings)


def _run(con: duckdb.DuckDBPyConnection, source: _Source, work: Callable[[], Any]) -> Any:
    """Run DuckDB work, turning its errors into an `ingest_failed` report."""
    try:
        return work()
    except (TownhallError, _WidenTypes, _NotUtf8):
        raise
    except duckdb.Error as error:
        raise ingest_error(
            f"The {source.format.kind.upper()} file could not be read: {_clean(error, source)}",
            [{"type": "source-error", "row": None, "message": _clean(error, source)}],
        ) from error


def _clean(error: Exception, source: _Source) -> str:
    """DuckDB's message without server paths, hints meant for SQL users, or the LINE marker."""
    text = str(error)
    for path in {str(source.path), str(source.original_path)}:
        text = text.replace(path, source.source_name or "the file")
    kept = []
    for line in text.splitlines():
        if line.startswith(("Possible Solution", "* ", "LINE ", "Column ", "This type was")):
            break
        if line.strip():
            kept.append(line.strip())
    return " ".join(kept)[:1000]


def _integral_doubles(
    con: duckdb.DuckDBPyConnection, source: _Source, columns: list[tuple[str, str]], reader: str
) -> set[str]:
    """xlsx stores every number as a double: columns holding only whole numbers become BIGINT."""
    doubles = [name for name, db_type in columns if db_type == "DOUBLE"]
    if not doubles:
        return set()
    tests = ", ".join(
        f"bool_and({quote_identifier(n)} IS NULL OR ({quote_identifier(n)} = trunc("
        f"{quote_identifier(n)}) AND abs({quote_identifier(n)}) < 9007199254740992))"
        for n in doubles
    )
    row = _run(con, source, lambda: con.execute(f"SELECT {tests} FROM {reader}").fetchone())
    return {name for name, whole in zip(doubles, row or (), strict=False) if whole}


def _validate(
    con: duckdb.DuckDBPyConnection,
    source: _Source,
    schema: TableSchema | None,
    column_names: list[str],
    checks: list[Check],
    params: Params,
    sample_rows: int,
) -> None:
    """Count every check's failures in one query over the source; locate the first failing rows
    of the checks that failed; raise `ingest_failed` if any did."""
    text_columns = column_names if source.format.kind == "csv" and schema is not None else []
    text_columns = [name for name in text_columns if name in (schema.by_name() if schema else {})]
    rejects = _Rejects() if source.format.kind == "csv" else None
    reader = _reader(
        source, schema=schema, text_columns=text_columns, sample_rows=sample_rows, rejects=rejects
    )
    flags = ", ".join(f"{check.predicate} AS __th_fail_{i}" for i, check in enumerate(checks))
    checked = sorted({column_names.index(check.field_name) for check in checks})
    cells = ", ".join(
        f"CAST({quote_identifier(column_names[i])} AS VARCHAR) AS __th_cell_{i}" for i in checked
    )
    base = (
        f"WITH __th_source AS (SELECT row_number() OVER () AS __th_row, * FROM {reader}), "
        f"__th_flags AS (SELECT __th_row, {cells}, {flags} FROM __th_source)"
    )
    counts = ", ".join(f"count(*) FILTER (WHERE __th_fail_{i})" for i in range(len(checks)))
    try:
        with _watch_progress(con, "validating", notify=None):
            row = _run(
                con,
                source,
                lambda: con.execute(
                    f"{base} SELECT {counts} FROM __th_flags", params.values or None
                ).fetchone(),
            )
        reader_errors = _reject_errors(con, rejects, source, declared=set(text_columns))
    finally:
        if rejects is not None:
            rejects.drop(con)
    if reader_errors:
        if source.format.sample_is_ascii and all(
            e["type"] == "encoding-error" for e in reader_errors
        ):
            raise _NotUtf8
        _raise_reader_errors(reader_errors)
    failures = [
        (check, int(count)) for check, count in zip(checks, row or (), strict=False) if count
    ]
    if not failures:
        return
    errors: list[dict[str, Any]] = []
    summary: list[str] = []
    for check, count in failures:
        index = checks.index(check)
        column_index = column_names.index(check.field_name)
        located = con.execute(
            f"{base} SELECT __th_row, __th_cell_{column_index} FROM __th_flags "
            f"WHERE __th_fail_{index} ORDER BY __th_row LIMIT {ERRORS_PER_CHECK}",
            params.values or None,
        ).fetchall()
        rows = [int(r[0]) + source.header_rows for r in located]
        summary.append(
            f"{count} row{'s' if count != 1 else ''} broke column {check.field_name!r} "
            f"({check.note}; first at row{'s' if len(rows) > 1 else ''} "
            f"{', '.join(map(str, rows[:5]))})"
        )
        for (raw_row, cell), row_number in zip(located, rows, strict=True):
            del raw_row
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append(
                    {
                        "type": check.kind,
                        "row": row_number,
                        "column": check.field_name,
                        "field_number": column_index + 1,
                        "cell": None if cell is None else str(cell)[:200],
                        "message": f"Row {row_number}, column {check.field_name!r}: "
                        f"{_cell_text(cell)} breaks {check.note}.",
                        "count": count,
                    }
                )
    raise ingest_error(
        "The file does not match its table schema: " + "; ".join(summary) + ".", errors
    )


def _cell_text(cell: object) -> str:
    if cell is None:
        return "an empty cell"
    text = str(cell)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _reject_errors(
    con: duckdb.DuckDBPyConnection,
    rejects: _Rejects | None,
    source: _Source,
    *,
    declared: set[str],
) -> list[dict[str, Any]]:
    """What DuckDB's CSV reader refused, as report entries (most frequent kinds first)."""
    if rejects is None:
        return []
    table = f"temp.{quote_identifier(rejects.table)}"
    try:
        located = con.execute(
            f"SELECT line, column_idx, column_name, error_type, csv_line, error_message, "
            f"count(*) OVER (PARTITION BY error_type, column_name) AS n FROM {table} "
            f"ORDER BY line LIMIT {MAX_REPORTED_ERRORS}"
        ).fetchall()
    except duckdb.CatalogException:
        return []  # no rejects table: the reader stored nothing
    errors = []
    for line, column_idx, column_name, error_type, csv_line, message, count in located:
        kind = _REJECT_TYPES.get(str(error_type), "source-error")
        errors.append(
            {
                "type": kind,
                "row": int(line) if line is not None else None,
                "column": column_name,
                "field_number": int(column_idx) if column_idx is not None else None,
                "message": f"Row {line}: {_clean(Exception(message), source)}",
                "source": (csv_line or "")[:200],
                "count": int(count),
                "declared": column_name in declared,
            }
        )
    return errors


def _raise_reader_errors(errors: list[dict[str, Any]]) -> None:
    kinds: dict[str, list[int]] = {}
    for error in errors:
        kinds.setdefault(error["type"], []).append(error["row"])
    summary = "; ".join(
        f"{_REJECT_LABELS.get(kind, kind)} at row{'s' if len(rows) > 1 else ''} "
        f"{', '.join(str(r) for r in rows[:5])}{' and more' if len(rows) > 5 else ''}"
        for kind, rows in kinds.items()
    )
    for error in errors:
        error.pop("declared", None)
    raise ingest_error(f"The file could not be read cleanly: {summary}.", errors)


class _Verifier:
    """Runs inside the lake transaction after the table is written, before COMMIT."""

    def __init__(
        self,
        table_name: str,
        source: _Source,
        rejects: _Rejects | None,
        declared: set[str],
        source_columns: list[str],
    ) -> None:
        self.table_name = table_name
        self.source = source
        self.rejects = rejects
        self.declared = declared
        self.source_columns = source_columns
        self.row_count = 0
        self.columns: list[dict[str, Any]] = []

    def __call__(self, cursor: duckdb.DuckDBPyConnection) -> None:
        errors = _reject_errors(cursor, self.rejects, self.source, declared=self.declared)
        if errors:
            if all(e["type"] == "type-error" and not e["declared"] for e in errors):
                raise _WidenTypes
            if self.source.format.sample_is_ascii and all(
                e["type"] == "encoding-error" for e in errors
            ):
                raise _NotUtf8
            _raise_reader_errors(errors)
        table = table_ref(self.table_name)
        described = cursor.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()
        counts = ", ".join(f"count({quote_identifier(str(row[0]))})" for row in described)
        totals = cursor.execute(f"SELECT count(*), {counts} FROM {table}").fetchone() or (0,)
        self.row_count = int(totals[0])
        self.columns = [
            column_entry(str(row[0]), str(row[1]), nullable=int(non_null) < self.row_count)
            for row, non_null in zip(described, totals[1:], strict=True)
        ]
        if not self.source.spatial and self.source.format.kind == "geojson":
            for column in self.columns:
                if column["name"] == GEOMETRY_COLUMN:
                    column.update(type="geometry", format="geojson")


@contextlib.contextmanager
def _watch_progress(
    con: duckdb.DuckDBPyConnection, stage: str, notify: ProgressCallback | None
) -> Iterator[None]:
    """Report DuckDB's own progress estimate for the running query every quarter second."""
    if notify is None:
        yield
        return
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(PROGRESS_POLL_SECONDS):
            try:
                percent = con.query_progress()
            except duckdb.Error:
                continue
            if percent is not None and percent >= 0:
                notify(stage, min(float(percent) / 100.0, 1.0))

    watcher = threading.Thread(target=poll, name="ingest-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


def build_report(
    *,
    valid: bool,
    source: _Source,
    written: _Written | None,
    errors: list[dict[str, Any]],
    seconds: float,
    sha256: str | None,
    size: int | None,
) -> dict[str, Any]:
    """The validation report kept with the version: a Frictionless report descriptor, plus
    what Townhall detected (format, encoding)."""
    columns = written.columns if written else []
    warnings = list(written.warnings if written else [])
    if source.format.kind == "geojson" and not source.spatial:
        warnings.append("The spatial extension is not installed: geometry is kept as GeoJSON text.")
    task_stats: dict[str, Any] = {
        "errors": len(errors),
        "warnings": len(warnings),
        "seconds": round(seconds, 3),
        "fields": len(columns),
        "rows": written.row_count if written else 0,
    }
    if sha256:
        task_stats["sha256"] = sha256
    if size is not None:
        task_stats["bytes"] = size
    return {
        "valid": valid,
        "stats": {
            "tasks": 1,
            "errors": len(errors),
            "warnings": len(warnings),
            "seconds": round(seconds, 3),
        },
        "warnings": warnings,
        "errors": [],
        "tasks": [
            {
                "name": Path(source.source_name or source.path.name).stem or "table",
                "type": "table",
                "valid": valid,
                "place": source.source_name,
                "labels": [c["name"] for c in columns],
                "stats": task_stats,
                "warnings": warnings,
                "errors": errors,
            }
        ],
        "townhall": {"format": source.format.kind, "encoding": source.encoding},
    }
