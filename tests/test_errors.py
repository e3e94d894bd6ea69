"""The native API's one error shape, pinned: every refusal is a clear 4xx in the same shape,
carries the request id, and leaves nothing stored."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from townhall.accounts.models import User
from townhall.app import create_app
from townhall.audit.models import AuditEntry
from townhall.db import unit_of_work

from .conftest import auth

ERROR_KEYS = {"ok", "status", "code", "message", "errors", "request_id"}
SMALL_LIMIT = 1024  # the smallest `max_body_bytes` the settings accept
NEW_USER = {"email": "new@city.example", "password": "a-long-password", "role": "staff"}


def assert_error(response, status: int, code: str) -> dict:
    """The response is the native error shape with this status and code; returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == ERROR_KEYS, body
    assert body["ok"] is False
    assert body["status"] == status
    assert body["code"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    assert isinstance(body["errors"], list)
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def stored_counts(runtime) -> tuple[int, int]:
    with unit_of_work(runtime.session_factory) as session:
        users = session.scalar(select(func.count()).select_from(User))
        entries = session.scalar(select(func.count()).select_from(AuditEntry))
    return users, entries


def json_post(client, admin, content: bytes, path: str = "/api/v1/users"):
    headers = {**auth(admin), "Content-Type": "application/json"}
    return client.post(path, headers=headers, content=content)


# Malformed JSON


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b'{"email": "new@city.example", "role": ', id="truncated"),
        pytest.param(b"{'email': 'new@city.example'}", id="single-quotes"),
        pytest.param(b'{"role": "staff"} and more', id="trailing-data"),
        pytest.param(b'{"email": "caf\xe9@city.example", "role": "staff"}', id="not-utf8"),
    ],
)
def test_malformed_json_is_400_malformed_json(client, admin, runtime, content):
    before = stored_counts(runtime)
    body = assert_error(json_post(client, admin, content), 400, "malformed_json")
    assert "JSON" in body["message"]
    assert stored_counts(runtime) == before


def test_malformed_json_says_where(client, admin):
    body = assert_error(json_post(client, admin, b'{"role": "staff",}'), 400, "malformed_json")
    assert "character" in body["message"]


# Wrong types and unknown fields


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"email": 5}, "email", id="number-for-string"),
        pytest.param({"role": "emperor"}, "role", id="unknown-role"),
        pytest.param({"organizations": "parks"}, "organizations", id="string-for-list"),
        pytest.param({"password": ["a-long-password"]}, "password", id="list-for-string"),
        pytest.param({"display_name": "x" * 201}, "display_name", id="too-long"),
    ],
)
def test_wrong_type_is_422_naming_the_field(client, admin, runtime, change, field):
    before = stored_counts(runtime)
    response = client.post("/api/v1/users", headers=auth(admin), json={**NEW_USER, **change})
    body = assert_error(response, 422, "invalid_request")
    assert ["body", field] in [error["loc"] for error in body["errors"]]
    assert field in body["message"]
    for error in body["errors"]:
        assert set(error) == {"loc", "message", "type"}
    assert stored_counts(runtime) == before


def test_unknown_field_is_422_naming_it(client, admin, runtime):
    before = stored_counts(runtime)
    response = client.post(
        "/api/v1/users", headers=auth(admin), json={**NEW_USER, "nickname": "Bob"}
    )
    body = assert_error(response, 422, "invalid_request")
    assert body["errors"] == [
        {
            "loc": ["body", "nickname"],
            "message": "Extra inputs are not permitted",
            "type": "extra_forbidden",
        }
    ]
    assert "nickname" in body["message"]
    assert stored_counts(runtime) == before


def test_body_that_is_not_an_object_is_422(client, admin):
    body = assert_error(json_post(client, admin, b"[1, 2, 3]"), 422, "invalid_request")
    assert body["errors"][0]["loc"] == ["body"]


def test_bad_query_and_path_parameters_are_422_naming_them(client, admin):
    query = assert_error(
        client.get("/api/v1/users?limit=many", headers=auth(admin)), 422, "invalid_request"
    )
    assert query["errors"][0]["loc"] == ["query", "limit"]
    path = assert_error(
        client.patch("/api/v1/users/first", headers=auth(admin), json={}), 422, "invalid_request"
    )
    assert path["errors"][0]["loc"] == ["path", "user_id"]


# Oversized bodies


@pytest.fixture
def small_body_client(runtime) -> Iterator[TestClient]:
    """An app on the test's runtime whose JSON bodies may not exceed SMALL_LIMIT bytes."""
    settings = runtime.settings.model_copy(update={"max_body_bytes": SMALL_LIMIT})
    with TestClient(create_app(settings, runtime=runtime)) as client:
        yield client


def oversized_user() -> bytes:
    return (
        b'{"email": "big@city.example", "password": "a-long-password", "role": "staff", '
        b'"display_name": "' + b"x" * (SMALL_LIMIT * 2) + b'"}'
    )


def test_declared_oversized_body_is_413(small_body_client, admin, runtime):
    before = stored_counts(runtime)
    response = json_post(small_body_client, admin, oversized_user())
    body = assert_error(response, 413, "body_too_large")
    assert str(SMALL_LIMIT) in body["message"]
    assert stored_counts(runtime) == before


