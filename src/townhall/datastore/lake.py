"""The DuckLake lake: every dataset table lives here, and every published version is a snapshot.

Parquet files sit under `Settings.resolved_lake_data_path`; the catalog is a SQLite file in the
data folder (embedded mode) or the schema `lake` of the main PostgreSQL database (production).

DuckDB extensions come from PyPI packages, never from the network at run time: they are laid out
in an extension directory under the data folder, with autoinstall and autoload switched off, and
DuckDB still checks their signatures on LOAD.

Lake writes are serialized, within a process and across processes (a file lock next to a SQLite
catalog, a PostgreSQL advisory lock otherwise). DuckLake 1.5.5 mishandles concurrent commits:
measured here, 8 threads sharing one DuckDB instance lost 6 of 40 CREATE OR REPLACE commits to
"schema with id <garbage> not found" (duckdb/ducklake#1248), and 6 processes on one SQLite
catalog lost 47 of 60 to "database is locked" even in WAL mode (#1309). 6 processes on a
PostgreSQL catalog lost none, but #1283 reports snapshot id collisions there under load, and
serializing also makes `last_committed_snapshot()` (shared by every connection of a DuckDB
instance) name the write that just committed.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.util
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import psycopg

from townhall.config import Settings

LAKE = "lake"
"""The name the lake is attached under in every connection: tables are `lake.<schema>.<table>`."""

POSTGRES_METADATA_SCHEMA = "lake"
SQLITE_BUSY_TIMEOUT_MS = 5_000
PING_TIMEOUT_SECONDS = 5.0

# Any stable number works; it only has to differ from the app's other advisory locks.
_ADVISORY_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"townhall.datastore.lake.write").digest()[:8], "big", signed=True
)
_EXTENSION_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# Extension files whose signature a LOAD in this process has checked, by resolved path, with
# the (inode, size, mtime) they had then: see `Lake._open`.
_verified_extensions: dict[Path, tuple[int, int, int]] = {}
_verified_lock = threading.Lock()


def _fingerprint(path: Path) -> tuple[int, int, int] | None:
    try:
        found = path.stat()  # through the symlink: the packaged file itself
    except OSError:
        return None
    return (found.st_ino, found.st_size, found.st_mtime_ns)


class LakeError(Exception):
    """The lake could not do what was asked; the message says why."""


class LakeExtensionError(LakeError):
    """A DuckDB extension is neither packaged nor installable (no network, no package)."""


class LakeTimeoutError(LakeError, TimeoutError):
    """A query ran past its time limit and was interrupted."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One committed change of the lake: a dataset version is the snapshot that wrote it."""

    id: int
    time: datetime
    changes: dict[str, list[str]]
    author: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Rows:
    columns: list[str]
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class ExtensionPackage:
    module: str
    """Import name of the PyPI package (`duckdb-extension-sqlite` -> `duckdb_extension_sqlite`)."""
    file_stem: str
    """The package ships `<file_stem>.duckdb_extension` ..."""
    name: str
    """... which DuckDB only loads under this name (it finds the init symbol by file name)."""

    @property
    def pip_name(self) -> str:
        return self.module.replace("_", "-")


EXTENSION_PACKAGES: tuple[ExtensionPackage, ...] = (
    ExtensionPackage("duckdb_extension_ducklake", "ducklake", "ducklake"),
    ExtensionPackage("duckdb_extension_sqlite", "sqlite", "sqlite_scanner"),
    ExtensionPackage("duckdb_extension_postgres", "postgres", "postgres_scanner"),
    ExtensionPackage("duckdb_extension_spatial", "spatial", "spatial"),
    ExtensionPackage("duckdb_extension_fts", "fts", "fts"),
    ExtensionPackage("duckdb_extension_httpfs", "httpfs", "httpfs"),
    # read_xlsx for spreadsheet ingest (datastore.ingest).
    ExtensionPackage("duckdb_extension_excel", "excel", "excel"),
)


