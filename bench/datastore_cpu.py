"""`python -m bench.datastore_cpu`: CPU and wall time per datastore read, in process, no client.

Over HTTP a datastore GET of a few milliseconds is mostly fixed cost (middleware, routing,
dependencies, thread hops, JSON), and the shared machine makes client-side timings noisy. This
generates the bench's 311-style table (`bench/generate.py`, 1M rows by default), ingests it
with `ingest_file` into a data folder kept between runs (`--workdir`), builds its serving copy,
then drives raw ASGI calls through the app with its lifespan on one uvloop loop (as
`townhall serve` runs, and as `bench/status_cpu.py` does), one request in flight, for:

- `first_page`: `/rows?category=Pothole&limit=100`;
- `deep_page`: `/rows?limit=100&offset=N` (N as the bench: 1,000,000 or half the table);
- `year_count`: `/aggregate?group_by=category&metric=count&created_at__gte=...`;
- `healthz`: a request that reads nothing.

For each it prints the process's CPU time (every thread's) and the wall time per request, for
every round and their median, and the same query's SQL run by raw DuckDB in process on the
serving copy (no HTTP, no Python JSON) for scale. `--cold` empties the engine's kept answers
before every request (what a first ask costs); `--profile` prints a cProfile of one round of
each path: the event loop thread, then what the worker threads ran (and how many thread
hops a request took).

    .venv/bin/python -m bench.datastore_cpu --rounds 5
    .venv/bin/python -m bench.datastore_cpu --cold --profile --only first_page
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.generate import FILTER_CATEGORY, YEAR, generate_csv
from bench.ingest import DATASET_SLUG, townhall_ingest, townhall_settings
from bench.queries import PAGE_SIZE, deep_offset
from bench.status_cpu import asgi_get


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.datastore_cpu", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="Table rows (1,000,000).")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="Folder for the CSV and data folder, reused when present "
        "(default /tmp/townhall-datastore-cpu-<rows>).",
    )
    parser.add_argument("--requests", type=int, default=200, help="Requests per round (200).")
    parser.add_argument("--rounds", type=int, default=5, help="Measured rounds per path (5).")
    parser.add_argument("--cold", action="store_true", help="Empty the kept answers each time.")
    parser.add_argument("--only", action="append", default=None, help="Paths to run (repeat).")
    parser.add_argument("--profile", action="store_true", help="Print a cProfile of one round.")
    parser.add_argument("--sort", default="tottime", help="cProfile order (tottime).")
    return parser.parse_args(argv)


def requests_of(rows: int) -> dict[str, tuple[str, dict[str, Any], str | None]]:
    """Path, query and the raw DuckDB SQL (`{table}` for the copy's table) of each request."""
    base = f"/api/v1/datasets/{DATASET_SLUG}"
    offset = deep_offset(rows)
    year_from, year_to = f"{YEAR}-01-01", f"{YEAR + 1}-01-01"
    return {
        "first_page": (
            f"{base}/rows",
            {"category": FILTER_CATEGORY, "limit": PAGE_SIZE},
            f"SELECT * FROM {{table}} WHERE category = '{FILTER_CATEGORY}' LIMIT {PAGE_SIZE}",
        ),
        "deep_page": (
            f"{base}/rows",
            {"limit": PAGE_SIZE, "offset": offset},
            f"SELECT * FROM {{table}} LIMIT {PAGE_SIZE} OFFSET {offset}",
        ),
        "year_count": (
            f"{base}/aggregate",
            {
                "group_by": "category",
                "metric": "count",
                "created_at__gte": year_from,
                "created_at__lt": year_to,
            },
            "SELECT category, count(*) AS count FROM {table} "
            f"WHERE created_at >= TIMESTAMP '{year_from}' AND created_at < TIMESTAMP '{year_to}' "
            "GROUP BY category ORDER BY category",
        ),
        "healthz": ("/healthz", {}, None),
    }


def prepare(args: argparse.Namespace) -> Path:
    """The data folder with the table ingested and its serving copy built (reused)."""
    workdir = args.workdir or Path(f"/tmp/townhall-datastore-cpu-{args.rows}")
    data_dir = workdir / "townhall-data"
    ready = workdir / "ready"
    if ready.exists():
        return data_dir
    csv_path = workdir / f"requests-{args.rows}.csv"
    if not csv_path.exists():
        print(f"generating {args.rows:,} rows ...", flush=True)
        generate_csv(csv_path, args.rows)
    print("ingesting ...", flush=True)
    ingested = townhall_ingest(csv_path, data_dir, args.rows)
    print("building the serving copy ...", flush=True)
    from townhall.datastore.serving import serving_copies
    from townhall.runtime import Runtime

    runtime = Runtime(townhall_settings(data_dir))
    try:
        columns = [
            {"name": name, "db_type": kind} for name, kind in ingested.extra["columns"].items()
        ]
        serving_copies(runtime).build(
            ingested.extra["table"], int(ingested.extra["snapshot"]), columns
        )
    finally:
        runtime.close()
    ready.write_text("ok\n")
    return data_dir


def raw_duckdb_ms(data_dir: Path, sql: str, runs: int = 21) -> float:
    """Median wall ms of `sql` on the serving copy, run by DuckDB in this process."""
    import duckdb

    copy = next((data_dir / "serving").glob("*.duckdb"))
    table = copy.name.split("@")[0]
    with duckdb.connect(str(copy), read_only=True) as con:
        text = sql.format(table=f'"{table}"')
        con.execute(text).fetchall()
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            con.execute(text).fetchall()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


class GcTimer:
    """Time spent in Python's cyclic garbage collector, per generation (`gc.callbacks`)."""

    def __init__(self) -> None:
        import gc

        self.seconds = [0.0, 0.0, 0.0]
        self.counts = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._started
            self.counts[info["generation"]] += 1

    def reset(self) -> None:
        self.seconds, self.counts = [0.0, 0.0, 0.0], [0, 0, 0]


class ThreadProfile:
    """A cProfile of what worker threads run (one request in flight: one thread at a time),
    by wrapping `anyio.to_thread.run_sync`, which Starlette and FastAPI call for every sync
    dependency and endpoint; `hops` counts the calls."""

    def __init__(self) -> None:
        import anyio.to_thread

        self.profiler = cProfile.Profile(time.thread_time)
        self.hops = 0
        self.active = False
        self._module = anyio.to_thread
        self._original = anyio.to_thread.run_sync
        profile = self

        async def run_sync(func: Any, *args: Any, **kwargs: Any) -> Any:
            if not profile.active:
                return await profile._original(func, *args, **kwargs)
            profile.hops += 1

            def profiled(*inner: Any) -> Any:
                profile.profiler.enable()
                try:
                    return func(*inner)
                finally:
                    profile.profiler.disable()

            return await profile._original(profiled, *args, **kwargs)

        self._module.run_sync = run_sync  # type: ignore[assignment]


async def measure(app: Any, data_dir: Path, args: argparse.Namespace) -> None:
    from townhall.datastore.engine import query_engine

    engine = query_engine(app.state.runtime)
    threads = ThreadProfile() if args.profile else None
    collector = GcTimer()
    chosen = requests_of(args.rows)
    names = args.only or list(chosen)
    async with app.router.lifespan_context(app):
        for name in names:
            path, params, sql = chosen[name]
            query = urlencode(params).encode()
            for _ in range(20):  # warm: the copy attached, compiled SQL, kept answers
                status, body = await asgi_get(app, path, query)
                if status != 200:
                    raise SystemExit(f"{name}: {status} {body[:300]!r}")
            if name != "healthz" and b'"served_from":"copy"' not in body:
                raise SystemExit(f"{name}: not served from the serving copy: {body[-300:]!r}")
            cpus: list[float] = []
            walls: list[float] = []
            for number in range(args.rounds):
                profiler = (
                    cProfile.Profile(time.thread_time) if args.profile and number == 0 else None
                )
                spent_cpu = spent_wall = 0.0
                collector.reset()
                if profiler and threads:
                    threads.profiler = cProfile.Profile(time.thread_time)
                    threads.hops, threads.active = 0, True
                    profiler.enable()
                for _ in range(args.requests):
                    if args.cold:
                        engine.answers.clear()
                    cpu, wall = time.process_time(), time.perf_counter()
                    status, _ = await asgi_get(app, path, query)
                    spent_cpu += time.process_time() - cpu
                    spent_wall += time.perf_counter() - wall
                    if status != 200:
                        raise SystemExit(f"{name}: {status}")
                if profiler and threads:
                    profiler.disable()
                    threads.active = False
                cpus.append(spent_cpu / args.requests * 1000)
                walls.append(spent_wall / args.requests * 1000)
                print(
                    f"{name:10} round {number + 1}: {cpus[-1]:.3f} ms CPU, {walls[-1]:.3f} ms "
                    f"wall per request{' (profiled)' if profiler else ''}; garbage collector "
                    f"{sum(collector.seconds) / args.requests * 1000:.3f} ms per request "
                    f"(collections by generation {collector.counts})",
                    flush=True,
                )
                if profiler and threads:
                    out = io.StringIO()
                    print(f"--- event loop thread ({name})")
                    pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(40)
                    print(out.getvalue())
                    print(f"--- worker threads: {threads.hops / args.requests:g} hops a request")
                    if threads.hops:
                        out = io.StringIO()
                        stats = pstats.Stats(threads.profiler, stream=out)
                        stats.sort_stats(args.sort).print_stats(40)
                        print(out.getvalue())
            measured_cpu = cpus[1:] if args.profile and len(cpus) > 1 else cpus
            measured_wall = walls[1:] if args.profile and len(walls) > 1 else walls
            raw = f", raw DuckDB {raw_duckdb_ms(data_dir, sql):.3f} ms" if sql else ""
            print(
                f"{name:10} MEDIAN: {statistics.median(measured_cpu):.3f} ms CPU, "
                f"{statistics.median(measured_wall):.3f} ms wall{raw}"
                f"{' (cold)' if args.cold else ''}",
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import uvloop

    from townhall.app import create_app

    data_dir = prepare(args)
    print(f"load average: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    # The rate limiter stays in the path (its cost is part of a request) but never refuses.
    unlimited = "100000000/second"
    settings = townhall_settings(data_dir).model_copy(
        update={"rate_limit_reads": unlimited, "rate_limit_sql": unlimited}
    )
    app = create_app(settings)
    try:
        uvloop.run(measure(app, data_dir, args))
    finally:
        app.state.runtime.close()
    print(f"load average: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