def test_streamed_oversized_body_is_413(small_body_client, admin, runtime):
    """No Content-Length (chunked): the limit is enforced while the body arrives."""
    payload = oversized_user()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(payload), 256):
            yield payload[start : start + 256]

    before = stored_counts(runtime)
    headers = {**auth(admin), "Content-Type": "application/json"}
    response = small_body_client.post("/api/v1/users", headers=headers, content=chunks())
    assert_error(response, 413, "body_too_large")
    assert stored_counts(runtime) == before


def test_body_under_the_limit_is_served(small_body_client, admin):
    response = small_body_client.post("/api/v1/users", headers=auth(admin), json=NEW_USER)
    assert response.status_code == 201, response.text


# Routes and methods


@pytest.mark.parametrize("path", ["/api/v1/no-such-thing", "/api/v2/users", "/no-such-page"])
def test_unknown_route_is_404_not_found(client, path):
    body = assert_error(client.get(path), 404, "not_found")
    assert path in body["message"]


def test_unknown_object_is_404_in_the_not_found_family(client, admin):
    response = client.patch("/api/v1/users/999999", headers=auth(admin), json={})
    assert_error(response, 404, "user_not_found")


def test_wrong_method_is_405(client, admin, runtime):
    before = stored_counts(runtime)
    response = client.put("/api/v1/users", headers=auth(admin), json=NEW_USER)
    assert_error(response, 405, "method_not_allowed")
    # Starlette names the methods of the first route with this path only (GET here, not POST).
    assert "GET" in response.headers["allow"]
    assert stored_counts(runtime) == before


# Authentication and permission refusals share the shape


def test_auth_refusals_have_the_shape(client, runtime, admin):
    from .conftest import make_account

    assert_error(client.get("/api/v1/users"), 401, "not_authenticated")
    assert_error(
        client.get("/api/v1/users", headers={"Authorization": "Bearer th_unknown"}),
        401,
        "invalid_token",
    )
    assert_error(
        client.get("/api/v1/users", headers={"Authorization": "Basic YTpi"}), 401, "invalid_token"
    )
    partner = make_account(runtime, "partner")
    before = stored_counts(runtime)
    assert_error(
        client.post("/api/v1/users", headers=auth(partner), json=NEW_USER),
        403,
        "permission_denied",
    )
    assert stored_counts(runtime) == before


def test_conflict_has_the_shape_and_stores_nothing_more(client, admin, runtime):
    assert client.post("/api/v1/users", headers=auth(admin), json=NEW_USER).status_code == 201
    before = stored_counts(runtime)
    again = client.post("/api/v1/users", headers=auth(admin), json=NEW_USER)
    assert_error(again, 409, "conflict")
    assert stored_counts(runtime) == before


# Request ids


def test_given_request_id_is_echoed_in_header_and_body(client):
    response = client.get("/api/v1/no-such-thing", headers={"X-Request-ID": "req-2026.05:a_1"})
    assert response.headers["x-request-id"] == "req-2026.05:a_1"
    assert assert_error(response, 404, "not_found")["request_id"] == "req-2026.05:a_1"


@pytest.mark.parametrize(
    "given", ["has spaces", "x" * 65, "semi;colon", ""], ids=["spaces", "too-long", "semi", "empty"]
)
def test_unsafe_request_id_is_replaced(client, given):
    response = client.get("/api/v1/no-such-thing", headers={"X-Request-ID": given})
    body = assert_error(response, 404, "not_found")
    assert body["request_id"] != given
    assert len(body["request_id"]) == 32


def test_every_response_gets_a_request_id(client):
    first = client.get("/healthz").headers["x-request-id"]
    second = client.get("/healthz").headers["x-request-id"]
    assert first
    assert first != second


def test_refused_requests_store_nothing(client, admin, runtime):
    """A batch of every kind of refusal leaves users and the audit trail as they were."""
    before = stored_counts(runtime)
    json_post(client, admin, b'{"email": ')
    client.post("/api/v1/users", headers=auth(admin), json={**NEW_USER, "role": 7})
    client.post("/api/v1/users", headers=auth(admin), json={**NEW_USER, "extra": 1})
    client.post("/api/v1/users", json=NEW_USER)
    client.put("/api/v1/users", headers=auth(admin), json=NEW_USER)
    client.patch("/api/v1/users/999999", headers=auth(admin), json={"role": "admin"})
    assert stored_counts(runtime) == before


def test_security_headers_on_pages_and_api(client):
    for path in ("/", "/api/v1/organizations", "/nothing-here"):
        response = client.get(path)
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    # Swagger UI needs its CDN assets, so it goes without the policy.
    assert "content-security-policy" not in client.get("/api/docs").headers


def test_made_request_ids_are_unique_and_a_forked_child_draws_its_own_prefix():
    from townhall.middleware import _RequestIds

    ids = _RequestIds()
    made = [ids() for _ in range(1000)]
    assert len(set(made)) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in made)
    before = ids.prefix
    ids.reset()  # what `os.register_at_fork` runs in a child
    assert ids.prefix != before
    assert ids() not in made
