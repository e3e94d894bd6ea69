"""The service-request load benchmark (`python -m bench load`, bench/load.py) and the fast
status path it measures.

Nothing here depends on timing: what is checked is that the fast status lookups answer exactly
what the ORM path answers, that moving them to the front of the routes shadows nothing, that
`townhall serve` picks the fast server settings, and (slow) that the harness runs end to end
against real servers with wrk and loses no acknowledged submission.
"""

from __future__ import annotations

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from bench.load import BEGIN, END, SECTION, main, status_script, submit_script, write_markdown
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Match
from typer.testing import CliRunner

from townhall.actor import system_actor
from townhall.cli import app as cli_app
from townhall.cli import server_choices
from townhall.compat.open311 import request_document
from townhall.db import unit_of_work
from townhall.service_requests import actions, queries
from townhall.service_requests.api import request_public

from .conftest import auth, make_account, serve_in_thread
from .test_service_requests import setup_city, submit

STATUS_PATHS = {
    "/api/v1/requests/{code}",
    "/open311/v2/requests/{service_request_id}.{fmt}",
    "/open311/v2/request/{service_request_id}.{fmt}",
}


# The fast status path answers what the ORM path answers --------------------------------------


def _worked_request(runtime) -> tuple[str, str]:
    """A request with public and internal notes, closed as a duplicate of another."""
    setup_city(runtime)
    original = submit(
        runtime, description="Tags on the bridge, call Ann Smith.", resident_name="Ann Smith"
    )
    code = submit(runtime, description="More tags on the bridge.", now=datetime.now(UTC))
    staff = system_actor("test")
    with unit_of_work(runtime.session_factory) as session:
        actions.add_note(
            session, actor=staff, code=code, public_note="Crew booked.", internal_note="x"
        )
        actions.add_note(session, actor=staff, code=code, public_note=None, internal_note="y")
        actions.merge_duplicate(session, actor=staff, code=code, into_code=original)
    return original, code


def test_native_status_lookup_matches_the_orm_document(client, runtime):
    original, code = _worked_request(runtime)
    for tracking_code in (original, code, code.lower()):
        response = client.get(f"/api/v1/requests/{tracking_code}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        with unit_of_work(runtime.session_factory) as session:
            found = queries.request_by_code(session, tracking_code)
            expected = request_public(session, found, history=True).model_dump(mode="json")
        assert response.json() == expected
    body = client.get(f"/api/v1/requests/{code}").json()
    assert body["duplicate_of"] == original
    assert [n["note"] for n in body["history"] if n["kind"] == "note"] == ["Crew booked."]
    assert "Ann Smith" not in client.get(f"/api/v1/requests/{original}").text


def test_open311_status_lookup_matches_the_orm_document(client, runtime):
    original, code = _worked_request(runtime)
    base_url = runtime.settings.base_url
    for tracking_code in (original, code):
        response = client.get(f"/open311/v2/requests/{tracking_code}.json")
        assert response.status_code == 200
        with unit_of_work(runtime.session_factory) as session:
            found = queries.request_by_code(session, tracking_code)
            expected = [json.loads(json.dumps(request_document(found, base_url=base_url)))]
        assert response.json() == expected
        singular = client.get(f"/open311/v2/request/{tracking_code}.json")
        assert singular.json() == expected
        xml = client.get(f"/open311/v2/requests/{tracking_code}.xml")
        assert xml.status_code == 200
        assert f"<service_request_id>{tracking_code}</service_request_id>" in xml.text
    extended = client.get(f"/open311/v2/requests/{code}.json", params={"extensions": "true"})
    assert extended.json()[0]["extended_attributes"]["duplicate_of"] == original


def test_status_lookups_refuse_what_they_refused_before(client, runtime):
    _, code = _worked_request(runtime)
    missing = client.get("/api/v1/requests/RVT-NOTHERE")
    assert missing.status_code == 404
    assert missing.json()["code"] == "request_not_found"
    assert client.get("/open311/v2/requests/RVT-NOTHERE.json").json()[0]["code"] == 404
    assert client.get(f"/open311/v2/requests/{code}.csv").status_code == 404
    bad_token = {"Authorization": "Bearer th_not-a-real-token"}
    assert client.get(f"/api/v1/requests/{code}", headers=bad_token).status_code == 401
    assert client.get(f"/open311/v2/requests/{code}.json", headers=bad_token).status_code == 403
    with unit_of_work(runtime.session_factory) as session:
        found = queries.request_by_code(session, code)
        found.hidden = True
    assert client.get(f"/api/v1/requests/{code}").status_code == 404
    assert client.get(f"/open311/v2/requests/{code}.json").status_code == 404


def test_status_lookups_with_a_query_string_are_validated_by_fastapi(client, runtime):
    """`StatusRoute` calls the endpoint directly only without a query string: parameters
    still meet FastAPI's validation, and a valid one answers what no parameter answers."""
    _, code = _worked_request(runtime)
    plain = client.get(f"/open311/v2/requests/{code}.json")
    ours = runtime.settings.base_url.split("//")[1].split(":")[0].split("/")[0]
    same = client.get(f"/open311/v2/requests/{code}.json", params={"jurisdiction_id": ours})
    assert same.status_code == 200
    assert same.json() == plain.json()
    too_long = client.get(
        f"/open311/v2/requests/{code}.json", params={"jurisdiction_id": "x" * 201}
    )
    assert 400 <= too_long.status_code < 500
    assert isinstance(too_long.json(), list)
    assert too_long.json()[0]["code"] == too_long.status_code
    other = client.get(f"/open311/v2/requests/{code}.json", params={"jurisdiction_id": "elsewhere"})
    assert other.status_code == 404
    native = client.get(f"/api/v1/requests/{code}", params={"unused": "1"})
    assert native.json() == client.get(f"/api/v1/requests/{code}").json()


def test_status_lookups_with_a_token_still_resolve_the_caller(client, runtime, admin):
    _, code = _worked_request(runtime)
    headers = {"Authorization": f"Bearer {admin.token}"}
    assert client.get(f"/api/v1/requests/{code}", headers=headers).status_code == 200
    assert client.get(f"/open311/v2/requests/{code}.json", headers=headers).status_code == 200


# Routing ---------------------------------------------------------------------------------------


def _sample_path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "sample", path)


