"""`python -m bench.status_cpu`: CPU time per status lookup, in process, no network client.

A load generator on the same two cores takes its share of the CPU it measures, and the
machine is shared; the CPU a lookup costs the server process is steadier. This seeds a fresh
instance (as `python -m bench load` does), builds the app with its lifespan, and drives raw
ASGI calls through it on one event loop (uvloop, as `townhall serve` runs), `--concurrency` at
a time, after the same calls to `bench/bare_app.py` (the ceiling of `python -m bench load`);
it reports the process's CPU time (every thread's) per lookup and the wall time,
and with `--profile` the top of a cProfile of the measured loop.

    .venv/bin/python -m bench.status_cpu --backend postgresql --redis-url redis://127.0.0.1:6379/11
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.load import (
    DEFAULT_PG_ADMIN,
    DEFAULT_REDIS,
    postgres_database,
    seed_instance,
    settings_from_env,
    townhall_env,
)

PATHS = {
    "native": "/api/v1/requests/{code}",
    "open311": "/open311/v2/requests/{code}.json",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.status_cpu", description=__doc__)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS, help="'' for none.")
    parser.add_argument("--pg-admin-url", default=DEFAULT_PG_ADMIN)
    parser.add_argument("--requests", type=int, default=2000, help="Requests seeded (2,000).")
    parser.add_argument("--lookups", type=int, default=3000, help="Lookups per path (3,000).")
    parser.add_argument("--concurrency", type=int, default=1, help="Lookups in flight (1).")
    parser.add_argument("--rounds", type=int, default=3, help="Measured rounds per path (3).")
    parser.add_argument("--profile", action="store_true", help="Print a cProfile of one round.")
    parser.add_argument("--sort", default="tottime", help="cProfile order (tottime).")
    return parser.parse_args(argv)


async def asgi_get(app: Any, path: str, query: bytes = b"") -> tuple[int, bytes]:
    """One `GET path?query` through `app` as a server would call it: status and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    status = 0
    body: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(body)


async def _round(app: Any, paths: list[str], concurrency: int) -> list[int]:
    queue = iter(paths)
    statuses: list[int] = []

    async def worker() -> None:
        for path in queue:
            statuses.append((await asgi_get(app, path))[0])

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


async def measure(app: Any, codes: list[str], args: argparse.Namespace) -> None:
    from bench.bare_app import app as bare

    rng = random.Random(5)
    async with app.router.lifespan_context(app):
        for name, template in {"bare": "/", **PATHS}.items():
            target = bare if name == "bare" else app
            paths = [template.format(code=rng.choice(codes)) for _ in range(args.lookups)]
            await _round(target, paths[:200], args.concurrency)  # warm: pools, compiled SQL
            for number in range(args.rounds):
                profiler = (
                    cProfile.Profile(time.thread_time) if args.profile and number == 0 else None
                )
                cpu, wall = time.process_time(), time.perf_counter()
                if profiler:
                    profiler.enable()
                statuses = await _round(target, paths, args.concurrency)
                if profiler:
                    profiler.disable()
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                bad = len([s for s in statuses if s != 200])
                print(
                    f"{name:8} round {number + 1}: {cpu / len(paths) * 1000:.3f} ms CPU and "
                    f"{wall / len(paths) * 1000:.3f} ms wall per lookup"
                    f"{' (profiled)' if profiler else ''}"
                    f" over {len(paths)}, {args.concurrency} in flight; non-200: {bad}"
                )
                if profiler:
                    out = io.StringIO()
                    pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(45)
                    print(out.getvalue())


@contextmanager
def _database(args: argparse.Namespace) -> Iterator[str | None]:
    if args.backend == "sqlite":
        yield None
        return
    with postgres_database(args.pg_admin_url, f"townhall_cpu_{uuid.uuid4().hex[:8]}") as url:
        yield url


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import uvloop

    from townhall.app import create_app

    print(f"load average: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as folder, _database(args) as database_url:
        env = townhall_env(Path(folder) / "data", database_url, args.redis_url or None)
        seeded = seed_instance(env, args.requests)
        app = create_app(settings_from_env(env))
        try:
            uvloop.run(measure(app, seeded.codes, args))
        finally:
            app.state.runtime.close()
    print(f"load average: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
