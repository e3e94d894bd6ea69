"""Fuzz the native API from its own OpenAPI document: no input may produce a 5xx.

Every operation of `/api/openapi.json` runs a bounded number of generated requests (valid and
invalid) against the ASGI app in-process, on the SQLite backend, with a fresh admin token per
request (a generated `DELETE /api/v1/tokens/{id}` may revoke the previous one).

The operations are collected from an app built with throwaway settings (building an app opens no
database and writes no file); the requests go to the app of conftest's `app` fixture, so every
operation runs against empty, migrated tables like any other test. Schemathesis' lazy
`schemathesis.pytest.from_fixture` loader is not used: under pytest 9 it fails on
`Function._nodeid`.

Examples are derandomized, so a run is repeatable: a failure here is a bug to fix, not a flake.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from townhall.accounts import actions
from townhall.actor import system_actor
from townhall.app import create_app
from townhall.config import Settings
from townhall.db import unit_of_work

from .conftest import SECRET

# An event stream never ends by itself: read it this long, then judge what arrived.
STREAM_READ_SECONDS = 0.5


def _openapi_document() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        throwaway = Settings(data_dir=Path(folder), secret_key=SECRET, run_jobs_in_process=False)
        return create_app(throwaway).openapi()


schema = schemathesis.openapi.from_dict(_openapi_document())


@pytest.fixture
def backend() -> str:
    # Overrides conftest's two-backend parameter: fuzzing both doubles the time for little.
    return "sqlite"


def fresh_admin_token(runtime, admin) -> str:
    with unit_of_work(runtime.session_factory) as session:
        _, raw = actions.create_api_token(
            session, actor=system_actor("fuzz"), user_id=admin.id, name="fuzz"
        )
    return raw


def streams_events(case) -> bool:
    return "text/event-stream" in json.dumps(case.operation.definition.raw.get("responses", {}))


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    # The fixtures are per operation on purpose: the examples of one operation share its tables.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_input_makes_a_server_error(case, app, runtime, admin):
    token = fresh_admin_token(runtime, admin)
    extra = {"timeout": STREAM_READ_SECONDS} if streams_events(case) else {}
    case.call_and_validate(
        app=app,
        headers={"Authorization": f"Bearer {token}"},
        checks=[not_a_server_error],
        **extra,
    )


def test_the_served_schema_is_the_fuzzed_one(client):
    served = client.get("/api/openapi.json")
    assert served.status_code == 200
    assert served.json()["paths"].keys() == schema.raw_schema["paths"].keys()