def test_status_routes_come_first_and_shadow_no_other_route(app):
    routes = list(iter_route_contexts(app.routes))
    api_routes = [r for r in routes if isinstance(getattr(r, "original_route", r), APIRoute)]
    first = [r.path for r in api_routes[: len(STATUS_PATHS)]]
    assert set(first) == STATUS_PATHS
    status_patterns = [r.original_route.path_regex for r in api_routes if r.path in STATUS_PATHS]
    for route in api_routes:
        if route.path in STATUS_PATHS or "GET" not in (route.methods or set()):
            continue
        sample = _sample_path(route.path)
        shadowed = [p.pattern for p in status_patterns if p.match(sample)]
        assert not shadowed, f"GET {route.path} would be answered by {shadowed}"
    # ... and the router really hands those paths to them.
    scope = {"type": "http", "method": "GET", "path": "/api/v1/requests/RVT-1", "root_path": ""}
    native = next(r for r in api_routes if r.path == "/api/v1/requests/{code}")
    assert native.original_route.matches(scope)[0] == Match.FULL


# Server settings -----------------------------------------------------------------------------


def test_serve_picks_uvloop_and_httptools_and_documents_its_flags():
    assert server_choices() == ("uvloop", "httptools")  # both come with uvicorn[standard]
    result = CliRunner().invoke(cli_app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--access-log" in result.output
    assert "--workers" in result.output


# The harness -----------------------------------------------------------------------------------


def test_markdown_block_goes_after_the_bench_block_and_is_replaced_in_place(tmp_path):
    page = tmp_path / "performance.md"
    bench_block = "<!-- bench:begin -->\nbench numbers\n<!-- bench:end -->"
    page.write_text(f"# Performance\n\n{bench_block}\n\n## Reading the results\n\ntext\n")
    write_markdown(page, "first run\n")
    text = page.read_text()
    assert text.index("<!-- bench:end -->") < text.index(SECTION) < text.index("first run")
    assert text.index(END) < text.index("## Reading the results")
    write_markdown(page, "second run\n")
    again = page.read_text()
    assert "first run" not in again
    assert again.count(BEGIN) == 1
    assert again.count(SECTION) == 1
    assert bench_block in again


def test_lua_scripts_format_every_submission_differently(tmp_path):
    codes = tmp_path / "codes.txt"
    status = status_script(codes, "/open311/v2/requests/{code}.json")
    assert '"/open311/v2/requests/" .. code .. ".json"' in status
    assert "done = function" in status
    script = submit_script(
        tmp_path, "/api/v1/requests", {"Content-Type": "application/json"}, '{"d": "%d-%d"}', "t"
    )
    assert "string.format" in script
    assert "answers-" in script
    assert "response = function" in script


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make system)")
def test_harness_runs_end_to_end_and_loses_no_submission(tmp_path):
    output = tmp_path / "performance.md"
    output.write_text("# Performance\n\n<!-- bench:begin -->\nx\n<!-- bench:end -->\n")
    raw = tmp_path / "load.json"
    code = main(
        [
            "--backend",
            "sqlite",
            "--requests",
            "200",
            "--duration",
            "2",
            "--warmup",
            "1",
            "--connections",
            "8",
            "--threads",
            "1",
            "--workdir",
            str(tmp_path / "work"),
            "--output",
            str(output),
            "--json",
            str(raw),
        ]
    )
    runs = json.loads(raw.read_text())
    assert code == 0, runs[0]["problems"]
    (run,) = runs
    assert run["server"]["loop"] == "uvloop"
    results = {r["scenario"]: r for r in run["results"]}
    assert set(results) == {
        "bare",
        "status_native",
        "status_open311",
        "submit_native",
        "submit_open311",
    }
    for result in results.values():
        assert result["requests"] > 0
        assert result["non_2xx"] == 0
    for name in ("submit_native", "submit_open311"):
        assert results[name]["accepted"] > 0
        assert results[name]["lost"] == 0
        assert results[name]["stored"] == results[name]["accepted"]
    text = output.read_text()
    assert BEGIN in text
    assert "| status: `GET /api/v1/requests/{code}`" in text
    assert "<!-- bench:begin -->\nx\n<!-- bench:end -->" in text
    assert "after 1 s of the same load that is not counted" in text
    warmups = sorted(p.name for p in (tmp_path / "work" / "sqlite").glob("wrk-*-warmup.txt"))
    assert warmups == [
        "wrk-bare-warmup.txt",
        "wrk-status_native-warmup.txt",
        "wrk-status_open311-warmup.txt",
    ]


