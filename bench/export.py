"""A full CSV export of the table: seconds to the last byte received, and the exporting process's
peak resident memory (the server's, for HTTP downloads)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.generate import TABLE
from bench.servers import PeakMemory, Server


@dataclass
class ExportResult:
    system: str
    method: str
    seconds: float | None = None
    bytes: int | None = None
    peak_bytes: int | None = None
    baseline_bytes: int | None = None
    skipped: str | None = None


def http_export(server: Server, system: str, path: str, params: dict[str, str]) -> ExportResult:
    """Stream the download to nowhere, counting bytes, while watching the server's memory."""
    received = 0
    with (
        httpx.Client(base_url=server.base_url, timeout=None) as client,
        PeakMemory(server.pid) as memory,
    ):
        started = time.perf_counter()
        with client.stream("GET", path, params=params) as response:
            if response.status_code != 200:
                response.read()
                raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:300]}")
            for chunk in response.iter_raw(1024 * 1024):
                received += len(chunk)
        seconds = time.perf_counter() - started
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return ExportResult(
        system,
        f"`GET {path}{'?' + query if query else ''}`",
        seconds,
        received,
        memory.peak,
        memory.baseline,
    )


def townhall_export(server: Server, slug: str) -> ExportResult:
    return http_export(server, "Townhall", f"/api/v1/datasets/{slug}/download.csv", {})


def datasette_export(server: Server) -> ExportResult:
    return http_export(server, "Datasette", f"/bench/{TABLE}.csv", {"_stream": "on"})


_DUCKDB_EXPORT = """
import json, resource, sys, time, duckdb
db, out, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = duckdb.connect(db, read_only=True, config={"threads": threads})
con.execute("SET enable_progress_bar = false")
started = time.perf_counter()
con.execute(f"COPY __TABLE__ TO '{out}' (FORMAT csv, HEADER true)")
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "peak": peak}))
"""


def duckdb_export(db_path: Path, out_path: Path, threads: int) -> ExportResult:
    """`COPY requests TO '...csv'` in a fresh process (its own peak memory, not ours)."""
    script = _DUCKDB_EXPORT.replace("__TABLE__", TABLE)
    done = subprocess.run(
        [sys.executable, "-c", script, str(db_path), str(out_path), str(threads)],
        check=True,
        capture_output=True,
        text=True,
    )
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    size = out_path.stat().st_size
    out_path.unlink(missing_ok=True)
    return ExportResult(
        "raw DuckDB",
        f"`COPY {TABLE} TO 'file.csv'` (file db, process peak incl. interpreter)",
        float(measured["seconds"]),
        size,
        int(measured["peak"]),
    )
