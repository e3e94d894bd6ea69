"""Serving copies: a per-node DuckDB file of each published table version, for the hot path.

Why: DuckLake stores Parquet, and on the benchmark's 5M rows DuckDB's own file answered the
API's questions 2-50x faster than the same snapshot read through DuckLake (docs/performance.md).
The lake stays the record; each node keeps a DuckDB file of the versions it serves, under
`<data_dir>/serving/`, and drops it when the version is superseded.

- `want(table)`: every query on a published version calls it. When this node has no copy yet,
  one build is queued in the background (one at a time per process) and the query reads the lake
  meanwhile; a node without a copy always answers from the lake. Tables under the
  `serving_copy_min_rows` setting are never copied (the lake is fast enough for them). Ingest
  calls it too, so the node that published builds at once.
- A build opens its own DuckDB instance on the lake, writes `<table>@<snapshot>.duckdb` under a
  temporary name with `CREATE TABLE ... AS SELECT * ... ORDER BY <cluster key>, rowid` and
  renames it into place. The cluster key (`cluster_columns`) is a low-cardinality text column
  and the first time column, so zone maps are tight on what people filter by; the lake row id
  breaks ties, so the order is a pure function of the snapshot and the key, the same on every
  node. The key is kept beside the file (`.json`) and named in cursors (query.py).
- The build also counts the rows of each value of every category-like text column (at most
  CLUSTER_MAX_DISTINCT values) into the same `.json`: a filtered page's `total` for
  `col=value` or `col__in=...` is then read from it instead of counted (query.py). A version
  never changes, so neither do its counts.
- After a build, listeners (the query engine) reopen with the new copy attached, and copies of
  older snapshots of the same table are deleted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from townhall.datastore.coltypes import is_text
from townhall.datastore.lake import quote_identifier, table_ref
from townhall.datastore.sqltext import string_literal

if TYPE_CHECKING:
    from townhall.runtime import Runtime

log = logging.getLogger(__name__)

CLUSTER_MAX_DISTINCT = 1_000
"""A text column with more distinct values than this is not a filter column (a name, an
address): clustering on it would not make zone maps tighter for the filters people use."""
TIME_TYPES = ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "DATE")
_FILE = re.compile(r"^(?P<table>[A-Za-z0-9_]+)@(?P<snapshot>\d+)\.duckdb$")


ROW_GROUP_ROWS = 122_880
"""DuckDB's row group: the unit its zone maps (min/max per column) let a scan skip."""
ROW_GROUPS_PER_BUCKET = 4
_BUCKET = re.compile(r"^(?P<column>.+)//(?P<seconds>[1-9][0-9]{0,11})$")


def cluster_columns(
    con: duckdb.DuckDBPyConnection, ref: str, columns: list[dict[str, Any]]
) -> list[str]:
    """The copy's sort key, as a list of key items (`key_sql` reads them).

    With a time column: first its time bucket (`col//seconds`: about four row groups of rows
    per bucket), so a time-range filter skips every row group outside the range; then, within
    each bucket, the text column with the most distinct values up to CLUSTER_MAX_DISTINCT (the
    most selective category-like column), so a filter on it skips most row groups of each
    bucket; then the time column itself. Sorting by the category alone was measured to leave
    every row group spanning the whole time range (a row group straddles two categories), so
    a year filter skipped nothing. Any part may be missing; an empty list keeps the lake's row
    order.
    """
    texts = [c["name"] for c in columns if is_text(str(c.get("db_type") or ""))]
    times = [c["name"] for c in columns if str(c.get("db_type") or "").upper() in TIME_TYPES]
    parts = ["count(*)"]
    parts += [f"approx_count_distinct({quote_identifier(name)})" for name in texts]
    if times:
        column = quote_identifier(times[0])
        parts += [f"min(epoch({column}))", f"max(epoch({column}))"]
    row = con.execute(f"SELECT {', '.join(parts)} FROM {ref}").fetchone() or ()
    rows = int(row[0] or 0)
    chosen: list[str] = []
    if times and row[-2] is not None and row[-1] is not None:
        buckets = rows // (ROW_GROUP_ROWS * ROW_GROUPS_PER_BUCKET)
        span = float(row[-1]) - float(row[-2])
        if buckets >= 2 and span > 0:
            chosen.append(f"{times[0]}//{max(1, int(span / buckets))}")
    candidates = [
        (int(count), name)
        for name, count in zip(texts, row[1 : 1 + len(texts)], strict=True)
        if count is not None and 2 <= int(count) <= CLUSTER_MAX_DISTINCT
    ]
    if candidates:
        # Most distinct values first; the earlier column wins a tie.
        best = max(candidates, key=lambda item: (item[0], -texts.index(item[1])))
        chosen.append(best[1])
    if times:
        chosen.append(times[0])
    return chosen


