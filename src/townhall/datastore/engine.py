"""The read side's DuckDB: one locked, read-only instance per process, a time limit per query.

The instance attaches the lake read-only, then closes the doors behind it:
`allowed_directories` is the lake's data folder (the attached lake reads its Parquet files
through it) and the export folder (downloads are written there by `COPY`), external access is
then switched off, Python replacement scans too, and the configuration is locked, so no query
can `SET` any of it back, `INSTALL`/`LOAD` an extension or `ATTACH` a file. As DESIGN.md's
pitfalls say, this sandbox still lets `read_parquet('<lake>/**')` read every data file: user SQL
is checked by `sql_guard` before it gets here, and this is the second line, not the first.

Each query runs on its own cursor, and one watchdog thread per process calls `interrupt()` on
it when its time limit passes (DuckDB stops at its next check); the query is answered with
`query_timeout`. (A `threading.Timer` per query was measured at 1-2 ms a query on the busy
2-core machine: starting a thread waits for it to run.)

Answers about a published version can be kept (`answers`, an `AnswerCache`): a version's
snapshot never changes, so a count or an aggregate of it is the same every time it is asked.

Serving copies (`serving.py`: a per-node DuckDB file of a published version) are attached
read-only before the doors close, each as `s_<table>_<snapshot>`. The set of copies is fixed
for one instance (a locked instance cannot ATTACH), so when it changes the engine opens a new
instance (a *generation*) for the next queries; the old one is dropped, not closed, and goes
away once its last running cursor ends. A request pins one generation (`pin()`), so the copy it
chose cannot vanish between building its SQL and running it.
"""

from __future__ import annotations

import contextlib
import copy
import heapq
import itertools
import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb

from townhall.datastore.lake import Lake, LakeExtensionError
from townhall.datastore.sqltext import string_literal
from townhall.errors import TownhallError

if TYPE_CHECKING:
    from townhall.datastore.serving import ServingCopies
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


class _Watchdog:
    """One thread that runs callbacks at their deadlines (query time limits)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, Callable[[], None]] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, seconds: float, callback: Callable[[], None]) -> int:
        """Call `callback()` in `seconds` unless `cancel()`ed first; returns the handle."""
        handle = next(self._ids)
        with self._condition:
            heapq.heappush(self._heap, (time.monotonic() + seconds, handle))
            self._live[handle] = callback
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="query-watchdog", daemon=True
                )
                self._thread.start()
            self._condition.notify()
        return handle

    def cancel(self, handle: int) -> None:
        with self._condition:
            self._live.pop(handle, None)

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._condition.wait()
                    continue
                deadline, handle = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                heapq.heappop(self._heap)
                callback = self._live.pop(handle)
            try:
                callback()
            except Exception:  # pragma: no cover - the cursor may have closed meanwhile
                log.debug("query time limit callback failed", exc_info=True)


_watchdog = _Watchdog()


class AnswerCache:
    """Answers about immutable published versions, least recently used out first; thread-safe.

    Keys must name the table and snapshot the answer is about (a version's snapshot never
    changes, so the answer cannot go stale); values are counted at `size` bytes each against
    `max_bytes`. One per query engine: runtimes (and tests) with their own lakes share nothing.
    """

    def __init__(self, max_bytes: int = 16 * 1024 * 1024, max_entries: int = 4096) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, value: Any, size: int = 64) -> None:
        """Keep `value` unless it alone would take more than a sixteenth of the budget."""
        if size > self.max_bytes // 16:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (value, size)
            self._bytes += size
            while self._entries and (
                self._bytes > self.max_bytes or len(self._entries) > self.max_entries
            ):
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def clear(self) -> None:
        """Forget every answer (the bench measures what a first ask costs)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)


def out_of_memory() -> TownhallError:
    """The answer to a query stopped at the query engine's memory limit (a 4xx: it asked for
    too much, as a query past the time limit does)."""
    return TownhallError(
        TIMEOUT_STATUS,
        "query_out_of_memory",
        "The query needs more memory than this server gives one query; "
        "add filters or aggregate to ask for less.",
    )


def copy_alias(table_name: str, snapshot_id: int) -> str:
    """The name a serving copy is attached under: `s_<table>_<snapshot>`."""
    return f"s_{table_name}_{snapshot_id}"


