"""Consistent online copies of the SQL databases, and putting them back.

- SQLite (the main database, the lake catalog): SQLite's online backup API, in one step, so
  the copy is one consistent snapshot; in WAL mode writers are not blocked meanwhile.
- PostgreSQL: `pg_dump --format=custom` run on a snapshot exported by a REPEATABLE READ
  transaction, which also counts every table's rows and reads the audit trail's head, so the
  manifest describes exactly what the dump holds. `pg_restore` puts it back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy.engine import make_url

from townhall.config import Settings
from townhall.recovery.archive import BackupError

LAKE_SCHEMA = "lake"
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
PG_TOOL_TIMEOUT_SECONDS = 6 * 3600


@dataclass
class DatabaseFacts:
    """What a copy holds: row counts per table (`schema.table` on PostgreSQL), the audit head."""

    row_counts: dict[str, int] = field(default_factory=dict)
    audit_seq: int | None = None
    audit_hash: str | None = None
    alembic_revision: str | None = None
    lake_snapshot: int | None = None


# Where things are -----------------------------------------------------------------------------


def sqlite_path(settings: Settings) -> Path:
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        raise ValueError("not a SQLite database")
    return Path(url.database).resolve()


def lake_catalog(settings: Settings) -> tuple[str, str]:
    """`("sqlite", file)` or `("postgres", libpq conninfo)` of the DuckLake catalog."""
    kind, _, target = settings.resolved_lake_catalog_url.partition(":")
    return kind, target


def main_conninfo(settings: Settings) -> dict[str, Any]:
    url = make_url(settings.resolved_database_url)
    info = {
        "dbname": url.database,
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
    }
    return {key: value for key, value in info.items() if value is not None}


def lake_in_main_database(settings: Settings) -> bool:
    """Whether the lake catalog is the `lake` schema of the main PostgreSQL database."""
    kind, target = lake_catalog(settings)
    if kind != "postgres" or not settings.is_postgres:
        return False
    lake = conninfo_to_dict(target)
    main = main_conninfo(settings)
    return all(
        str(lake.get(key) or "") == str(main.get(key) or "") for key in ("dbname", "host", "port")
    )


# SQLite ---------------------------------------------------------------------------------------


def sqlite_copy(source: Path, target: Path) -> None:
    """Copy a live SQLite database with the online backup API (one step: one snapshot)."""
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    with (
        contextlib.closing(sqlite3.connect(source, timeout=30)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst, pages=-1)
        # The copy is a single file: no WAL beside it until something opens it again.
        dst.execute("PRAGMA journal_mode=DELETE")


def sqlite_facts(path: Path, *, lake: bool = False) -> DatabaseFacts:
    facts = DatabaseFacts()
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
        tables = [
            row[0]
            for row in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                "ORDER BY name"
            )
        ]
        for table in tables:
            quoted = '"' + table.replace('"', '""') + '"'
            with contextlib.suppress(sqlite3.OperationalError):  # a virtual table's module
                facts.row_counts[table] = int(
                    con.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0]
                )
        if "audit_entries" in tables:
            head = con.execute(
                "SELECT seq, entry_hash FROM audit_entries ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            if head:
                facts.audit_seq, facts.audit_hash = int(head[0]), str(head[1])
        if "alembic_version" in tables:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
            facts.alembic_revision = row[0] if row else None
        if lake and "ducklake_snapshot" in tables:
            row = con.execute("SELECT max(snapshot_id) FROM ducklake_snapshot").fetchone()
            facts.lake_snapshot = int(row[0]) if row and row[0] is not None else None
    return facts


def sqlite_is_empty(path: Path) -> bool:
    if not path.exists() or path.stat().st_size == 0:
        return True
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
        row = con.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchone()
    return not row or row[0] == 0


def sqlite_put_in_place(staged: Path, target: Path) -> None:
    """Move a restored SQLite file to its place; stale WAL/SHM files of an empty target go."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.move(str(staged), str(target))


# PostgreSQL -----------------------------------------------------------------------------------


def pg_tool(name: str) -> str:
    """The path of `pg_dump` or `pg_restore`; raises BackupError naming the package to install."""
    found = shutil.which(name)
    if found is None:
        for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
            if (folder / name).is_file():
                return str(folder / name)
        raise BackupError(
            f"{name} is not installed: install PostgreSQL's client tools (Debian: "
            "postgresql-client), of the server's major version or newer"
        )
    return found


def _tool_environment(info: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """A conninfo without the password, and an environment carrying it (not on argv)."""
    info = dict(info)
    password = info.pop("password", None)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: str(v) for k, v in info.items()}), env


