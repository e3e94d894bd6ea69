"""Fuzz the native API from its own OpenAPI document: no input may produce a 5xx.

Runs against the ASGI app in-process on the SQLite backend, with a fresh admin token on every
example (a generated `DELETE /api/v1/tokens/{id}` may revoke the one used before it).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from townhall.accounts import actions
from townhall.actor import system_actor
from townhall.db import unit_of_work


@pytest.fixture
def backend() -> str:
    # Overrides conftest's two-backend parameter: fuzzing both would double the run for little.
    return "sqlite"


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_asgi("/api/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


def fresh_admin_token(runtime, admin) -> str:
    with unit_of_work(runtime.session_factory) as session:
        _, raw = actions.create_api_token(
            session, actor=system_actor("fuzz"), user_id=admin.id, name="fuzz"
        )
    return raw


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_input_makes_a_server_error(case, runtime, admin):
    token = fresh_admin_token(runtime, admin)
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"}, checks=[not_a_server_error]
    )
