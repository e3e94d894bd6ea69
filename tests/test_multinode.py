"""Two `townhall serve` nodes on loopback, one PostgreSQL database, one Redis.

What one node does, the other sees: a user created through node A logs in on node B, and an
announcement published through node A reaches an SSE subscriber on node B.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from .conftest import (
    PASSWORD,
    REDIS_URL,
    SECRET,
    create_pg_database,
    csrf_from,
    drop_pg_database,
    free_port,
    postgres_available,
)
from .test_jobs import TOWNHALL, redis_available, redis_url_with_db

pytestmark = pytest.mark.multinode

# A Redis database of its own: the nodes use the production queue name, "townhall".
REDIS_DB = 15


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [TOWNHALL, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"townhall {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@contextmanager
def node(name: str, env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """A `townhall serve` subprocess; yields its base URL once it is ready."""
    port = free_port()
    log_path = tmp_path / f"{name}.log"
    node_env = {**env, "TOWNHALL_DATA_DIR": str(tmp_path / f"{name}-data")}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [TOWNHALL, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=node_env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process, log_path)
        yield base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_ready(base: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 90
    last = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"node exited ({process.returncode}):\n{log_path.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                ready = httpx.get(f"{base}/readyz", timeout=10)
                last = ready.text
                if ready.status_code == 200:
                    return
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise AssertionError(f"node not ready: {last}\n{log_path.read_text()}")


@pytest.fixture
def cluster_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable")
    if not redis_available():
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    database_url = create_pg_database("townhall_multinode")
    redis_url = redis_url_with_db(REDIS_DB)
    env = {key: value for key, value in os.environ.items() if not key.startswith("TOWNHALL_")}
    env.update(
        TOWNHALL_DATABASE_URL=database_url,
        TOWNHALL_REDIS_URL=redis_url,
        TOWNHALL_SECRET_KEY=SECRET,
        TOWNHALL_DATA_DIR=str(tmp_path / "cli-data"),
        TOWNHALL_CONFIG_FILE=str(tmp_path / "no-such-townhall.toml"),
    )
    try:
        yield env
    finally:
        drop_pg_database(database_url)
        store = redis.Redis.from_url(redis_url)
        for key in store.scan_iter("huey.*.townhall"):
            store.delete(key)
        store.close()


def test_two_nodes_share_accounts_and_events(cluster_env, tmp_path):
    run_cli(["db", "upgrade"], cluster_env, tmp_path)
    run_cli(
        [
            "users",
            "create",
            "--email",
            "admin@city.example",
            "--role",
            "admin",
            "--password",
            PASSWORD,
        ],
        cluster_env,
        tmp_path,
    )
    token = (
        run_cli(["tokens", "create", "--email", "admin@city.example"], cluster_env, tmp_path)
        .splitlines()[-1]
        .strip()
    )
    admin = {"Authorization": f"Bearer {token}"}

    with node("a", cluster_env, tmp_path) as node_a, node("b", cluster_env, tmp_path) as node_b:
        # A user created through node A ...
        created = httpx.post(
            f"{node_a}/api/v1/users",
            headers=admin,
            json={"email": "clerk@city.example", "password": "clerk-password-1", "role": "staff"},
        )
        assert created.status_code == 201, created.text

        # ... logs in on node B through the web form, and the session works there.
        with httpx.Client(base_url=node_b) as browser:
            form = browser.get("/login")
            assert form.status_code == 200
            assert "th_anon" in browser.cookies
            response = browser.post(
                "/login",
                data={
                    "email": "clerk@city.example",
                    "password": "clerk-password-1",
                    "csrf_token": csrf_from(form.text),
                },
                follow_redirects=False,
            )
            assert response.status_code == 303, response.text
            assert "th_session" in browser.cookies
            me = browser.get("/api/v1/me")
            assert me.status_code == 200, me.text
            assert me.json()["email"] == "clerk@city.example"
            assert me.json()["via"] == "session"

        # An announcement published through node A reaches a live page on node B.
        timeout = httpx.Timeout(10.0, read=10.0)
        with (
            httpx.Client(base_url=node_b, timeout=timeout) as page,
            page.stream(
                "GET", "/events/stream", params={"channel": "public.announcements"}
            ) as stream,
        ):
            assert stream.status_code == 200
            lines = stream.iter_lines()
            assert next(lines).startswith("retry:")
            assert next(lines).startswith(": subscribed")
            sent = httpx.post(
                f"{node_a}/api/v1/events/announce",
                headers=admin,
                json={"message": "Counters close at 15:00 today."},
            )
            assert sent.status_code == 202, sent.text
            event_lines: list[str] = []
            for line in lines:
                event_lines.append(line)
                if line.startswith("data: "):
                    break
            assert "event: announcement" in event_lines
            payload = json.loads(event_lines[-1][len("data: ") :])
            assert payload["channel"] == "public.announcements"
            assert payload["data"] == {"message": "Counters close at 15:00 today."}
