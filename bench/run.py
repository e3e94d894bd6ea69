"""`python -m bench`: generate the table, load it every way, ask it five questions over HTTP,
export it, judge issue 3's targets, print the tables and write them to docs/performance.md."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from rich.console import Console

from bench import export as export_mod
from bench import ingest as ingest_mod
from bench import queries as queries_mod
from bench import report
from bench.generate import generate_csv
from bench.servers import Server, round_trip_seconds, start_datasette, start_townhall

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROWS = 5_000_000
QUICK_ROWS = 200_000
DEFAULT_SQLITE_UTILS_ROWS = 500_000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Townhall side by side with sqlite-utils/Datasette, PostgreSQL COPY and raw "
        "DuckDB: ingest, API queries and a full CSV export, judged against issue 3's targets.",
    )
    parser.add_argument("--rows", type=int, default=None, help=f"Rows (default {DEFAULT_ROWS:,}).")
    parser.add_argument(
        "--quick", action="store_true", help=f"A quick run: {QUICK_ROWS:,} rows, 3 runs per query."
    )
    parser.add_argument(
        "--skip-peers",
        action="store_true",
        help="Townhall and raw DuckDB only: no sqlite-utils, Datasette or PostgreSQL.",
    )
    parser.add_argument(
        "--sqlite-utils-rows",
        type=int,
        default=DEFAULT_SQLITE_UTILS_ROWS,
        help="Time sqlite-utils on this many first rows and scale linearly (it takes minutes "
        f"per million rows); 0 = the whole table. Default {DEFAULT_SQLITE_UTILS_ROWS:,}.",
    )
    parser.add_argument("--runs", type=int, default=None, help="Timed runs per query (default 7).")
    parser.add_argument(
        "--budget",
        type=float,
        default=60.0,
        help="Stop repeating a query on one system once its timed runs add up to this many "
        "seconds (default 60; slow peers get fewer runs, never none).",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO / "docs" / "performance.md",
        help="Markdown file to write (default docs/performance.md).",
    )
    parser.add_argument("--no-write", action="store_true", help="Print only; write no Markdown.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the raw results here.")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="Folder for the CSV and every store (kept; a CSV of the same size is reused). "
        "Default: a temporary folder, removed at the end.",
    )
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 2, help="DuckDB threads (default: all)."
    )
    args = parser.parse_args(argv)
    if args.rows is None:
        args.rows = QUICK_ROWS if args.quick else DEFAULT_ROWS
    if args.runs is None:
        args.runs = 3 if args.quick else 7
    if args.rows < 10:
        parser.error("--rows must be at least 10")
    return args


@contextlib.contextmanager
def workdir_for(args: argparse.Namespace) -> Iterator[Path]:
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        yield args.workdir.resolve()
        return
    folder = Path(tempfile.mkdtemp(prefix="townhall-bench-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def command_line(argv: list[str] | None) -> str:
    given = sys.argv[1:] if argv is None else argv
    return " ".join(["python -m bench", *map(shlex.quote, given)])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Wide enough for the query table when the output is a file or a CI log.
    console = Console(width=None if sys.stdout.isatty() else 200)
    with workdir_for(args) as workdir:
        results = run(args, workdir, console, command_line(argv))
    report.print_tables(results, console)
    if not args.no_write:
        report.write_markdown(args.output, results)
        console.print(f"Wrote {args.output}")
    if args.json is not None:
        args.json.write_text(
            json.dumps(report.as_jsonable(results), indent=2, default=str), encoding="utf-8"
        )
    return 1 if results.problems else 0


def run(args: argparse.Namespace, workdir: Path, console: Console, command: str) -> report.Results:
    def log(message: str) -> None:
        console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}")

    rows: int = args.rows
    peers = not args.skip_peers
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = report.loadavg()
    log(f"Workdir {workdir}; load average {load_before}")

    # 1. The data.
    csv_path = workdir / f"requests-{rows}.csv"
    generated_seconds: float | None
    if csv_path.exists():
        generated_seconds = None
        log(f"Reusing {csv_path.name}")
    else:
        generated_seconds = generate_csv(csv_path, rows, threads=args.threads).seconds
        log(
            f"Generated {rows:,} rows ({csv_path.stat().st_size / 1e6:,.0f} MB) in "
            f"{generated_seconds:.1f} s"
        )

    results = report.Results(
        command=command,
        started=started,
        rows=rows,
        csv_bytes=csv_path.stat().st_size,
        generate_seconds=generated_seconds,
        machine=report.machine_info(),
        versions={},
        runs=args.runs,
    )
    postgres_version = None

    # 2. Ingest.
    duck_path = workdir / "raw.duckdb"
    log("Ingest: raw DuckDB read_csv into a table ...")
    results.ingest.append(ingest_mod.duckdb_ingest(csv_path, duck_path, rows, args.threads))
    log(f"  {results.ingest[-1].seconds:.2f} s")

    data_dir = workdir / "townhall-data"
    ingest_mod.remove(data_dir)
    log("Ingest: Townhall ingest_file into a fresh data folder ...")
    ours = ingest_mod.townhall_ingest(csv_path, data_dir, rows)
    results.ingest.insert(0, ours)
    log(f"  {ours.seconds:.2f} s")

    sqlite_path = workdir / "bench.db"
    if peers:
        log("Ingest: PostgreSQL COPY + index ...")
        pg = ingest_mod.postgres_ingest(csv_path, rows)
        postgres_version = postgres_server_version()
        results.ingest.append(pg)
        log(f"  {pg.skipped or f'{pg.seconds:.2f} s'}")

        subset_rows = rows if args.sqlite_utils_rows <= 0 else min(rows, args.sqlite_utils_rows)
        subset_csv = csv_path
        if subset_rows < rows:
            subset_csv = workdir / f"requests-{rows}-first-{subset_rows}.csv"
            if not subset_csv.exists():
                generate_csv(subset_csv, rows, limit=subset_rows, threads=args.threads)
        utils_db = sqlite_path if subset_rows == rows else workdir / "sqlite-utils-subset.db"
        log(f"Ingest: sqlite-utils insert on {subset_rows:,} rows ...")
        su = ingest_mod.sqlite_utils_ingest(subset_csv, utils_db, subset_rows, rows)
        results.ingest.append(su)
        log(f"  {su.measured_seconds:.2f} s measured, {su.seconds:.2f} s for {rows:,} rows")
        schema = ingest_mod.sqlite_schema(utils_db)
        if subset_rows < rows:
            log("SQLite copy of the whole table for Datasette (sqlite-utils' schema) ...")
            parts = ingest_mod.build_sqlite_copy(
                csv_path, schema, sqlite_path, workdir / "duckdb_extensions"
            )
            utils_db.unlink(missing_ok=True)
            results.notes.append(
                f"Datasette serves the whole table in SQLite with the schema sqlite-utils chose "
                f"(written by DuckDB's sqlite extension in {parts['load']:.1f} s, to save the "
                "extrapolated sqlite-utils minutes)."
            )
        else:
            parts = ingest_mod.build_sqlite_index(sqlite_path)
        results.notes.append(
            f"The index on category a Datasette user adds took {parts['index']:.1f} s in SQLite "
            "(not counted in the sqlite-utils ingest time)."
        )
        log(f"  index on category {parts['index']:.1f} s")
    results.ingest.sort(
        key=lambda r: ["Townhall", "sqlite-utils", "PostgreSQL", "raw DuckDB"].index(r.system)
    )

    # 3. Queries and 4. export, against real servers.
    servers: list[Server] = []
    runners: dict[str, Any] = {}
    try:
        log("Starting townhall serve ...")
        townhall = start_townhall(data_dir, ingest_mod.townhall_environment(data_dir), workdir)
        servers.append(townhall)
        datasette = None
        if peers:
            log("Starting datasette serve -i ...")
            datasette = start_datasette(sqlite_path, workdir)
            servers.append(datasette)

        copy_min_rows = serving_copy_min_rows()
        if rows < copy_min_rows:
            results.notes.append(
                f"The table is under `serving_copy_min_rows` ({copy_min_rows:,}): Townhall "
                "serves it from the lake, with no serving copy."
            )
        else:
            log("Waiting for Townhall's serving copy (built in the background on first query) ...")
            copy_seconds = wait_for_serving_copy(townhall.base_url, ingest_mod.DATASET_SLUG)
            if copy_seconds is None:
                results.notes.append(
                    "**Townhall's serving copy was not ready** within the wait: queries read "
                    "the lake."
                )
            else:
                log(f"  ready after {copy_seconds:.1f} s")
                results.notes.append(
                    "Townhall built its serving copy (a DuckDB file of the published version, "
                    f"sorted by its cluster key) in the background in {copy_seconds:.1f} s after "
                    "the server's first query; the timed queries ran after it was ready."
                )
        floors = [
            f"Townhall `/healthz` {report.fmt_seconds(round_trip_seconds(townhall, '/healthz'))}"
        ]
        floors.append(
            "Townhall dataset metadata (`/api/v1/datasets/{slug}`, SQL database only) "
            + report.fmt_seconds(
                round_trip_seconds(townhall, f"/api/v1/datasets/{ingest_mod.DATASET_SLUG}")
            )
        )
        if datasette is not None:
            floors.append(
                "Datasette `/-/versions.json` "
                + report.fmt_seconds(round_trip_seconds(datasette, "/-/versions.json"))
            )
        results.notes.append(
            "Round trip of a request that reads no table: " + "; ".join(floors) + "."
        )

        specs = queries_mod.specs(rows, ingest_mod.DATASET_SLUG)
        results.specs = specs
        runners["townhall"] = queries_mod.HttpRunner(townhall.base_url, lambda s: s.townhall)
        if datasette is not None:
            runners["datasette"] = queries_mod.HttpRunner(datasette.base_url, lambda s: s.datasette)
        runners["duckdb"] = queries_mod.DuckRunner(
            duckdb.connect(str(duck_path), read_only=True, config={"threads": args.threads}),
            ingest_mod.TABLE,
        )
        runners["lake"] = lake_runner(data_dir, ours)
        log(f"Queries: {len(specs)} x {len(runners)} systems, up to {args.runs} runs each ...")
        answered = queries_mod.run_queries(
            specs, runners, runs=args.runs, budget_seconds=args.budget, log=log
        )
        results.queries = answered.timings
        results.problems = answered.problems
        results.order_notes = answered.order_notes
        for runner in runners.values():
            runner.close()
        runners.clear()

        log("Export: Townhall download.csv ...")
        results.exports.append(export_mod.townhall_export(townhall, ingest_mod.DATASET_SLUG))
        log_export(log, results.exports[-1])
        if datasette is not None:
            log("Export: Datasette CSV (_stream=on) ...")
            results.exports.append(export_mod.datasette_export(datasette))
            log_export(log, results.exports[-1])
    finally:
        for runner in runners.values():
            with contextlib.suppress(Exception):
                runner.close()
        for server in servers:
            server.stop()
    log("Export: raw DuckDB COPY TO csv ...")
    results.exports.append(
        export_mod.duckdb_export(duck_path, workdir / "export-raw.csv", args.threads)
    )
    log(f"  {results.exports[-1].seconds:.2f} s")

    for done in results.exports:
        if done.bytes is not None and done.bytes < 0.9 * results.csv_bytes:
            results.notes.append(
                f"**{done.system}'s export is short**: {report.fmt_mb(done.bytes)} for a "
                f"{report.fmt_mb(results.csv_bytes)} source."
            )
    results.versions = report.versions(postgres_version)
    results.machine["load average (1/5/15 min) before / after"] = (
        f"{load_before} / {report.loadavg()}"
    )
    results.notes += standing_notes(rows, args)
    busiest = max(_load_numbers(load_before) + _load_numbers(report.loadavg()) or [0.0])
    cores = os.cpu_count() or 1
    if busiest > cores:
        results.notes.insert(
            0,
            f"**The machine was busy**: load average up to {busiest:.0f} on {cores} cores "
            "(other work running alongside). Absolute seconds are inflated; the systems take "
            "turns on every query, so the ratios are steadier than the seconds.",
        )
    return results


def serving_copy_min_rows() -> int:
    """Townhall's default `serving_copy_min_rows` (the bench runs the server on defaults)."""
    from townhall.config import Settings

    return int(Settings.model_fields["serving_copy_min_rows"].default)


