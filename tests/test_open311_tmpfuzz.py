"""Fuzz the native API from its own OpenAPI document: no input may produce a 5xx.

Every operation of `/api/openapi.json` gets a bounded number of generated requests, valid and
invalid, sent to the ASGI app in-process on SQLite, as an administrator (so the requests reach
the code behind the permission checks, not just the 401).

One app and one database serve the whole module, set up as conftest sets up a test (migrated
SQLite, the test secret, no in-process job consumer): the objects earlier operations created
are there for later ones, as on a real server, and the run stays within a couple of minutes.
The operations are collected from an app built with throwaway settings (building an app opens
no database and writes no file). Schemathesis' lazy `schemathesis.pytest.from_fixture` loader
is not used: under pytest 9 it fails on `Function._nodeid`.

Examples are derandomized, so a run is repeatable: a failure here is a bug to fix, not a flake.
Schemathesis' coverage phase (every boundary value of every parameter) is off: with 100+
operations it alone takes ten minutes; the fuzzing phase still sends boundary values.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from townhall.accounts import actions
from townhall.actor import system_actor
from townhall.app import create_app
from townhall.config import Settings
from townhall.db import unit_of_work
from townhall.migrate import upgrade
from townhall.runtime import Runtime

from .conftest import SECRET, Account, make_account

MAX_EXAMPLES = 100  # per operation: about two minutes for the ~120 operations
# An event stream never ends by itself: read it this long, then judge what arrived.
STREAM_READ_SECONDS = 1.0


def _openapi_document() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        throwaway = Settings(data_dir=Path(folder), secret_key=SECRET, run_jobs_in_process=False)
        return create_app(throwaway).openapi()


schema = schemathesis.openapi.from_dict(
    _openapi_document(),
    config=schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": False}}}),
)


@pytest.fixture(scope="module")
def fuzz_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    folder = tmp_path_factory.mktemp("fuzz")
    runtime = Runtime(
        Settings(
            data_dir=folder / "data",
            database_url=f"sqlite:///{folder / 'townhall.db'}",
            lake_catalog_url=f"sqlite:{folder / 'lake.sqlite'}",
            secret_key=SECRET,
            run_jobs_in_process=False,
        )
    )
    upgrade(runtime.engine)
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def fuzz_app(fuzz_runtime: Runtime) -> FastAPI:
    return create_app(fuzz_runtime.settings, runtime=fuzz_runtime)


@pytest.fixture(scope="module")
def fuzz_admin(fuzz_runtime: Runtime) -> Account:
    return make_account(fuzz_runtime, "admin", email="fuzz-admin@city.example")


class AdminToken:
    """The admin's token, replaced when a generated request revokes it (`DELETE /tokens/1`)."""

    def __init__(self, runtime: Runtime, admin: Account) -> None:
        self.runtime, self.admin, self.value = runtime, admin, admin.token

    def renew(self) -> None:
        with unit_of_work(self.runtime.session_factory) as session:
            _, self.value = actions.create_api_token(
                session, actor=system_actor("fuzz"), user_id=self.admin.id, name="fuzz"
            )


@pytest.fixture(scope="module")
def admin_token(fuzz_runtime: Runtime, fuzz_admin: Account) -> AdminToken:
    return AdminToken(fuzz_runtime, fuzz_admin)


def streams_events(case) -> bool:
    return "text/event-stream" in json.dumps(case.operation.definition.raw.get("responses", {}))


schema = schema.include(path_regex="(open311|request|notify|queue)")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    # The examples of one operation share the module's app on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_input_makes_a_server_error(case, fuzz_app, admin_token):
    extra = {"timeout": STREAM_READ_SECONDS} if streams_events(case) else {}
    response = case.call_and_validate(
        app=fuzz_app,
        headers={"Authorization": f"Bearer {admin_token.value}"},
        checks=[not_a_server_error],
        **extra,
    )
    if response.status_code == 401 and "invalid_token" in response.text:
        admin_token.renew()


def test_the_served_schema_is_the_fuzzed_one(fuzz_app):
    with TestClient(fuzz_app) as client:
        served = client.get("/api/openapi.json")
    assert served.status_code == 200
    assert served.json()["paths"].keys() == schema.raw_schema["paths"].keys()


def unbounded_integers(parameter_schema: dict[str, Any]) -> bool:
    if parameter_schema.get("type") == "integer":
        return "maximum" not in parameter_schema and "exclusiveMaximum" not in parameter_schema
    return any(unbounded_integers(option) for option in parameter_schema.get("anyOf", []))


def test_every_integer_parameter_is_bounded():
    """An id, seq or version with no maximum reaches the database as is: past 2**63 - 1 SQLite
    raises OverflowError and PostgreSQL a DataError, both a 500. Fuzzing finds some of these by
    chance; this finds all of them. Bound them (`Path(ge=1, le=2**63 - 1)` or tighter)."""
    unbounded = [
        f"{method.upper()} {path} ({parameter['in']} {parameter['name']})"
        for path, operations in schema.raw_schema["paths"].items()
        for method, operation in operations.items()
        if isinstance(operation, dict)
        for parameter in operation.get("parameters", [])
        if unbounded_integers(parameter.get("schema", {}))
    ]
    assert not unbounded, "Integer parameters without a maximum:\n  " + "\n  ".join(unbounded)