def value_counts(
    con: duckdb.DuckDBPyConnection, ref: str, columns: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Rows per value of each text column with 1 to CLUSTER_MAX_DISTINCT distinct values:
    `{column: {"values": {value: rows}, "nulls": rows}}`. A column with more values is left
    out (its GROUP BY would be as big as the table, and nobody filters a name by equality to
    count it). Read from the copy just written: a native scan, cheaper than the lake's."""
    texts = [c["name"] for c in columns if is_text(str(c.get("db_type") or ""))]
    if not texts:
        return {}
    approx = (
        con.execute(
            "SELECT "
            + ", ".join(f"approx_count_distinct({quote_identifier(name)})" for name in texts)
            + f" FROM {ref}"
        ).fetchone()
        or ()
    )
    counted: dict[str, dict[str, Any]] = {}
    for name, estimate in zip(texts, approx, strict=True):
        # The estimate may be a little off: the LIMIT below is the exact check.
        if estimate is None or int(estimate) > CLUSTER_MAX_DISTINCT * 2:
            continue
        column = quote_identifier(name)
        rows = con.execute(
            f"SELECT {column}, count(*) FROM {ref} GROUP BY {column} "
            f"LIMIT {CLUSTER_MAX_DISTINCT + 2}"
        ).fetchall()
        values = {str(value): int(n) for value, n in rows if value is not None}
        if len(values) > CLUSTER_MAX_DISTINCT:
            continue
        nulls = sum(int(n) for value, n in rows if value is None)
        counted[name] = {"values": values, "nulls": nulls}
    return counted


def key_sql(item: str, columns: set[str]) -> str:
    """The SQL of one cluster key item: a column, or `col//seconds` for the column's time
    bucket. Raises ValueError on an item naming no column of `columns` (a forged cursor)."""
    if item in columns:
        return quote_identifier(item)
    match = _BUCKET.match(item)
    if match and match["column"] in columns:
        return f"floor(epoch({quote_identifier(match['column'])}) / {int(match['seconds'])})"
    raise ValueError(f"not a cluster key: {item!r}")


def order_by(cluster: list[str], columns: set[str], rowid: str = "rowid") -> str:
    """`ORDER BY` text of a copy: the cluster key, NULLS LAST, then the lake row id."""
    keys = [f"{key_sql(item, columns)} ASC NULLS LAST" for item in cluster]
    return ", ".join([*keys, f"{rowid} ASC"])


class ServingCopies:
    """The serving copies of one node (one runtime); thread-safe."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._settings = runtime.settings
        self.directory = runtime.settings.data_dir.resolve() / "serving"
        self._lock = threading.Lock()
        self._pending: set[tuple[str, int]] = set()
        self._listeners: list[Callable[[], None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._meta: dict[tuple[str, int], dict[str, Any]] = {}

    @property
    def enabled(self) -> bool:
        return bool(self._settings.serving_copies)

    def path(self, table_name: str, snapshot_id: int) -> Path:
        return self.directory / f"{table_name}@{snapshot_id}.duckdb"

    def available(self) -> dict[tuple[str, int], Path]:
        """Every complete copy on this node: `(table, snapshot)` -> file."""
        if not self.enabled or not self.directory.is_dir():
            return {}
        found: dict[tuple[str, int], Path] = {}
        for entry in self.directory.iterdir():
            match = _FILE.match(entry.name)
            if match:
                found[(match["table"], int(match["snapshot"]))] = entry
        return found

    def meta(self, table_name: str, snapshot_id: int) -> dict[str, Any] | None:
        """What the build recorded beside the copy (`cluster`, `counts`); None without a copy.

        Kept in memory once read: it is asked on every query, and a copy of one snapshot never
        changes (a dropped copy's entry goes with it)."""
        key = (table_name, snapshot_id)
        with self._lock:
            known = self._meta.get(key)
        if known is not None:
            return known
        path = self.path(table_name, snapshot_id).with_suffix(".json")
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            list(loaded["cluster"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not isinstance(loaded, dict):
            return None
        with self._lock:
            self._meta[key] = loaded
        return loaded  # type: ignore[no-any-return]

    def cluster(self, table_name: str, snapshot_id: int) -> list[str] | None:
        """The sort key the copy was written with; None when there is no copy."""
        meta = self.meta(table_name, snapshot_id)
        return None if meta is None else [str(item) for item in meta["cluster"]]

    def value_count(
        self, table_name: str, snapshot_id: int, column: str, values: list[str]
    ) -> int | None:
        """Rows of the version whose `column` equals one of `values`, from the counts recorded
        when the copy was built; None when this node has no counts for that column."""
        meta = self.meta(table_name, snapshot_id)
        counts = (meta or {}).get("counts")
        if not isinstance(counts, dict) or not isinstance(counts.get(column), dict):
            return None
        per_value = counts[column].get("values")
        if not isinstance(per_value, dict):
            return None
        return sum(int(per_value.get(value, 0)) for value in set(values))

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener()` after a copy appears or goes (the query engine reopens)."""
        with self._lock:
            self._listeners.append(listener)

    def want(
        self, table_name: str, snapshot_id: int, row_count: int, columns: list[dict[str, Any]]
    ) -> bool:
        """Queue a build of the copy of `table_name` at `snapshot_id` unless it exists, is
        queued, or the table is too small. Returns whether a build was queued. Never raises."""
        if not self.enabled or row_count < self._settings.serving_copy_min_rows:
            return False
        key = (table_name, snapshot_id)
        with self._lock:
            if key in self._pending or self.path(*key).exists():
                return False
            self._pending.add(key)
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="serving-copy")
            executor = self._executor
        executor.submit(self._build_logged, table_name, snapshot_id, list(columns))
        return True

    def _build_logged(
        self, table_name: str, snapshot_id: int, columns: list[dict[str, Any]]
    ) -> None:
        try:
            self.build(table_name, snapshot_id, columns)
        except Exception:
            # The lake keeps serving; the next query on the version queues the build again.
            log.exception("serving copy of %s@%s failed", table_name, snapshot_id)
        finally:
            with self._lock:
                self._pending.discard((table_name, snapshot_id))

    def build(self, table_name: str, snapshot_id: int, columns: list[dict[str, Any]]) -> Path:
        """Write the copy of `table_name` at `snapshot_id` (idempotent: an existing copy is
        kept), tell the listeners, then delete copies of older snapshots of the table."""
        target = self.path(table_name, snapshot_id)
        if not target.exists():
            started = time.monotonic()
            self.directory.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}")
            try:
                spatial = any(c.get("type") == "geometry" and not c.get("format") for c in columns)
                extensions = ("spatial",) if spatial else ()
                with contextlib.closing(
                    self._runtime.lake.connect(read_only=True, extensions=extensions)
                ) as con:
                    ref = table_ref(table_name, snapshot=snapshot_id)
                    cluster = cluster_columns(con, ref, columns)
                    con.execute(f"ATTACH {string_literal(str(partial))} AS serving_copy")
                    written = f"serving_copy.main.{quote_identifier(table_name)}"
                    con.execute(
                        f"CREATE TABLE {written} AS SELECT * FROM {ref} "
                        f"ORDER BY {order_by(cluster, {c['name'] for c in columns})}"
                    )
                    counts = value_counts(con, written, columns)
                    con.execute("DETACH serving_copy")
                meta = target.with_suffix(".json")
                recorded = {"cluster": cluster, "counts": counts}
                meta.write_text(json.dumps(recorded), encoding="utf-8")
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
                partial.with_name(partial.name + ".wal").unlink(missing_ok=True)
            log.info(
                "serving copy of %s@%s built in %.1f s, ordered by %s",
                table_name,
                snapshot_id,
                time.monotonic() - started,
                cluster or "lake row id",
            )
        self._changed()
        self.drop_superseded(table_name, snapshot_id)
        return target

    def drop_superseded(self, table_name: str, snapshot_id: int) -> None:
        """Delete this node's copies of `table_name` older than `snapshot_id`. Engines that
        still have one attached keep reading it until they close (the file stays open)."""
        dropped = False
        for (name, snapshot), path in self.available().items():
            if name == table_name and snapshot < snapshot_id:
                path.unlink(missing_ok=True)
                path.with_suffix(".json").unlink(missing_ok=True)
                with self._lock:
                    self._meta.pop((name, snapshot), None)
                dropped = True
        if dropped:
            self._changed()

    def _changed(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def wait(self, timeout: float = 60.0) -> bool:
        """Wait until no build is queued or running (tests, the bench); whether it finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending:
                    return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


_copies: weakref.WeakKeyDictionary[Any, ServingCopies] = weakref.WeakKeyDictionary()
_copies_lock = threading.Lock()


def serving_copies(runtime: Runtime) -> ServingCopies:
    """The runtime's serving copies (one per runtime, made on first use)."""
    with _copies_lock:
        copies = _copies.get(runtime)
        if copies is None:
            copies = ServingCopies(runtime)
            _copies[runtime] = copies
        return copies