def wait_for_serving_copy(base_url: str, slug: str, timeout: float = 900.0) -> float | None:
    """Ask for a page until the server says it read its serving copy; seconds it took, or None
    at the timeout (the first query queues the build; the lake answers meanwhile)."""
    import httpx

    started = time.monotonic()
    with httpx.Client(base_url=base_url, timeout=60.0) as client:
        while time.monotonic() - started < timeout:
            response = client.get(f"/api/v1/datasets/{slug}/rows", params={"limit": 1})
            if response.status_code == 200 and response.json().get("served_from") == "copy":
                return time.monotonic() - started
            time.sleep(1.0)
    return None


def _load_numbers(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(" / ")]
    except ValueError:
        return []


def lake_runner(data_dir: Path, ours: ingest_mod.IngestResult) -> queries_mod.DuckRunner:
    """In-process DuckDB on Townhall's lake, read-only, as the server's engine opens it."""
    from townhall.datastore.lake import Lake, table_ref

    settings = ingest_mod.townhall_settings(data_dir)
    lake = Lake(settings)
    con = lake.connect(read_only=True)
    ref = table_ref(str(ours.extra["table"]), snapshot=int(ours.extra["snapshot"]))
    return queries_mod.DuckRunner(con, ref)


def postgres_server_version() -> str | None:
    import psycopg

    try:
        with psycopg.connect(ingest_mod.PG_ADMIN_DSN, connect_timeout=3) as con:
            row = con.execute("SHOW server_version").fetchone()
            return str(row[0]).split()[0] if row else None
    except psycopg.Error:
        return None


