"""The read side's DuckDB: one locked, read-only instance per process, a time limit per query.

The instance attaches the lake read-only, then closes the doors behind it:
`allowed_directories` is the lake's data folder (the attached lake reads its Parquet files
through it) and the export folder (downloads are written there by `COPY`), external access is
then switched off, Python replacement scans too, and the configuration is locked, so no query
can `SET` any of it back, `INSTALL`/`LOAD` an extension or `ATTACH` a file. As DESIGN.md's
pitfalls say, this sandbox still lets `read_parquet('<lake>/**')` read every data file: user SQL
is checked by `sql_guard` before it gets here, and this is the second line, not the first.

Each query runs on its own cursor with a timer that calls `interrupt()` when the time limit
passes (DuckDB stops at its next check), and is answered with `query_timeout`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb

from townhall.datastore.lake import Lake, LakeExtensionError
from townhall.datastore.sqltext import string_literal
from townhall.errors import TownhallError

if TYPE_CHECKING:
    from townhall.runtime import Runtime

log = logging.getLogger(__name__)
T = TypeVar("T")

# Status for a query stopped at the time limit: a 4xx (the query asked for too much), and not
# 408, which tells HTTP clients the *request* was slow to arrive and invites automatic retries.
TIMEOUT_STATUS = 400
# Names a user may never call, though DuckDB lists them as ordinary scalar functions: they read
# settings or variables, or write to the log.
DENIED_FUNCTIONS = frozenset(
    {
        "current_setting",
        "getvariable",
        "current_query",
        "current_query_id",
        "write_log",
        "json_execute_serialized_sql",
    }
)
# Syntax sqlglot renders as a call but DuckDB does not list among its functions.
SYNTAX_FUNCTIONS = frozenset({"cast", "try_cast", "extract", "interval", "if", "case", "unnest"})


class QueryEngine:
    """The locked DuckDB instance of one runtime, opened on first use; thread-safe."""

    def __init__(self, runtime: Runtime) -> None:
        self._settings = runtime.settings
        self._lake: Lake = runtime.lake
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._functions: frozenset[str] | None = None
        self.spatial = False

    @property
    def export_directory(self) -> Path:
        return self._settings.data_dir.resolve() / "tmp" / "exports"

    @property
    def timeout_seconds(self) -> float:
        return self._settings.query_timeout_seconds

    @property
    def row_cap(self) -> int:
        return self._settings.query_row_cap

    def _connection(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._con is None:
                self._con = self._open()
            return self._con

    def _open(self) -> duckdb.DuckDBPyConnection:
        try:
            con = self._lake.connect(read_only=True, extensions=("spatial",))
            self.spatial = True
        except LakeExtensionError:
            con = self._lake.connect(read_only=True)
            self.spatial = False
        try:
            self.export_directory.mkdir(parents=True, exist_ok=True)
            allowed = [str(self._lake.data_path) + "/", str(self.export_directory) + "/"]
            con.execute(f"SET allowed_directories=[{', '.join(map(string_literal, allowed))}]")
            con.execute("SET python_enable_replacements=false")
            con.execute("SET enable_external_access=false")
            con.execute("SET lock_configuration=true")
            rows = con.execute(
                "SELECT DISTINCT lower(function_name) FROM duckdb_functions() "
                "WHERE function_type IN ('scalar', 'aggregate', 'macro')"
            ).fetchall()
            self._functions = (
                frozenset(str(row[0]) for row in rows) - DENIED_FUNCTIONS
            ) | SYNTAX_FUNCTIONS
        except BaseException:
            con.close()
            raise
        return con

    @property
    def allowed_functions(self) -> frozenset[str]:
        self._connection()
        assert self._functions is not None
        return self._functions

    def reset(self) -> None:
        """Drop the instance (after a lost catalog connection); the next query reopens it."""
        with self._lock:
            con, self._con = self._con, None
        if con is not None:
            with contextlib.suppress(duckdb.Error):
                con.close()

    @contextlib.contextmanager
    def cursor(self, timeout_seconds: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor whose queries stop after `timeout_seconds` (default: the setting), raising
        TownhallError `query_timeout`. The limit covers everything done inside the block."""
        limit = self.timeout_seconds if timeout_seconds is None else timeout_seconds
        cursor = self._connection().cursor()
        fired = threading.Event()

        def stop() -> None:
            fired.set()
            cursor.interrupt()

        timer = threading.Timer(limit, stop)
        timer.daemon = True
        timer.start()
        try:
            yield cursor
        except duckdb.InterruptException as error:
            raise TownhallError(
                TIMEOUT_STATUS,
                "query_timeout",
                f"The query ran past the {limit:g} s time limit and was stopped; "
                "add filters or aggregate to ask for less.",
            ) from error
        except duckdb.Error as error:
            if fired.is_set():
                # An interrupt can surface as another error class mid-operator.
                raise TownhallError(
                    TIMEOUT_STATUS,
                    "query_timeout",
                    f"The query ran past the {limit:g} s time limit and was stopped.",
                ) from error
            if isinstance(error, duckdb.ConnectionException | duckdb.FatalException):
                self.reset()
            raise
        finally:
            timer.cancel()
            with contextlib.suppress(duckdb.Error):
                cursor.close()

    def run(
        self,
        work: Callable[[duckdb.DuckDBPyConnection], T],
        timeout_seconds: float | None = None,
    ) -> T:
        with self.cursor(timeout_seconds) as cursor:
            return work(cursor)


_engines: weakref.WeakKeyDictionary[Any, QueryEngine] = weakref.WeakKeyDictionary()
_engines_lock = threading.Lock()


def query_engine(runtime: Runtime) -> QueryEngine:
    """The runtime's query engine (one per runtime, built on first use)."""
    with _engines_lock:
        engine = _engines.get(runtime)
        if engine is None:
            engine = QueryEngine(runtime)
            _engines[runtime] = engine
        return engine


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