def test_expected_datetime_round_trips_in_utc(client, runtime):
    """The orjson path writes the same instant Pydantic did, with `Z`."""
    setup_city(runtime)
    code = submit(runtime, now=datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC))
    body = client.get(f"/api/v1/requests/{code}").json()
    assert body["requested_at"] == "2026-03-02T09:00:00.123456Z"
    expected = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC) + timedelta(days=3)
    assert body["expected_at"] == expected.isoformat().replace("+00:00", "Z")


@pytest.mark.slow
def test_more_concurrent_submissions_than_threads_all_finish(app, runtime):
    """64 submissions at once, more than the thread pool's 40 threads. When the caller was
    resolved in a dependency of its own, a request held SQLite's write lock (or a pooled
    PostgreSQL connection) while it waited for a second thread, and the server stopped
    answering writes until 30 s timeouts; now each submission is one hop."""
    setup_city(runtime)
    staff = make_account(runtime, "staff")
    body = {"service_code": "GRAFFITI", "description": "Tags", "lat": 42.1, "long": -72.6}

    def post(n: int) -> int:
        with httpx.Client(base_url=base, timeout=25.0) as client:
            answer = client.post(
                "/api/v1/requests", json={**body, "description": f"Tags {n}"}, headers=auth(staff)
            )
            return answer.status_code

    with serve_in_thread(app) as base, ThreadPoolExecutor(max_workers=64) as pool:
        statuses = list(pool.map(post, range(64)))
    assert statuses == [201] * 64
    with unit_of_work(runtime.session_factory) as session:
        stored = queries.list_requests(session, queries.RequestFilter(), limit=100)[0]
    assert len(stored) == 64