class _Generation:
    """One locked DuckDB instance and the serving copies attached to it."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        copies: dict[tuple[str, int], str],
        functions: frozenset[str],
    ) -> None:
        self.con = con
        self.copies = copies
        self.functions = functions


class NotKept(Exception):
    """A `memory_only` engine was asked to run a query: the answer is not kept."""


class QueryEngine:
    """The locked DuckDB instance of one runtime, opened on first use; thread-safe.

    `preserve_insertion_order=False` and `threads` make instances for downloads (DuckDB
    settings that cannot change once the configuration is locked; see `download_engine`).
    `query_memory_limit=True` (the shared engine) replaces the lake's `duckdb_memory_limit` by
    the smaller `duckdb_query_memory_limit`: DuckDB keeps every block it read cached up to its
    limit (5M rows, the bench's five queries: 174 MB cached, an idle server at 525 MB).
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        preserve_insertion_order: bool = True,
        threads: int | None = None,
        query_memory_limit: bool = False,
        spatial: bool = True,
        file_cache: bool = True,
    ) -> None:
        self._settings = runtime.settings
        self._runtime = weakref.ref(runtime)
        self._lake: Lake = runtime.lake
        self._lock = threading.Lock()
        self._generation: _Generation | None = None
        self._pinned: _Generation | None = None
        self._memory_only = False
        self._preserve_insertion_order = preserve_insertion_order
        self._threads = threads
        self._query_memory_limit = query_memory_limit
        self._want_spatial = spatial
        self._file_cache = file_cache
        self._copies: Callable[[], dict[tuple[str, int], Path]] = dict
        self._parent: QueryEngine | None = None
        self.spatial = False
        self.serving: ServingCopies | None = None
        """The node's serving copies, when this engine attaches them."""
        self.answers = AnswerCache()
        """Counts and aggregates of published versions (shared with pinned engines)."""

    @property
    def export_directory(self) -> Path:
        return self._settings.data_dir.resolve() / "tmp" / "exports"

    @property
    def timeout_seconds(self) -> float:
        return self._settings.query_timeout_seconds

    @property
    def row_cap(self) -> int:
        return self._settings.query_row_cap

    def use_copies(self, copies: Callable[[], dict[tuple[str, int], Path]]) -> None:
        """Attach the serving copies `copies()` lists (`(table, snapshot)` -> file) whenever an
        instance opens."""
        self._copies = copies

    def _current(self) -> _Generation:
        if self._pinned is not None:
            return self._pinned
        with self._lock:
            if self._generation is None:
                self._generation = self._open()
            return self._generation

    def _connection(self) -> duckdb.DuckDBPyConnection:
        return self._current().con

    def _open(self) -> _Generation:
        con: duckdb.DuckDBPyConnection | None = None
        if self._want_spatial:
            with contextlib.suppress(LakeExtensionError):
                con = self._lake.connect(read_only=True, extensions=("spatial",))
        self.spatial = con is not None
        if con is None:
            con = self._lake.connect(read_only=True)
        try:
            if not self._file_cache:
                con.execute("SET enable_external_file_cache=false")
            if not self._preserve_insertion_order:
                con.execute("SET preserve_insertion_order=false")
            if self._threads is not None:
                con.execute(f"SET threads={int(self._threads)}")
            if self._query_memory_limit:
                limit = self._settings.duckdb_query_memory_limit
                con.execute(f"SET memory_limit={string_literal(limit)}")
                # Give freed memory back to the system sooner than the 128 MB default.
                con.execute("SET allocator_flush_threshold='16MB'")
            copies: dict[tuple[str, int], str] = {}
            for (table_name, snapshot_id), path in sorted(self._copies().items()):
                alias = copy_alias(table_name, snapshot_id)
                try:
                    con.execute(f"ATTACH {string_literal(str(path))} AS {alias} (READ_ONLY)")
                except duckdb.Error as error:
                    # A copy deleted or replaced meanwhile: serve that table from the lake.
                    log.warning("serving copy %s not attached: %s", path, error)
                    continue
                copies[(table_name, snapshot_id)] = alias
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
            functions = (
                frozenset(str(row[0]) for row in rows) - DENIED_FUNCTIONS
            ) | SYNTAX_FUNCTIONS
        except BaseException:
            con.close()
            raise
        return _Generation(con, copies, functions)

    @property
    def allowed_functions(self) -> frozenset[str]:
        return self._current().functions

    def pin(self) -> QueryEngine:
        """This engine held to its current instance: the copies it lists stay attached for
        every query run through the returned engine, whatever `refresh()` does meanwhile."""
        pinned = copy.copy(self)
        pinned._pinned = self._current()
        pinned._parent = self._parent or self
        return pinned

    def memory_only(self) -> QueryEngine:
        """This engine for answers already kept (`answers`), on the event loop: held to its
        open instance, and any query raises `NotKept` instead of running (so nothing blocks).
        Raises `NotKept` at once when no instance is open yet."""
        generation = self._pinned or self._generation
        if generation is None:
            raise NotKept
        view = copy.copy(self)
        view._pinned = generation
        view._parent = self._parent or self
        view._memory_only = True
        return view

    def copy_alias(self, table_name: str, snapshot_id: int) -> str | None:
        """The attached name of the serving copy of `table_name` at `snapshot_id`, or None
        when this instance has none (the query then reads the lake)."""
        return self._current().copies.get((table_name, snapshot_id))

    def refresh(self) -> None:
        """Open a new instance for the next queries (the set of serving copies changed). The
        old one is not closed: queries running on it finish there."""
        with self._lock:
            self._generation = None

    def reset(self) -> None:
        """Drop the instance (after a lost catalog connection); the next query reopens it."""
        if self._parent is not None:
            self._parent.reset()
            return
        with self._lock:
            generation, self._generation = self._generation, None
        if generation is not None:
            with contextlib.suppress(duckdb.Error):
                generation.con.close()

    def close(self) -> None:
        """Close the instance (an engine made for one download)."""
        self.reset()

    @contextlib.contextmanager
    def for_download(
        self, *, in_storage_order: bool, spatial: bool = True
    ) -> Iterator[QueryEngine]:
        """An engine of its own for one download (`download_engine`)."""
        runtime = self._runtime()
        if runtime is None:  # pragma: no cover - the runtime outlives its requests
            raise RuntimeError("the runtime of this query engine is gone")
        with download_engine(runtime, in_storage_order=in_storage_order, spatial=spatial) as engine:
            yield engine

    @contextlib.contextmanager
    def cursor(self, timeout_seconds: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor whose queries stop after `timeout_seconds` (default: the setting), raising
        TownhallError `query_timeout`. The limit covers everything done inside the block."""
        if self._memory_only:
            raise NotKept
        limit = self.timeout_seconds if timeout_seconds is None else timeout_seconds
        cursor = self._connection().cursor()
        fired = threading.Event()

        def stop() -> None:
            fired.set()
            cursor.interrupt()

        watch = _watchdog.watch(limit, stop)
        try:
            yield cursor
        except duckdb.InterruptException as error:
            raise TownhallError(
                TIMEOUT_STATUS,
                "query_timeout",
                f"The query ran past the {limit:g} s time limit and was stopped; "
                "add filters or aggregate to ask for less.",
            ) from error
        except duckdb.OutOfMemoryException as error:
            raise out_of_memory() from error
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
            _watchdog.cancel(watch)
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
    """The runtime's query engine (one per runtime, built on first use), with the node's
    serving copies attached."""
    from townhall.datastore.serving import serving_copies

    with _engines_lock:
        engine = _engines.get(runtime)
        if engine is None:
            engine = QueryEngine(runtime, query_memory_limit=True)
            copies = serving_copies(runtime)
            engine.use_copies(copies.available)
            engine.serving = copies
            copies.on_change(engine.refresh)
            _engines[runtime] = engine
        return engine


@contextlib.contextmanager
def download_engine(
    runtime: Runtime, *, in_storage_order: bool, spatial: bool = True
) -> Iterator[QueryEngine]:
    """A query engine of its own for one download, closed at the end (it holds no memory
    between downloads; opening it costs about 0.1-0.2 s, small beside a download), locked like
    the shared one, serving copies attached.

    Keeping insertion order with several threads makes DuckDB's CSV writer hold rows back:
    measured on 5M rows, 791 MB peak by default, 261 MB with `preserve_insertion_order=false`,
    223 MB with one thread (14.0 s against 17.2 s). `in_storage_order=True` (a whole or
    filtered table without `sort`) takes one thread: the file comes in storage order, the same
    bytes on every run, which `townhall verify` relies on to check a download. Otherwise (a
    sort, or SQL) insertion order is not kept: the query's own `ORDER BY` still holds.

    `spatial=False` (a table without geometry) does not load the spatial extension, about
    30 MB of the download's memory; a download reads each lake file once, so DuckDB's cache of
    them (`enable_external_file_cache`) is off."""
    from townhall.datastore.serving import serving_copies

    engine = (
        QueryEngine(runtime, threads=1, spatial=spatial, file_cache=False)
        if in_storage_order
        else QueryEngine(runtime, preserve_insertion_order=False, spatial=spatial, file_cache=False)
    )
    engine.serving = serving_copies(runtime)
    engine.use_copies(engine.serving.available)
    try:
        yield engine
    finally:
        engine.close()


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
