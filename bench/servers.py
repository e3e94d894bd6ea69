"""Real HTTP servers on free loopback ports: `townhall serve` and `datasette serve`, each its own
process, so measured times include HTTP, JSON and the framework, and memory is the server's own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

READY_TIMEOUT_SECONDS = 180.0
# Datasette's default limits (1 s per query, 1,000 rows) would refuse most of the comparison;
# raised as a Datasette operator would for a table this size.
DATASETTE_SETTINGS = {
    "sql_time_limit_ms": "600000",
    "max_returned_rows": "10000",
    "facet_time_limit_ms": "600000",
    # Its CSV export stops at 100 MB by default; 0 lets the whole table stream.
    "max_csv_mb": "0",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    _log: object = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s; only this server's own process."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()  # type: ignore[attr-defined]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _start(
    name: str, command: list[str], env: dict[str, str], cwd: Path, ready_path: str, port: int
) -> Server:
    log_path = cwd / f"{name}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(  # the command is built here, from our own paths
        command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    server = Server(name, process, f"http://127.0.0.1:{port}", log_path, log)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    with httpx.Client(base_url=server.base_url, timeout=5.0) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.log_tail()}")
            try:
                if client.get(ready_path).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"{name} not ready after {READY_TIMEOUT_SECONDS:.0f} s")
            time.sleep(0.1)


def _clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TOWNHALL_")}


def start_townhall(data_dir: Path, townhall_env: dict[str, str], workdir: Path) -> Server:
    port = free_port()
    env = {**_clean_environment(), **townhall_env}
    command = [
        sys.executable,
        "-m",
        "townhall",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return _start("townhall", command, env, workdir, "/healthz", port)


def datasette_command() -> list[str]:
    script = Path(sys.executable).with_name("datasette")
    return [str(script)] if script.exists() else [sys.executable, "-m", "datasette"]


def start_datasette(db_path: Path, workdir: Path) -> Server:
    """`datasette serve -i` (immutable, as `datasette publish` deploys a database)."""
    port = free_port()
    command = [
        *datasette_command(),
        "serve",
        "-i",
        str(db_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    for key, value in DATASETTE_SETTINGS.items():
        command += ["--setting", key, value]
    return _start("datasette", command, _clean_environment(), workdir, "/-/versions.json", port)


def round_trip_seconds(server: Server, path: str, times: int = 20) -> float:
    """Median time of a trivial request: the HTTP and framework floor under every answer."""
    samples = []
    with httpx.Client(base_url=server.base_url, timeout=30.0) as client:
        client.get(path)
        for _ in range(times):
            started = time.perf_counter()
            client.get(path).raise_for_status()
            samples.append(time.perf_counter() - started)
    samples.sort()
    return samples[len(samples) // 2]


# Memory ----------------------------------------------------------------------------------------


def _proc_status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def rss_bytes(pid: int) -> int | None:
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except ImportError:
        kb = _proc_status_kb(pid, "VmRSS")
        return None if kb is None else kb * 1024
    except Exception:
        return None


class PeakMemory:
    """The peak resident memory of process `pid` while the block runs.

    Resets the kernel's high-water mark first (`/proc/<pid>/clear_refs`, value 5) so VmHWM is
    this block's peak; also samples RSS every 10 ms (psutil if installed, else /proc), and
    reports the larger of the two. `baseline` is the RSS when the block started.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline: int | None = None
        self.peak: int | None = None
        self.hwm_reset = False
        self._sampled = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self.baseline = rss_bytes(self.pid)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            value = rss_bytes(self.pid)
            if value is not None:
                self._sampled = max(self._sampled, value)

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        hwm_kb = _proc_status_kb(self.pid, "VmHWM") if self.hwm_reset else None
        candidates = [self._sampled, (hwm_kb or 0) * 1024]
        self.peak = max(candidates) or None
