"""Liveness, readiness (each dependency named when it fails) and Prometheus metrics."""

from __future__ import annotations

import socket
import time

from fastapi.testclient import TestClient
from sqlalchemy import text

from townhall.app import create_app
from townhall.runtime import Runtime


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def test_healthz_is_alive_and_touches_nothing(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    # A load balancer polling it gets no cookie (the caller is never resolved).
    assert "set-cookie" not in response.headers


def test_readyz_checks_every_dependency(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "events": "ok", "jobs": "ok", "lake": "ok"},
    }
    assert "set-cookie" not in response.headers


def test_readyz_names_the_job_queue_when_redis_is_down(settings):
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port()}/0"})
    runtime = Runtime(down)
    try:
        with TestClient(create_app(down, runtime=runtime)) as client:
            response = client.get("/readyz")
    finally:
        runtime.close()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["jobs"].startswith("failed: ConnectionError")
    assert body["checks"]["events"].startswith("failed")
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["lake"] == "ok"


def test_readyz_names_the_database_when_it_is_down(settings):
    down = settings.model_copy(
        update={"database_url": f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/none"}
    )
    runtime = Runtime(down)
    try:
        with TestClient(create_app(down, runtime=runtime)) as client:
            response = client.get("/readyz")
    finally:
        runtime.close()
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"].startswith("failed: OperationalError")
    assert checks["jobs"] == "ok"
    assert checks["events"] == "ok"


def test_readyz_is_not_queued_behind_a_writer(client, runtime):
    # On SQLite every SQLAlchemy transaction starts with BEGIN IMMEDIATE; a probe going that
    # way would wait for the writer (or time out) and call a busy node dead.
    with runtime.engine.connect() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS probe_lock (n integer)"))
        connection.execute(text("INSERT INTO probe_lock VALUES (1)"))  # holds the write lock
        started = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - started
        connection.rollback()
    assert response.status_code == 200, response.text
    assert response.json()["checks"]["database"] == "ok"
    assert elapsed < 3


def test_metrics_count_requests_by_route(client):
    client.get("/healthz")
    client.get("/api/v1/me")  # 401
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    body = response.text
    assert "# TYPE townhall_http_requests_total counter" in body
    assert 'townhall_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in body
    assert 'route="/api/v1/me",status="401"' in body
    assert "townhall_http_request_seconds_bucket" in body
    assert "townhall_sse_subscribers 0.0" in body
    assert 'townhall_cache_entries{cache="status"} 0.0' in body


def test_metrics_count_kept_status_answers(client, runtime):
    from .test_service_requests import setup_city, submit

    setup_city(runtime)
    code = submit(runtime)
    for _ in range(3):
        assert client.get(f"/api/v1/requests/{code}").status_code == 200
    body = client.get("/metrics").text
    assert 'townhall_cache_misses_total{cache="status"} 1.0' in body
    assert 'townhall_cache_hits_total{cache="status"} 2.0' in body
    assert 'townhall_cache_entries{cache="status"} 1.0' in body
