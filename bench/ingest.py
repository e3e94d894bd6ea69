"""Loading the same CSV four ways: Townhall, sqlite-utils, PostgreSQL COPY + index, raw DuckDB.

Each loader returns an `IngestResult` with wall-clock seconds; none of them shares state with
another (fresh folder, fresh SQLite file, fresh PostgreSQL database, fresh DuckDB file).
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import psycopg

from bench.generate import TABLE

DATASET_SLUG = "bench-311"
ORGANIZATION_SLUG = "bench"
BENCH_SECRET = "bench-secret-key-long-enough-for-townhall"
PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
COPY_CHUNK_BYTES = 1024 * 1024


@dataclass
class IngestResult:
    system: str
    seconds: float | None
    """Wall-clock seconds for the whole table (extrapolated when `extrapolated_from` is set)."""
    rows: int
    method: str
    extrapolated_from: int | None = None
    measured_seconds: float | None = None
    """What was actually timed (on `extrapolated_from` rows when extrapolated)."""
    parts: dict[str, float] = field(default_factory=dict)
    skipped: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# Townhall --------------------------------------------------------------------------------------


def townhall_settings(data_dir: Path):  # townhall.config.Settings, imported lazily
    """Embedded-mode settings for a fresh data folder (SQLite database and lake catalog).

    Every value is passed explicitly, so TOWNHALL_* variables of the shell cannot leak in.
    """
    from townhall.config import Settings

    return Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{(data_dir / 'townhall.db').resolve()}",
        lake_catalog_url=f"sqlite:{(data_dir / 'lake.sqlite').resolve()}",
        secret_key=BENCH_SECRET,
        run_jobs_in_process=False,
    )


def townhall_environment(data_dir: Path) -> dict[str, str]:
    """The same settings as environment variables, for a `townhall serve` subprocess."""
    return {
        "TOWNHALL_DATA_DIR": str(data_dir.resolve()),
        "TOWNHALL_DATABASE_URL": f"sqlite:///{(data_dir / 'townhall.db').resolve()}",
        "TOWNHALL_LAKE_CATALOG_URL": f"sqlite:{(data_dir / 'lake.sqlite').resolve()}",
        "TOWNHALL_SECRET_KEY": BENCH_SECRET,
        # No townhall.toml from wherever the bench was started.
        "TOWNHALL_CONFIG_FILE": str(data_dir.resolve() / "no-such-townhall.toml"),
    }


def townhall_ingest(csv_path: Path, data_dir: Path, rows: int) -> IngestResult:
    """Create a published dataset with one resource in a fresh data folder, then time
    `townhall.datastore.ingest.ingest_file` on the CSV (the CLI's and the upload API's path).

    Migrating the database and creating the lake catalog happen once per instance and are
    not timed; detection, type inference, the SHA-256, the DuckLake write and recording the
    version are.
    """
    from townhall.accounts import actions as account_actions
    from townhall.actor import system_actor
    from townhall.catalog import actions as catalog_actions
    from townhall.datastore.ingest import ingest_file
    from townhall.db import unit_of_work
    from townhall.migrate import upgrade
    from townhall.runtime import Runtime

    data_dir.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(townhall_settings(data_dir))
    try:
        upgrade(runtime.engine)
        actor = system_actor("bench")
        with unit_of_work(runtime.session_factory) as session:
            account_actions.create_organization(
                session, actor=actor, slug=ORGANIZATION_SLUG, name="Benchmark office"
            )
            steward = account_actions.create_user(
                session,
                actor=actor,
                email="steward@bench.invalid",
                password=BENCH_SECRET,
                role="publisher",
                display_name="Benchmark steward",
                organization_slugs=[ORGANIZATION_SLUG],
            )
            catalog_actions.create_dataset(
                session,
                actor=actor,
                organization_slug=ORGANIZATION_SLUG,
                slug=DATASET_SLUG,
                title="311 service requests (generated)",
                license_id="CC-BY-4.0",
                steward_id=steward.id,
            )
            resource = catalog_actions.create_resource(
                session, actor=actor, slug=DATASET_SLUG, name="requests", format="CSV"
            )
            resource_id = resource.id
        runtime.lake.current_snapshot()  # creates the catalog: setup, not ingest
        started = time.perf_counter()
        version = ingest_file(
            runtime,
            actor=actor,
            resource_id=resource_id,
            path=csv_path,
            source_name=csv_path.name,
        )
        seconds = time.perf_counter() - started
        if version.row_count != rows:
            raise RuntimeError(f"Townhall loaded {version.row_count} rows, expected {rows}")
        columns = {c["name"]: c.get("db_type") for c in version.columns}
        # Publishing the dataset's record (so anonymous API calls can read it) is not timed.
        with unit_of_work(runtime.session_factory) as session:
            catalog_actions.set_dataset_state(
                session, actor=actor, slug=DATASET_SLUG, state="published"
            )
    finally:
        runtime.close()
    return IngestResult(
        "Townhall",
        seconds,
        rows,
        "`townhall.datastore.ingest.ingest_file` (detect, infer types, SHA-256, "
        "DuckLake snapshot, record the version)",
        extra={"table": version.table_name, "snapshot": version.snapshot_id, "columns": columns},
    )


# sqlite-utils ----------------------------------------------------------------------------------


def sqlite_utils_command() -> list[str]:
    """`sqlite-utils` from the running interpreter's environment."""
    script = Path(sys.executable).with_name("sqlite-utils")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sqlite_utils"]