def quote_identifier(name: str) -> str:
    """Quote a schema, table or column name for DuckDB SQL.

    Raises ValueError on an empty name or a NUL character, which no identifier may hold.
    """
    if not name or "\x00" in name:
        raise ValueError(f"not a valid SQL identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    # Only for statements that take no parameters (ATTACH); values come from settings.
    if "\x00" in value:
        raise ValueError("a SQL string literal cannot hold a NUL character")
    return "'" + value.replace("'", "''") + "'"


def table_ref(name: str, *, schema: str = "main", snapshot: int | None = None) -> str:
    """`lake."schema"."name"`, read at `snapshot` (`AT (VERSION => n)`) when one is given.

    `snapshot=None` means the latest version. Raises ValueError on a snapshot that is not a
    non-negative int, so nothing but a number reaches the SQL.
    """
    ref = f"{LAKE}.{quote_identifier(schema)}.{quote_identifier(name)}"
    if snapshot is None:
        return ref
    if isinstance(snapshot, bool) or not isinstance(snapshot, int) or snapshot < 0:
        raise ValueError(f"snapshot must be a non-negative int, not {snapshot!r}")
    return f"{ref} AT (VERSION => {snapshot})"


@functools.cache
def duckdb_build() -> tuple[str, str]:
    """`(library version, platform)`, e.g. `("v1.5.5", "linux_amd64")`: the two folder levels
    DuckDB looks under in an extension directory."""
    with duckdb.connect() as con:
        version_row = con.execute("SELECT library_version FROM pragma_version()").fetchone()
        platform_row = con.execute("PRAGMA platform").fetchone()
    if version_row is None or platform_row is None:
        raise LakeError("DuckDB did not report its version and platform")
    return str(version_row[0]), str(platform_row[0])


def prepare_extension_directory(root: Path) -> frozenset[str]:
    """Lay every installed extension package out under `root` the way DuckDB expects it.

    Returns the names laid out (packages not installed are skipped). Idempotent, and safe when
    several processes run it at once: each entry is made under a temporary name, then renamed.
    Entries are symlinks into site-packages, or copies where symlinks are not possible.
    """
    version, platform = duckdb_build()
    folder = root / version / platform
    folder.mkdir(parents=True, exist_ok=True)
    laid_out: set[str] = set()
    for package in EXTENSION_PACKAGES:
        source = _packaged_file(package, version)
        if source is not None:
            _put_in_place(source, folder / f"{package.name}.duckdb_extension")
            laid_out.add(package.name)
    return frozenset(laid_out)


def _packaged_file(package: ExtensionPackage, version: str) -> Path | None:
    spec = importlib.util.find_spec(package.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    path = package_dir / "extensions" / version / f"{package.file_stem}.duckdb_extension"
    # A package built for another DuckDB version has no folder for ours: treat it as absent.
    return path if path.is_file() else None


def _put_in_place(source: Path, destination: Path) -> None:
    if destination.is_symlink():
        if os.readlink(destination) == str(source):
            return
    elif destination.is_file():
        have, want = destination.stat(), source.stat()
        if (have.st_size, have.st_mtime_ns) == (want.st_size, want.st_mtime_ns):
            return
    temporary = destination.with_name(f".{destination.name}.{os.getpid()}.{uuid.uuid4().hex}")
    try:
        try:
            temporary.symlink_to(source)
        except OSError:
            shutil.copy2(source, temporary)
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)
    # An earlier `INSTALL` leaves metadata describing the file it downloaded, not this one.
    Path(f"{destination}.info").unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class _Catalog:
    kind: Literal["sqlite", "postgres"]
    target: str
    """The SQLite file, or the libpq connection string."""

    @classmethod
    def parse(cls, url: str) -> _Catalog:
        kind, _, target = url.partition(":")
        if kind not in ("sqlite", "postgres") or not target:
            # A DuckDB-file catalog admits one process at a time: no use to a web server.
            raise ValueError("the lake catalog must be `sqlite:<file>` or `postgres:<libpq dsn>`")
        return cls(kind, target)  # type: ignore[arg-type]  # checked just above

    @property
    def url(self) -> str:
        return f"{self.kind}:{self.target}"

    @property
    def scanner(self) -> str:
        return "sqlite_scanner" if self.kind == "sqlite" else "postgres_scanner"

    def attach_options(self) -> list[str]:
        if self.kind == "sqlite":
            # WAL: readers in other processes do not block a commit, nor a commit them.
            return ["META_JOURNAL_MODE 'WAL'", f"META_BUSY_TIMEOUT {SQLITE_BUSY_TIMEOUT_MS}"]
        return [f"METADATA_SCHEMA {_quote_literal(POSTGRES_METADATA_SCHEMA)}"]

    @contextlib.contextmanager
    def cross_process_lock(self) -> Iterator[None]:
        if self.kind == "sqlite":
            lock_path = Path(self.target).with_name(Path(self.target).name + ".write-lock")
            descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX)
                yield
            finally:
                os.close(descriptor)  # releases the lock, also if the process dies
            return
        with psycopg.connect(self.target, autocommit=True, connect_timeout=10) as connection:
            connection.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
            try:
                yield
            finally:
                # Closing the session releases the lock anyway; do not hide the real error.
                with contextlib.suppress(psycopg.Error):
                    connection.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_KEY,))


