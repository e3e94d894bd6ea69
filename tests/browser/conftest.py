"""What every browser test shares: Debian's Chromium through Playwright, a real `townhall serve`
subprocess on loopback with its own data folder, screenshots, and a watch for page problems."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
START_TIMEOUT_SECONDS = 60


@dataclass
class LiveServer:
    base_url: str
    log_path: Path
    token: str = ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def townhall_command(*args: str) -> list[str]:
    """`python -m townhall`: works whether or not the venv's bin is on PATH."""
    return [sys.executable, "-m", "townhall", *args]


def server_environment(work: Path, port: int, **settings: str) -> dict[str, str]:
    """Only our settings: a TOWNHALL_* variable from the calling shell (a PostgreSQL URL, Redis)
    must not leak in, and the working folder has no townhall.toml to pick up."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TOWNHALL_")}
    env.update(
        TOWNHALL_DATA_DIR=str(work / "data"),
        TOWNHALL_SECRET_KEY=secrets.token_urlsafe(32),
        TOWNHALL_BASE_URL=f"http://127.0.0.1:{port}",
        **settings,
    )
    return env


def run_in_environment(
    command: list[str], env: dict[str, str], work: Path, timeout: float = 300
) -> str:
    """Run a setup command (seed script, CLI) and fail with its output if it fails."""
    done = subprocess.run(
        command, env=env, cwd=work, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@contextmanager
def serving(work: Path, port: int, env: dict[str, str]) -> Iterator[LiveServer]:
    """`townhall serve` until the block ends; always stopped, killed if it will not stop."""
    log_path = work / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            townhall_command("serve", "--host", "127.0.0.1", "--port", str(port)),
            env=env,
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    running = LiveServer(f"http://127.0.0.1:{port}", log_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"townhall serve exited with {process.returncode}:\n{running.log()}")
            try:
                health = httpx.get(f"{running.base_url}/healthz", timeout=1, trust_env=False)
                if health.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"townhall serve did not answer in time:\n{running.log()}")
            time.sleep(0.2)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"Debian's Chromium is not installed at {CHROMIUM} "
            "(`make test` installs it through scripts/ensure-system.sh)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Screenshots land in `test-artifacts/` (gitignored) for a human to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def watch_problems(page: Page) -> list[str]:
    """Script errors, console errors and failed sub-resources (images, scripts, styles, XHR).

    Chromium also logs every 4xx document as a console error ("Failed to load resource"); the
    expected 401 pages are documents, failed sub-resources are caught by status instead.
    """
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and not message.text.startswith("Failed to load resource")
            and problems.append(f"console: {message.text}")
        ),
    )
    page.on(
        "response",
        lambda response: (
            response.status >= 400
            and response.request.resource_type != "document"
            and problems.append(f"{response.status} {response.url}")
        ),
    )
    return problems