def log_export(log: Callable[[str], None], done: export_mod.ExportResult) -> None:
    log(f"  {report.fmt_seconds(done.seconds)}, peak {report.fmt_mb(done.peak_bytes)}")


def standing_notes(rows: int, args: argparse.Namespace) -> list[str]:
    return [
        "Townhall and Datasette run as real servers (`townhall serve`, `datasette serve -i`) on "
        "loopback; times are the client's wall clock to the last byte, so they include HTTP "
        "and JSON. Raw DuckDB and the lake diagnostic run in process, without HTTP.",
        "Townhall's `/rows` answers with a `total` when filtered (for one equality on a "
        "category-like column, from the per-value counts recorded with its serving copy; "
        "else a second, counting query, exact within 0.25 s, else estimated); Datasette counts "
        "too; the raw DuckDB page query does not count.",
        f"DuckDB threads: {args.threads}; Townhall's own settings otherwise "
        f"({_default('duckdb_query_memory_limit')} memory limit for the query engine, "
        f"{_default('duckdb_memory_limit')} for ingest, serving copies and downloads, "
        f"{_default('query_timeout_seconds'):g} s query time limit).",
        "Datasette settings raised so it can answer at all: "
        + ", ".join(f"`{k}={v}`" for k, v in _datasette_settings().items())
        + "; `_nosuggest=1` on table requests (no facet suggestions).",
    ]


def _default(name: str) -> Any:
    """A Townhall setting's default (the bench runs Townhall with its defaults)."""
    from townhall.config import Settings

    return Settings.model_fields[name].default


def _datasette_settings() -> dict[str, str]:
    from bench.servers import DATASETTE_SETTINGS

    return DATASETTE_SETTINGS