def sqlite_utils_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("sqlite-utils")
    except Exception:
        return None


def detect_types_flags() -> list[str]:
    """sqlite-utils 3.x needs `--detect-types`; 4.x detects types by default (and only has
    `--no-detect-types`)."""
    found = sqlite_utils_version() or "4"
    return ["--detect-types"] if int(found.split(".")[0]) < 4 else []


def sqlite_utils_ingest(
    subset_csv: Path, db_path: Path, subset_rows: int, rows: int
) -> IngestResult:
    """Time `sqlite-utils insert --csv` with type detection on `subset_rows` rows and scale
    linearly to `rows` (its cost per row is flat: one Python pass per row, then one INSERT)."""
    db_path.unlink(missing_ok=True)
    command = [
        *sqlite_utils_command(),
        "insert",
        str(db_path),
        TABLE,
        str(subset_csv),
        "--csv",
        *detect_types_flags(),
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    measured = time.perf_counter() - started
    extrapolated = subset_rows < rows
    return IngestResult(
        "sqlite-utils",
        measured * rows / subset_rows,
        rows,
        "`"
        + " ".join(["sqlite-utils insert --csv", *detect_types_flags()])
        + "`"
        + f" (version {sqlite_utils_version()}, which detects types)",
        extrapolated_from=subset_rows if extrapolated else None,
        measured_seconds=measured,
    )


def sqlite_schema(db_path: Path) -> str:
    with contextlib.closing(sqlite3.connect(db_path)) as con:
        row = con.execute("SELECT sql FROM sqlite_master WHERE name = ?", [TABLE]).fetchone()
    if row is None:
        raise RuntimeError(f"no table {TABLE} in {db_path}")
    return str(row[0])


def build_sqlite_copy(
    csv_path: Path, schema_sql: str, db_path: Path, extension_dir: Path
) -> dict[str, float]:
    """The full table in SQLite for Datasette, with the very schema sqlite-utils chose on the
    subset, written by DuckDB's sqlite extension (minutes faster than sqlite-utils at 5M rows;
    the result is the same table). Then the index on category a Datasette user would add."""
    from townhall.datastore.lake import prepare_extension_directory

    db_path.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(db_path)) as con:
        con.execute(schema_sql)
        con.commit()
    prepare_extension_directory(extension_dir)
    started = time.perf_counter()
    with duckdb.connect(
        config={
            "extension_directory": str(extension_dir),
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
    ) as con:
        con.execute("SET enable_progress_bar = false")
        con.execute("LOAD sqlite_scanner")
        con.execute(f"ATTACH '{db_path}' AS s (TYPE sqlite)")
        columns = con.execute(
            f"DESCRIBE SELECT * FROM read_csv('{csv_path}', sample_size=20480)"
        ).fetchall()
        select = ", ".join(
            _as_sqlite_utils_stores(str(name), str(kind)) for name, kind, *_ in columns
        )
        con.execute(f"INSERT INTO s.{TABLE} SELECT {select} FROM read_csv('{csv_path}')")
    return {"load": time.perf_counter() - started, **build_sqlite_index(db_path)}


def build_sqlite_index(db_path: Path) -> dict[str, float]:
    """`CREATE INDEX` on category, as a Datasette user adds for the column they filter on."""
    started = time.perf_counter()
    with contextlib.closing(sqlite3.connect(db_path)) as con:
        con.execute(f"CREATE INDEX idx_{TABLE}_category ON {TABLE} (category)")
        con.commit()
    return {"index": time.perf_counter() - started}


def _as_sqlite_utils_stores(name: str, kind: str) -> str:
    """sqlite-utils keeps timestamps as the CSV's text and empty text cells as '' (numbers
    become NULL)."""
    quoted = '"' + name.replace('"', '""') + '"'
    if kind.startswith("TIMESTAMP"):
        return f"coalesce(strftime({quoted}, '%Y-%m-%d %H:%M:%S'), '')"
    if kind == "VARCHAR":
        return f"coalesce({quoted}, '')"
    return quoted


# PostgreSQL ------------------------------------------------------------------------------------

PG_TYPES = {"BIGINT": "bigint", "DOUBLE": "double precision", "TIMESTAMP": "timestamp"}


def postgres_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def csv_columns(csv_path: Path) -> list[tuple[str, str]]:
    with duckdb.connect() as con:
        rows = con.execute(f"DESCRIBE SELECT * FROM read_csv('{csv_path}')").fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def postgres_ingest(csv_path: Path, rows: int) -> IngestResult:
    """CKAN xloader's method: `COPY ... FROM STDIN (FORMAT csv)` into a typed table streamed by
    the client, then one index (on category, the column the queries filter on), in a scratch
    database dropped afterwards."""
    if not postgres_available():
        return IngestResult(
            "PostgreSQL", None, rows, "COPY + index", skipped="PostgreSQL not reachable"
        )
    name = f"townhall_bench_{uuid.uuid4().hex[:8]}"
    columns = csv_columns(csv_path)
    ddl = ", ".join(f'"{n}" {PG_TYPES.get(t, "text")}' for n, t in columns)
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = PG_ADMIN_DSN.replace("dbname=postgres", f"dbname={name}")
        with psycopg.connect(dsn, autocommit=True) as con:
            con.execute(f"CREATE TABLE {TABLE} ({ddl})")
            started = time.perf_counter()
            with (
                con.cursor() as cursor,
                cursor.copy(f"COPY {TABLE} FROM STDIN (FORMAT csv, HEADER true)") as copy,
                csv_path.open("rb") as handle,
            ):
                while chunk := handle.read(COPY_CHUNK_BYTES):
                    copy.write(chunk)
            copied = time.perf_counter() - started
            started = time.perf_counter()
            con.execute(f"CREATE INDEX ON {TABLE} (category)")
            indexed = time.perf_counter() - started
            count = con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
            if not count or count[0] != rows:
                raise RuntimeError(f"PostgreSQL loaded {count} rows, expected {rows}")
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return IngestResult(
        "PostgreSQL",
        copied + indexed,
        rows,
        "`COPY FROM STDIN (FORMAT csv)` into a typed table + `CREATE INDEX` on category",
        parts={"copy": copied, "index": indexed},
    )


# Raw DuckDB ------------------------------------------------------------------------------------


def duckdb_ingest(csv_path: Path, db_path: Path, rows: int, threads: int) -> IngestResult:
    """`CREATE TABLE AS SELECT * FROM read_csv(...)` into a fresh DuckDB file: the floor."""
    db_path.unlink(missing_ok=True)
    started = time.perf_counter()
    with duckdb.connect(str(db_path), config={"threads": threads}) as con:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"CREATE TABLE {TABLE} AS SELECT * FROM read_csv('{csv_path}')")
        count = con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
    seconds = time.perf_counter() - started
    if not count or count[0] != rows:
        raise RuntimeError(f"DuckDB loaded {count} rows, expected {rows}")
    return IngestResult(
        "raw DuckDB", seconds, rows, "`CREATE TABLE AS SELECT * FROM read_csv(...)` (file db)"
    )


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