_process_write_locks: dict[str, threading.Lock] = {}
_process_write_locks_guard = threading.Lock()


@contextlib.contextmanager
def _write_guard(catalog: _Catalog) -> Iterator[None]:
    """Hold the lake's write lock: one writer per catalog, whatever process or node it runs in.

    Not reentrant: never enter it twice in one thread.
    """
    with _process_write_locks_guard:
        lock = _process_write_locks.setdefault(catalog.url, threading.Lock())
    with lock, catalog.cross_process_lock():
        yield


class Lake:
    """The lake of one Townhall instance, built from its settings; nothing happens until used.

    Thread-safe. Keeps one read-write DuckDB instance for its own helpers, opened on first use
    (that first attach creates the catalog if it does not exist yet); `close()` releases it.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._catalog = _Catalog.parse(settings.resolved_lake_catalog_url)
        self._data_dir = settings.data_dir.resolve()
        self._lock = threading.Lock()
        self._extensions_ready = False
        self._shared_connection: duckdb.DuckDBPyConnection | None = None

    @property
    def data_path(self) -> Path:
        return self._settings.resolved_lake_data_path

    @property
    def extension_directory(self) -> Path:
        return self._data_dir / "duckdb_extensions"

    @property
    def catalog_kind(self) -> Literal["sqlite", "postgres"]:
        return self._catalog.kind

    def __enter__(self) -> Lake:
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the helpers' DuckDB instance. Connections from `connect()` stay open."""
        with self._lock:
            if self._shared_connection is not None:
                self._shared_connection.close()
                self._shared_connection = None

    def connect(
        self, read_only: bool = False, *, extensions: Sequence[str] = ()
    ) -> duckdb.DuckDBPyConnection:
        """A new DuckDB instance with the lake attached as `lake`; the caller closes it.

        Opening one costs about 0.1-0.2 s (each LOAD checks the extension's signature over
        ~35-40 MB): keep it, and give each thread its own `.cursor()`. `memory_limit`, `threads`
        and a private `temp_directory` come from the settings, so a big sort spills to disk.
        `extensions` names further extensions to load (`spatial`, `fts`, `httpfs`). Raises
        LakeExtensionError when one is neither packaged nor installable, duckdb.Error when the
        catalog cannot be reached.
        """
        for name in extensions:
            if not _EXTENSION_NAME.match(name):
                raise ValueError(f"not an extension name: {name!r}")
        # Only a read-write attach creates a missing catalog, so the helpers' one goes first.
        self._cursor().close()
        return self._open(read_only=read_only, extensions=extensions)

    def write_table(
        self,
        name: str,
        source: object,
        *,
        params: Sequence[object] | None = None,
        schema: str = "main",
        author: str | None = None,
        message: str | None = None,
        con: duckdb.DuckDBPyConnection | None = None,
        verify: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
    ) -> int:
        """Replace table `schema.name` with `source` in one lake transaction; return its snapshot.

        `source` is a query (`str`, with `params` for its placeholders), a DuckDBPyRelation (made
        on `con`, which is then required), or anything DuckDB can scan (an Arrow table, a pandas
        or polars DataFrame). `author` and `message` are recorded with the snapshot. Readers see
        the old version or the new one, never a mix; on any error the old version stays. The
        write waits for any other lake write (any process, any node) to finish first.
        `verify(cursor)`, when given, runs inside the transaction after the table is written and
        before COMMIT: it may query the new table, and raising there keeps the old version.
        """
        if isinstance(source, duckdb.DuckDBPyRelation) and con is None:
            raise TypeError("a relation can only be read by its own connection: pass it as con=")
        if params is not None and not isinstance(source, str):
            raise TypeError("params only go with a query source")
        target = table_ref(name, schema=schema)

        def create(cursor: duckdb.DuckDBPyConnection) -> None:
            if schema != "main":
                cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {LAKE}.{quote_identifier(schema)}")
            if isinstance(source, str):
                cursor.execute(f"CREATE OR REPLACE TABLE {target} AS {source}", params)
            else:
                view = f"_townhall_source_{uuid.uuid4().hex}"
                cursor.register(view, source)
                try:
                    cursor.execute(
                        f"CREATE OR REPLACE TABLE {target} AS "
                        f"SELECT * FROM {quote_identifier(view)}"
                    )
                finally:
                    cursor.unregister(view)
            if verify is not None:
                # Still inside the transaction: raising here rolls the new table back.
                verify(cursor)

        snapshot = self._commit(create, author=author, message=message, con=con)
        if snapshot is None:
            raise LakeError("the lake transaction committed but recorded no snapshot")
        return snapshot

    def drop_table(self, name: str, *, schema: str = "main") -> int | None:
        """Drop a table in its own snapshot and return it; `None` if there was no such table.

        Older snapshots keep the table readable by version until they are expired.
        """
        target = table_ref(name, schema=schema)
        dropped = False

        def drop(cursor: duckdb.DuckDBPyConnection) -> None:
            nonlocal dropped
            if self._table_exists(cursor, name, schema):
                cursor.execute(f"DROP TABLE {target}")
                dropped = True

        snapshot = self._commit(drop, author=None, message=None, con=None)
        return snapshot if dropped else None

    def table_exists(self, name: str, *, schema: str = "main") -> bool:
        """Whether the table exists in the latest snapshot (names compare case-insensitively,
        as DuckDB resolves them)."""
        with contextlib.closing(self._cursor()) as cursor:
            return self._table_exists(cursor, name, schema)

    def snapshots(self) -> list[Snapshot]:
        """Every snapshot still kept, oldest first."""
        # timezone('UTC', ...) hands Python a plain timestamp: fetching TIMESTAMPTZ needs pytz.
        rows = self.read(
            "SELECT snapshot_id, timezone('UTC', snapshot_time), changes, author, commit_message "
            f"FROM {LAKE}.snapshots() ORDER BY snapshot_id"
        ).rows
        return [
            Snapshot(
                id=snapshot_id,
                time=time.replace(tzinfo=UTC),
                changes=dict(changes or {}),
                author=author,
                message=message,
            )
            for snapshot_id, time, changes, author, message in rows
        ]

    def current_snapshot(self) -> int:
        """The latest committed snapshot id, as this instance reads the catalog now."""
        rows = self.read(f"SELECT id FROM {LAKE}.current_snapshot()").rows
        return int(rows[0][0])

    def read(
        self,
        sql: str,
        params: Sequence[object] | None = None,
        *,
        timeout_seconds: float | None = None,
    ) -> Rows:
        """Run a query written by Townhall's own code and fetch every row.

        Not for user SQL: that goes through the query sandbox. Use `table_ref(...,
        snapshot=n)` to read an older version. Stops the query after `timeout_seconds`
        (default: the `query_timeout_seconds` setting) and raises LakeTimeoutError.
        """
        limit = self._settings.query_timeout_seconds if timeout_seconds is None else timeout_seconds
        with contextlib.closing(self._cursor()) as cursor:
            timer = threading.Timer(limit, cursor.interrupt)
            timer.daemon = True
            timer.start()
            try:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
            except duckdb.InterruptException as error:
                raise LakeTimeoutError(f"query stopped after {limit:g} s") from error
            finally:
                timer.cancel()
            columns = [column[0] for column in cursor.description or ()]
        return Rows(columns=columns, rows=rows)

    def ping(self) -> bool:
        """Whether the catalog answers and the data folder is there (for /readyz). Never raises.

        A failure drops the helpers' DuckDB instance, so the next call reconnects from scratch.
        """
        try:
            self.read(
                f"SELECT id FROM {LAKE}.current_snapshot()", timeout_seconds=PING_TIMEOUT_SECONDS
            )
            return self.data_path.is_dir()
        except (duckdb.Error, LakeError, OSError, psycopg.Error):
            with contextlib.suppress(duckdb.Error):
                self.close()
            return False

    # Internals.

    def _commit(
        self,
        change: Callable[[duckdb.DuckDBPyConnection], None],
        *,
        author: str | None,
        message: str | None,
        con: duckdb.DuckDBPyConnection | None,
    ) -> int | None:
        """Run `change` in one lake transaction under the write lock; `None` if it changed
        nothing (no snapshot is made then)."""
        # The caller's own connection when given (a relation only works there), else a cursor.
        cursor = con if con is not None else self._cursor()
        try:
            with _write_guard(self._catalog):
                cursor.execute("BEGIN TRANSACTION")
                try:
                    if author is not None or message is not None:
                        cursor.execute(f"CALL {LAKE}.set_commit_message(?, ?)", [author, message])
                    change(cursor)
                    cursor.execute("COMMIT")
                except BaseException:
                    # A failed COMMIT has already rolled back; ROLLBACK then has nothing to do.
                    with contextlib.suppress(duckdb.Error):
                        cursor.execute("ROLLBACK")
                    raise
                # Still under the write lock, so the instance's last commit is this one.
                row = cursor.execute(f"SELECT id FROM {LAKE}.last_committed_snapshot()").fetchone()
        finally:
            if con is None:
                cursor.close()
        return None if row is None or row[0] is None else int(row[0])

    @staticmethod
    def _table_exists(cursor: duckdb.DuckDBPyConnection, name: str, schema: str) -> bool:
        row = cursor.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? "
            "AND lower(schema_name) = lower(?) AND lower(table_name) = lower(?)",
            [LAKE, schema, name],
        ).fetchone()
        return bool(row and row[0])

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of the helpers' DuckDB instance, for one thread; the caller closes it."""
        with self._lock:
            # The first read-write attach creates a missing catalog; a read-only one cannot.
            if self._shared_connection is None:
                if self._catalog.kind == "sqlite":
                    Path(self._catalog.target).parent.mkdir(parents=True, exist_ok=True)
                # Two processes creating one new catalog at once would both write its tables.
                with _write_guard(self._catalog):
                    self._shared_connection = self._open(read_only=False, extensions=())
            return self._shared_connection.cursor()

    def _open(self, *, read_only: bool, extensions: Sequence[str]) -> duckdb.DuckDBPyConnection:
        if not self._extensions_ready:
            prepare_extension_directory(self.extension_directory)
            self._extensions_ready = True
        self.data_path.mkdir(parents=True, exist_ok=True)
        temp_root = self._data_dir / "tmp" / "duckdb"
        temp_root.mkdir(parents=True, exist_ok=True)
        names = ("ducklake", self._catalog.scanner, *extensions)
        # By the packaged file the entry links to: every lake of the process shares it.
        files = [self._extension_file(name).resolve() for name in names]
        with _verified_lock:
            # Checking a signature costs 0.1-0.25 s of CPU per extension per instance (about
            # half of what the datastore tests spent). A file this process has already checked,
            # unchanged since, is loaded without checking it again; anything else is checked.
            # User SQL can never LOAD: the query engine disables external access.
            checked = all(
                _verified_extensions.get(file) == _fingerprint(file) is not None for file in files
            )
        con = duckdb.connect(
            config={
                "extension_directory": str(self.extension_directory),
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "allow_unsigned_extensions": checked,
                "memory_limit": self._settings.duckdb_memory_limit,
                "threads": self._settings.duckdb_threads,
                # One folder per instance: DuckDB names its spill files alike in every process,
                # and removes the folder it created when the instance closes.
                "temp_directory": str(temp_root / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"),
            }
        )
        try:
            for name in names:
                self._load(con, name)
            con.execute(self._attach_statement(read_only=read_only))
        except BaseException:
            con.close()
            raise
        if not checked:
            with _verified_lock:
                for file in files:
                    if (fingerprint := _fingerprint(file)) is not None:
                        _verified_extensions[file] = fingerprint
        return con

    def _extension_file(self, name: str) -> Path:
        version, platform = duckdb_build()
        return self.extension_directory / version / platform / f"{name}.duckdb_extension"

    def _load(self, con: duckdb.DuckDBPyConnection, name: str) -> None:
        if not self._extension_file(name).exists():
            # No package installed: a deployment that reaches DuckDB's server installs it once.
            try:
                con.execute(f"INSTALL {quote_identifier(name)}")
            except duckdb.Error as error:
                package = next((p.pip_name for p in EXTENSION_PACKAGES if p.name == name), None)
                hint = f"pip install {package}=={duckdb.__version__}" if package else "install it"
                raise LakeExtensionError(
                    f"DuckDB extension {name!r} is not packaged here and could not be "
                    f"downloaded ({error}); {hint}"
                ) from error
        con.execute(f"LOAD {quote_identifier(name)}")

    def _attach_statement(self, *, read_only: bool) -> str:
        options = [
            # DuckLake wants the trailing separator; settings win over the path the catalog
            # remembers, so a restored or re-mounted lake is found where it now is.
            f"DATA_PATH {_quote_literal(str(self.data_path) + os.sep)}",
            "OVERRIDE_DATA_PATH TRUE",
            # Every version is a Parquet file: exports, backups and `townhall verify` read
            # files, and the main PostgreSQL database does not fill up with dataset rows.
            "DATA_INLINING_ROW_LIMIT 0",
            *self._catalog.attach_options(),
        ]
        if read_only:
            options.append("READ_ONLY")
        return (
            f"ATTACH {_quote_literal('ducklake:' + self._catalog.url)} AS {LAKE} "
            f"({', '.join(options)})"
        )
