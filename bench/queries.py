"""The five API questions, asked of every system in turn, and the answers checked to agree.

Systems:
- `townhall`: the native HTTP API of a real `townhall serve` (`/rows`, `/aggregate`, `/sql`);
- `datasette`: Datasette's JSON API over the same rows in SQLite (table API with the category
  index, or its SQL API where the table API cannot say it);
- `duckdb`: raw DuckDB, in process, on a DuckDB file of the same CSV (no HTTP, no Parquet);
- `lake`: diagnostic, DuckDB in process on Townhall's own lake (the published DuckLake snapshot,
  Parquet), with the raw SQL: the gap between `townhall` and `lake` is HTTP and the app, the gap
  between `lake` and `duckdb` is the storage format.

Each (query, system) is run once to warm up, then the systems take turns, so a busy machine
slows all of them alike; each keeps going for `runs` timed runs or until its time budget is
spent (at least one timed run).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import httpx

from bench.generate import FILTER_CATEGORY, KEYWORD, TABLE, YEAR

PAGE_SIZE = 100
DEEP_OFFSET = 1_000_000


def deep_offset(rows: int) -> int:
    """1,000,000, or half the table when it is smaller (quick runs)."""
    return DEEP_OFFSET if rows > DEEP_OFFSET + PAGE_SIZE else rows // 2


@dataclass
class QuerySpec:
    key: str
    title: str
    aggregate: bool
    townhall: tuple[str, dict[str, Any]]
    datasette: tuple[str, dict[str, Any]]
    datasette_how: str
    sql: str
    """DuckDB SQL; `{table}` is replaced by the table reference."""
    normalize: Callable[[list[dict[str, Any]]], Any]
    page: bool = False
    """A page of an unsorted table: which rows come first depends on the stored row order."""


def _ids(rows: list[dict[str, Any]]) -> Any:
    return [int(r["request_id"]) for r in rows]


def _counts(rows: list[dict[str, Any]]) -> Any:
    return {str(r["category"]): int(r["count"]) for r in rows}


def _medians(rows: list[dict[str, Any]]) -> Any:
    return {str(r["category"]): round(float(r["median_hours"]), 3) for r in rows}


def _one_count(rows: list[dict[str, Any]]) -> Any:
    return int(rows[0]["count"])


def _sql_params(sql: str) -> dict[str, Any]:
    return {"sql": " ".join(sql.split()), "_shape": "objects"}


def specs(rows: int, slug: str) -> list[QuerySpec]:
    offset = deep_offset(rows)
    year_from, year_to = f"{YEAR}-01-01", f"{YEAR + 1}-01-01"
    datasette_median = f"""
        WITH r AS (
          SELECT category,
                 (strftime('%s', closed_at) - strftime('%s', created_at)) / 3600.0 AS hours
          FROM {TABLE} WHERE closed_at IS NOT NULL AND closed_at != ''
        ), o AS (
          SELECT category, hours,
                 row_number() OVER (PARTITION BY category ORDER BY hours) AS n,
                 count(*) OVER (PARTITION BY category) AS total
          FROM r
        )
        SELECT category, avg(hours) AS median_hours FROM o
        WHERE n IN ((total + 1) / 2, (total + 2) / 2)
        GROUP BY category ORDER BY category"""
    median_sql = (
        "SELECT category, median(date_diff('second', created_at, closed_at)) / 3600.0 "
        "AS median_hours FROM {table} WHERE closed_at IS NOT NULL "
        "GROUP BY category ORDER BY category"
    )
    return [
        QuerySpec(
            "first_page",
            f"First page filtered by category ({PAGE_SIZE} rows, category = {FILTER_CATEGORY})",
            False,
            (f"/api/v1/datasets/{slug}/rows", {"category": FILTER_CATEGORY, "limit": PAGE_SIZE}),
            (
                f"/bench/{TABLE}.json",
                {
                    "category": FILTER_CATEGORY,
                    "_size": PAGE_SIZE,
                    "_shape": "objects",
                    "_nosuggest": 1,
                },
            ),
            "table API, index on category",
            f"SELECT * FROM {{table}} WHERE category = '{FILTER_CATEGORY}' LIMIT {PAGE_SIZE}",
            _ids,
            page=True,
        ),
        QuerySpec(
            "year_count",
            f"Group-by count over a year (requests per category created in {YEAR})",
            True,
            (
                f"/api/v1/datasets/{slug}/aggregate",
                {
                    "group_by": "category",
                    "metric": "count",
                    "created_at__gte": year_from,
                    "created_at__lt": year_to,
                },
            ),
            (
                "/bench.json",
                _sql_params(
                    f"SELECT category, count(*) AS count FROM {TABLE} "
                    f"WHERE created_at >= '{year_from}' AND created_at < '{year_to}' "
                    "GROUP BY category ORDER BY category"
                ),
            ),
            "SQL API",
            "SELECT category, count(*) AS count FROM {table} "
            f"WHERE created_at >= TIMESTAMP '{year_from}' AND created_at < TIMESTAMP '{year_to}' "
            "GROUP BY category ORDER BY category",
            _counts,
        ),
        QuerySpec(
            "median",
            "Median resolution time by category (hours, closed requests)",
            True,
            (
                "/api/v1/sql",
                {"sql": median_sql.format(table=f'"{slug}"')},
            ),
            ("/bench.json", _sql_params(datasette_median)),
            "SQL API (window functions: SQLite has no median)",
            median_sql,
            _medians,
        ),
        QuerySpec(
            "keyword",
            f"Keyword count (description contains '{KEYWORD}')",
            True,
            (
                f"/api/v1/datasets/{slug}/aggregate",
                {"metric": "count", "description__like": f"%{KEYWORD}%"},
            ),
            (
                "/bench.json",
                _sql_params(
                    f"SELECT count(*) AS count FROM {TABLE} WHERE description LIKE '%{KEYWORD}%'"
                ),
            ),
            "SQL API",
            f"SELECT count(*) AS count FROM {{table}} WHERE description LIKE '%{KEYWORD}%'",
            _one_count,
        ),
        QuerySpec(
            "deep_page",
            f"Deep page ({PAGE_SIZE} rows at offset {offset:,})",
            False,
            (f"/api/v1/datasets/{slug}/rows", {"limit": PAGE_SIZE, "offset": offset}),
            (
                f"/bench/{TABLE}.json",
                {"_size": PAGE_SIZE, "_next": offset, "_shape": "objects", "_nosuggest": 1},
            ),
            f"table API, `_next={offset}` (its keyset paging: it has no offset)",
            f"SELECT * FROM {{table}} LIMIT {PAGE_SIZE} OFFSET {offset}",
            _ids,
            page=True,
        ),
    ]


# Runners ---------------------------------------------------------------------------------------


class HttpRunner:
    def __init__(self, base_url: str, pick: Callable[[QuerySpec], tuple[str, dict[str, Any]]]):
        self.client = httpx.Client(base_url=base_url, timeout=900.0)
        self.pick = pick

    def __call__(self, spec: QuerySpec) -> tuple[float, Any, float | None]:
        path, params = self.pick(spec)
        started = time.perf_counter()
        response = self.client.get(path, params=params)
        seconds = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:500]}")
        body = response.json()
        rows = body["rows"] if isinstance(body, dict) else body
        # Townhall reports the time its query took inside the server (`elapsed_ms`).
        inside = body.get("elapsed_ms") if isinstance(body, dict) else None
        return seconds, spec.normalize(rows), None if inside is None else float(inside) / 1000

    def close(self) -> None:
        self.client.close()


class DuckRunner:
    def __init__(self, con: duckdb.DuckDBPyConnection, table: str) -> None:
        self.con = con
        self.table = table

    def __call__(self, spec: QuerySpec) -> tuple[float, Any, float | None]:
        sql = spec.sql.format(table=self.table)
        started = time.perf_counter()
        cursor = self.con.execute(sql)
        fetched = cursor.fetchall()
        seconds = time.perf_counter() - started
        names = [d[0] for d in cursor.description or ()]
        return (
            seconds,
            spec.normalize([dict(zip(names, row, strict=True)) for row in fetched]),
            None,
        )

    def close(self) -> None:
        self.con.close()


@dataclass
class Timing:
    samples: list[float] = field(default_factory=list)
    first: float | None = None
    """The warm-up: the first time this system was asked (Townhall keeps counts and aggregates of
    a version once computed, so its timed runs of those are answered from memory)."""
    inside: list[float] = field(default_factory=list)
    """Server-reported query times, where the server reports them (Townhall's `elapsed_ms`)."""
    answer: Any = None
    error: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def inside_median(self) -> float | None:
        return statistics.median(self.inside) if self.inside else None


def agree(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(agree(a[k], b[k]) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-3)
    return a == b


@dataclass
class QueryRun:
    timings: dict[str, dict[str, Timing]]
    problems: list[str]
    """Different answers to a question with one right answer (counts, medians)."""
    order_notes: list[str]
    """Pages of an unsorted table holding other rows than the source file's order gives."""


def run_queries(
    query_specs: list[QuerySpec],
    runners: dict[str, Callable[[QuerySpec], tuple[float, Any, float | None]]],
    *,
    runs: int,
    budget_seconds: float,
    log: Callable[[str], None],
) -> QueryRun:
    """Timings per query key and system, and the disagreements found."""
    results: dict[str, dict[str, Timing]] = {}
    problems: list[str] = []
    order_notes: list[str] = []
    for spec in query_specs:
        timings = {name: Timing() for name in runners}
        results[spec.key] = timings
        for name, runner in runners.items():
            try:
                warm, timings[name].answer, _ = runner(spec)
                timings[name].first = warm
                log(f"  {spec.key:<11} {name:<10} warm-up {warm:8.3f} s")
            except Exception as error:
                timings[name].error = str(error)[:300]
                log(f"  {spec.key:<11} {name:<10} FAILED: {timings[name].error}")
        turns = list(runners.items())
        for run in range(runs):
            # The order rotates each run: DuckDB in this process keeps its threads busy for a
            # moment after a query, which slowed whichever server was asked next by about a
            # millisecond (measured); rotating spreads that over every system.
            start = run % len(turns)
            for name, runner in turns[start:] + turns[:start]:
                timing = timings[name]
                if timing.error is not None:
                    continue
                if timing.samples and sum(timing.samples) > budget_seconds:
                    continue
                seconds, _, inside = runner(spec)
                timing.samples.append(seconds)
                if inside is not None:
                    timing.inside.append(inside)
        answered = {n: t.answer for n, t in timings.items() if t.error is None}
        reference_name = "duckdb" if "duckdb" in answered else next(iter(answered), None)
        if reference_name is not None:
            reference = answered[reference_name]
            for name, answer in answered.items():
                if agree(answer, reference):
                    continue
                if spec.page:
                    order_notes.append(
                        f"`{spec.key}`: {name} returned other rows than {reference_name} "
                        f"(request ids {_span(answer)} vs {_span(reference)}): its stored row "
                        "order is not the CSV's"
                    )
                else:
                    problems.append(
                        f"{spec.key}: {name} disagrees with {reference_name} "
                        f"({str(answer)[:120]} vs {str(reference)[:120]})"
                    )
        medians = ", ".join(
            f"{n} {t.median:.4f} s (n={len(t.samples)})"
            for n, t in timings.items()
            if t.median is not None
        )
        log(f"  {spec.key:<11} medians: {medians}")
    return QueryRun(results, problems, order_notes)


def _span(ids: Any) -> str:
    if not isinstance(ids, list) or not ids:
        return str(ids)[:40]
    return f"{ids[0]}, {ids[1]}, ... {ids[-1]}" if len(ids) > 2 else ", ".join(map(str, ids))
