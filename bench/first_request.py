"""`python -m bench.first_request`: how long the first request to a path takes after start-up.

Two measures (see docs/operations.md, start-up warm-up):

- **wall**: a fresh `townhall serve` on a fresh data folder per path and run, waited for with a
  bare TCP connect (no HTTP request, so nothing in the app is warmed), then the path is the
  very first request it gets; the median of `--runs`.
- **cpu**: in process, on a fresh app (`--warm` runs `townhall.cli.warm_up` on it first), the
  process's CPU time around the first and the second request to each path: steadier than wall
  time on a shared machine.

    .venv/bin/python -m bench.first_request --runs 3
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import httpx

PATHS = ("/", "/api/openapi.json", "/no-such-page")
HTML = {"Accept": "text/html"}
SECRET = "first-request-measure-0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def first_wall_ms(path: str) -> float:
    """Milliseconds of `path` as the first request of a fresh `townhall serve`."""
    port = _free_port()
    env = {
        **os.environ,
        "TOWNHALL_DATA_DIR": tempfile.mkdtemp(prefix="th-first-"),
        "TOWNHALL_SECRET_KEY": SECRET,
    }
    townhall = str(Path(sys.executable).parent / "townhall")
    server = subprocess.Popen(
        [townhall, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("townhall serve did not start") from None
                time.sleep(0.05)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            started = time.perf_counter()
            client.get(path, headers=HTML)
            return (time.perf_counter() - started) * 1000
    finally:
        server.terminate()
        server.wait(60)


def first_cpu_ms(*, warm: bool) -> dict[str, tuple[float, float]]:
    """CPU milliseconds of the first and the second in-process request to each path."""
    os.environ["TOWNHALL_DATA_DIR"] = tempfile.mkdtemp(prefix="th-first-cpu-")
    os.environ["TOWNHALL_SECRET_KEY"] = SECRET
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

    from townhall.app import create_app
    from townhall.cli import warm_up
    from townhall.config import Settings
    from townhall.migrate import upgrade
    from townhall.runtime import Runtime

    settings = Settings()
    runtime = Runtime(settings)
    upgrade(runtime.engine)
    app = create_app(settings, runtime=runtime)
    if warm:
        warm_up(app)
    client = TestClient(app)
    result = {}
    for path in PATHS:
        times = []
        for _ in range(2):
            started = time.process_time()
            client.get(path, headers=HTML)
            times.append((time.process_time() - started) * 1000)
        result[path] = (times[0], times[1])
    runtime.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warm", action="store_true", help="cpu: warm the app up first")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}")
    for path in PATHS:
        runs = [first_wall_ms(path) for _ in range(args.runs)]
        each = ", ".join(f"{ms:.0f}" for ms in runs)
        print(f"wall {path:20s} first request {statistics.median(runs):7.1f} ms ({each})")
    for path, (first, second) in first_cpu_ms(warm=args.warm).items():
        print(f"cpu  {path:20s} first {first:7.1f} ms, second {second:6.1f} ms")


if __name__ == "__main__":
    main()