@contextlib.contextmanager
def exported_snapshot(info: dict[str, Any]) -> Iterator[tuple[str, psycopg.Connection]]:
    """A REPEATABLE READ transaction that exports its snapshot for pg_dump; kept open until
    the block ends, so pg_dump and the counts see the same data."""
    with psycopg.connect(make_conninfo(**{k: str(v) for k, v in info.items()})) as connection:
        connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = connection.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        try:
            yield str(row[0]), connection
        finally:
            connection.rollback()


def pg_tables(
    connection: psycopg.Connection, schemas: tuple[str, ...] | None
) -> list[tuple[str, str]]:
    rows = connection.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' AND table_schema <> ALL(%s) "
        "AND table_schema NOT LIKE 'pg_temp%%' AND table_schema NOT LIKE 'pg_toast%%' "
        "ORDER BY 1, 2",
        (list(SYSTEM_SCHEMAS),),
    ).fetchall()
    return [(s, t) for s, t in rows if schemas is None or s in schemas]


def pg_facts(
    connection: psycopg.Connection, schemas: tuple[str, ...] | None, *, audit: bool
) -> DatabaseFacts:
    facts = DatabaseFacts()
    tables = pg_tables(connection, schemas)
    for schema, table in tables:
        count = connection.execute(
            sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
        ).fetchone()
        facts.row_counts[f"{schema}.{table}"] = int(count[0]) if count else 0
    names = {f"{s}.{t}" for s, t in tables}
    if audit and "public.audit_entries" in names:
        head = connection.execute(
            "SELECT seq, entry_hash FROM public.audit_entries ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if head:
            facts.audit_seq, facts.audit_hash = int(head[0]), str(head[1])
    if "public.alembic_version" in names:
        row = connection.execute("SELECT version_num FROM public.alembic_version").fetchone()
        facts.alembic_revision = row[0] if row else None
    if f"{LAKE_SCHEMA}.ducklake_snapshot" in names:
        row = connection.execute(
            sql.SQL("SELECT max(snapshot_id) FROM {}.ducklake_snapshot").format(
                sql.Identifier(LAKE_SCHEMA)
            )
        ).fetchone()
        facts.lake_snapshot = int(row[0]) if row and row[0] is not None else None
    return facts


def pg_dump(
    info: dict[str, Any], target: Path, *, schema: str | None = None, audit: bool = True
) -> DatabaseFacts:
    """Dump the database (or one schema of it) to `target`; returns what the dump holds."""
    tool = pg_tool("pg_dump")
    conninfo, env = _tool_environment(info)
    with exported_snapshot(info) as (snapshot, connection):
        facts = pg_facts(connection, (schema,) if schema else None, audit=audit)
        command = [
            tool,
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            f"--snapshot={snapshot}",
            f"--file={target}",
            f"--dbname={conninfo}",
        ]
        if schema:
            command.append(f"--schema={schema}")
        _run(command, env, "pg_dump")
    return facts


def pg_is_empty(info: dict[str, Any], schemas: tuple[str, ...] | None) -> bool:
    """Whether the database has no tables (in `schemas`, or at all). Raises BackupError when it
    cannot be reached (it must exist: create it first)."""
    try:
        with psycopg.connect(
            make_conninfo(**{k: str(v) for k, v in info.items()}), connect_timeout=10
        ) as connection:
            return not pg_tables(connection, schemas)
    except psycopg.Error as error:
        raise BackupError(
            f"cannot reach the PostgreSQL database {info.get('dbname')!r} (create it, empty, "
            f"before restoring): {error}"
        ) from error


def pg_restore(info: dict[str, Any], dump: Path) -> None:
    tool = pg_tool("pg_restore")
    conninfo, env = _tool_environment(info)
    _run(
        [
            tool,
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={conninfo}",
            str(dump),
        ],
        env,
        "pg_restore",
    )


def pg_restored_facts(
    info: dict[str, Any], schemas: tuple[str, ...] | None, *, audit: bool
) -> DatabaseFacts:
    with psycopg.connect(make_conninfo(**{k: str(v) for k, v in info.items()})) as connection:
        return pg_facts(connection, schemas, audit=audit)


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    try:
        done = subprocess.run(  # noqa: S603 - a fixed tool path and our own arguments
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=PG_TOOL_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BackupError(f"{what} could not run: {error}") from error
    if done.returncode != 0:
        raise BackupError(f"{what} failed: {done.stderr.strip() or done.stdout.strip()}")
