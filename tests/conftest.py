"""Fixtures: every database test runs on SQLite and on PostgreSQL.

One database per backend per test worker, migrated once; each test starts from empty tables
(truncated after the test), so tests are isolated without a template copy per test.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import text

from townhall.accounts import actions
from townhall.actor import system_actor
from townhall.app import create_app
from townhall.config import Settings
from townhall.db import Base, make_engine, unit_of_work
from townhall.migrate import upgrade
from townhall.runtime import Runtime

PG_HOST = os.environ.get("TOWNHALL_TEST_PG_HOST", "127.0.0.1")
PG_ADMIN_DSN = f"host={PG_HOST} port=5432 user=postgres dbname=postgres"
REDIS_URL = os.environ.get("TOWNHALL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
PASSWORD = "correct-horse-battery"
SECRET = "test-secret-key-that-is-long-enough"
# Tests send bursts from one address: rate limits stay on (their code runs in every test) but
# high, except where a test sets its own. Set in the environment so that the servers tests start
# (multinode, browser, benchmarks) inherit it too.
for _policy in ("SQL", "READS", "LOGIN", "SUBMISSIONS", "MESSAGES", "WRITES"):
    os.environ.setdefault(f"TOWNHALL_RATE_LIMIT_{_policy}", "1000000/minute")
# Argon2id at its cheapest: hashing at the default cost (64 MiB, 3 passes) was a third of some
# modules' time, one fifth of a second per account made. Login still hashes and verifies for
# real; `test_accounts_api` checks the default cost separately.
os.environ.setdefault("TOWNHALL_PASSWORD_HASH_MEMORY_KIB", "32")
os.environ.setdefault("TOWNHALL_PASSWORD_HASH_TIME_COST", "1")


def postgres_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def create_pg_database(prefix: str = "townhall_test") -> str:
    """Create a fresh database and return its SQLAlchemy URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@{PG_HOST}:5432/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    if not postgres_available():
        pytest.skip(f"PostgreSQL is not reachable at {PG_HOST}:5432 (make test starts it)")
    url = create_pg_database()
    # A test never outlives a PostgreSQL crash: commits need not wait for the disk (each one
    # waited 30 ms here). The crash tests kill Townhall, never PostgreSQL.
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" SET synchronous_commit = off')
    settings = Settings(data_dir=Path("/nonexistent"), database_url=url)
    engine = make_engine(settings)
    upgrade(engine)
    engine.dispose()
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="session")
def sqlite_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sqlite") / "townhall.db"
    url = f"sqlite:///{path}"
    settings = Settings(data_dir=path.parent, database_url=url)
    engine = make_engine(settings)
    upgrade(engine)
    engine.dispose()
    return url


def _empty_tables(runtime: Runtime) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with runtime.engine.begin() as conn:
        if runtime.engine.dialect.name == "postgresql":
            # TRUNCATE costs about 10 ms per table even when it is empty, and a test leaves
            # rows in a few of the sixty: truncate only the tables holding rows, then restart
            # every sequence (what RESTART IDENTITY did) in one statement. (DELETE was 0.14 s
            # per test cheaper, but left reused heap space behind, so a test whose query had
            # no ORDER BY saw rows out of insertion order, now and then.)
            holding = set(
                conn.execute(
                    text(
                        " UNION ALL ".join(
                            f"SELECT '{table}' WHERE EXISTS (SELECT 1 FROM {table})"
                            for table in tables
                        )
                    )
                ).scalars()
            )
            if filled := [table for table in tables if table in holding]:
                conn.execute(text(f"TRUNCATE {', '.join(filled)} CASCADE"))
            conn.execute(
                text(
                    "SELECT setval(c.oid, 1, false) FROM pg_class c "
                    "WHERE c.relkind = 'S' AND c.relnamespace = 'public'::regnamespace"
                )
            )
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def settings(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url_fixture = "pg_database_url" if backend == "postgresql" else "sqlite_database_url"
    database_url = request.getfixturevalue(url_fixture)
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        # Each test gets its own lake; the PostgreSQL lake catalog has its own tests.
        lake_catalog_url=f"sqlite:{tmp_path / 'lake.sqlite'}",
        secret_key=SECRET,
        run_jobs_in_process=False,
        login_max_failures=5,
        # Webhook receivers and file servers of the tests listen on loopback.
        outbound_allow_private=True,
    )


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime(settings)
    yield runtime
    _empty_tables(runtime)
    runtime.close()


@pytest.fixture
def app(runtime: Runtime):
    return create_app(runtime.settings, runtime=runtime)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


@dataclass
class Account:
    id: int
    email: str
    password: str
    role: str
    token: str


def make_account(
    runtime: Runtime,
    role: str,
    *,
    email: str | None = None,
    scopes: list[str] | None = None,
    orgs: list[str] | None = None,
) -> Account:
    email = email or f"{role}-{secrets.token_hex(4)}@city.example"
    with unit_of_work(runtime.session_factory) as session:
        user = actions.create_user(
            session,
            actor=system_actor("test"),
            email=email,
            password=PASSWORD,
            role=role,
            organization_slugs=orgs or [],
        )
        _, raw = actions.create_api_token(
            session, actor=system_actor("test"), user_id=user.id, scopes=scopes or []
        )
        return Account(user.id, email, PASSWORD, role, raw)


@pytest.fixture
def admin(runtime: Runtime) -> Account:
    return make_account(runtime, "admin", email="admin@city.example")


def auth(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.token}"}


def csrf_from(html: str) -> str:
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def login(client: TestClient, email: str, password: str = PASSWORD) -> None:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_from(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_in_thread(app) -> Iterator[str]:
    """Serve `app` with a real uvicorn in a thread on a free loopback port; yields its URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn did not start"
        assert time.monotonic() < deadline, "uvicorn did not start in time"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        app.state.runtime.events.close_streams()
        server.should_exit = True
        thread.join(15)
        assert not thread.is_alive(), "uvicorn did not stop"
