"""Open311 GeoReport v2 at /open311/v2/, checked against the spec's schemas and examples in
../shared/standards/open311-georeport-v2/ and with a real client from PyPI (`georeport`)
against a live server. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from jsonschema import Draft7Validator
from referencing import Registry, Resource

from townhall.actor import ANONYMOUS, system_actor
from townhall.db import unit_of_work, utcnow
from townhall.service_requests import actions

from .conftest import SHARED_DIR, make_account
from .test_service_requests import setup_city

STANDARD = SHARED_DIR / "standards" / "open311-georeport-v2"
SCHEMAS = {
    name: json.loads((STANDARD / "schema" / name).read_text())
    for name in ("request.json", "requests.json", "service.json", "services.json",
                 "service-definition.json")
}  # fmt: skip
REGISTRY = Registry().with_resources(
    (name, Resource.opaque(schema)) for name, schema in SCHEMAS.items()
)
ZONED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
BASE = "/open311/v2"


def validate(document, schema_name: str) -> None:
    Draft7Validator(SCHEMAS[schema_name], registry=REGISTRY).validate(document)


def tag_paths(element: ET.Element, prefix: str = "") -> set[str]:
    path = f"{prefix}/{element.tag}" if prefix else element.tag
    paths = {path}
    for child in element:
        paths |= tag_paths(child, path)
    return paths


def example_paths(name: str) -> set[str]:
    return tag_paths(ET.parse(STANDARD / "spec-examples" / name).getroot())


@pytest.fixture
def city(runtime):
    setup_city(runtime)
    with unit_of_work(runtime.session_factory) as session:
        actions.create_service(
            session,
            actor=system_actor("test"),
            code="PERMIT_Q",
            name="Permit question",
            service_type="batch",
            location_required=False,
            service_notice="We answer permit questions within ten working days.",
        )
    return runtime


@pytest.fixture
def api_key(city) -> str:
    return make_account(city, "partner", scopes=["open311:submit"]).token


def post(client, data, fmt="json", **kwargs):
    """Form-encode like a client would; a list of pairs allows repeated keys."""
    pairs = list(data.items()) if isinstance(data, dict) else data
    return client.post(
        f"{BASE}/requests.{fmt}",
        content=urlencode(pairs),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        **kwargs,
    )


def submit_old(runtime, days_ago: float, **fields) -> str:
    values = {"service_code": "GRAFFITI", "lat": 42.1, "long": -72.6}
    values.update(fields)
    with unit_of_work(runtime.session_factory) as session:
        return actions.submit_request(
            session,
            actor=ANONYMOUS,
            submission=actions.Submission(**values),
            now=utcnow() - timedelta(days=days_ago),
        ).request.tracking_code


# Discovery and services ----------------------------------------------------------------------


def test_discovery_points_at_the_v2_endpoint(client, city) -> None:
    response = client.get("/open311/discovery.json")
    assert response.status_code == 200
    doc = response.json()
    [endpoint] = doc["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"].endswith("/open311/v2")
    assert set(endpoint["formats"]) == {"application/json", "text/xml"}
    assert ZONED.match(doc["changeset"])
    xml = client.get("/open311/discovery.xml")
    assert ET.fromstring(xml.content).find("endpoints/endpoint/url") is not None


def test_service_list_matches_the_schema_and_the_spec_example(client, city) -> None:
    response = client.get(f"{BASE}/services.json")
    assert response.status_code == 200
    services = response.json()
    validate(services, "services.json")
    pothole = next(s for s in services if s["service_code"] == "POTHOLE")
    assert pothole == {
        "service_code": "POTHOLE",
        "service_name": "Pothole repair",
        "description": "A hole in the road.",
        "metadata": True,
        "type": "realtime",
        "keywords": "pothole, road",
        "group": "Streets",
    }
    assert next(s for s in services if s["service_code"] == "PERMIT_Q")["type"] == "batch"
    xml = client.get(f"{BASE}/services.xml")
    assert xml.headers["content-type"].startswith("text/xml")
    assert tag_paths(ET.fromstring(xml.content)) == example_paths("service-list.xml")


def test_service_definition_has_every_datatype(client, city) -> None:
    response = client.get(f"{BASE}/services/POTHOLE.json")
    assert response.status_code == 200
    definition = response.json()
    validate(definition, "service-definition.json")
    datatypes = {a["datatype"] for a in definition["attributes"]}
    assert datatypes == set(actions.DATATYPES)
    size = definition["attributes"][0]
    assert size == {
        "variable": True,
        "code": "SIZE",
        "datatype": "singlevaluelist",
        "required": True,
        "datatype_description": None,
        "order": 1,
        "description": "How big is it?",
        "values": [
            {"key": "small", "name": "Smaller than a plate"},
            {"key": "large", "name": "Larger than a plate"},
        ],
    }
    assert [a["order"] for a in definition["attributes"]] == sorted(
        a["order"] for a in definition["attributes"]
    )
    spec = json.loads((STANDARD / "spec-examples" / "service-definition.json").read_text())
    assert set(size) == set(spec["attributes"][0])
    xml = client.get(f"{BASE}/services/POTHOLE.xml")
    assert tag_paths(ET.fromstring(xml.content)) >= example_paths("service-definition.xml")
    missing = client.get(f"{BASE}/services/NOPE.json")
    assert missing.status_code == 404
    assert missing.json() == [{"code": 404, "description": "service_code 'NOPE' was not found."}]


# Submitting ----------------------------------------------------------------------------------


def test_post_a_request_form_encoded_with_attributes(client, city, api_key) -> None:
    response = post(
        client,
        [
            ("api_key", api_key),
            ("service_code", "POTHOLE"),
            ("lat", "42.2187"),
            ("long", "-72.6153"),
            ("address_string", "12 Elm Street"),
            ("description", "Deep hole. Call me on 413-555-0123 or ann@example.org"),
            ("first_name", "Ann"),
            ("last_name", "Lee"),
            ("email", "ann@example.org"),
            ("phone", "413-555-0123"),
            ("attribute[SIZE]", "large"),
            ("attribute[HAZARDS][]", "water"),
            ("attribute[HAZARDS][]", "traffic"),
            ("attribute[DEPTH_CM]", "14"),
            ("attribute[SEEN_AT]", "2026-03-01T08:00:00-05:00"),
        ],
    )
    assert response.status_code == 200, response.text
    [created] = response.json()
    assert set(created) == {"service_request_id", "service_notice", "account_id"}
    code = created["service_request_id"]
    assert isinstance(code, str)
    assert actions.TRACKING_CODE.match(code)

    [request] = client.get(f"{BASE}/requests/{code}.json").json()
    validate([request], "requests.json")
    assert request["service_request_id"] == code
    assert request["status"] == "open"
    assert request["service_code"] == "POTHOLE"
    assert request["agency_responsible"] == "Public Works"
    assert request["lat"] == pytest.approx(42.2187)
    for name in ("requested_datetime", "updated_datetime", "expected_datetime"):
        assert ZONED.match(request[name]), name
    text = json.dumps(request)
    for personal in ("ann@example.org", "555-0123", "Ann", "Lee"):
        assert personal not in text, f"{personal} leaked into Open311 output"
    assert "[phone removed]" in request["description"]

    [extended] = client.get(f"{BASE}/requests/{code}.json?extensions=true").json()
    answers = {a["code"]: a["value"] for a in extended["extended_attributes"]["answers"]}
    assert answers["HAZARDS"] == ["water", "traffic"]
    assert answers["SIZE"] == "large"


@pytest.mark.parametrize(
    ("location", "ok"),
    [
        ({"lat": "42.1", "long": "-72.6"}, True),
        ({"address_string": "Main St & 5th Ave"}, True),
        ({"address_id": "545483"}, True),
        ({}, False),
        ({"lat": "42.1"}, False),
        ({"lat": "north", "long": "-72.6"}, False),
    ],
)
def test_one_location_is_required(client, city, api_key, location, ok) -> None:
    response = post(client, {"api_key": api_key, "service_code": "GRAFFITI", **location})
    if ok:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 400
        [error] = response.json()
        assert error["code"] == 400
        assert error["description"]


def test_api_key_is_required_and_must_carry_the_scope(client, city) -> None:
    data = {"service_code": "GRAFFITI", "lat": "42.1", "long": "-72.6"}
    missing = post(client, data)
    assert missing.status_code == 403
    assert missing.json() == [{"code": 403, "description": "api_key was not provided."}]
    assert post(client, {**data, "api_key": "th_nonsense"}).status_code == 403
    reader = make_account(city, "partner", scopes=["account:read"])
    refused = post(client, {**data, "api_key": reader.token})
    assert refused.status_code == 403
    assert "open311:submit" in refused.json()[0]["description"]
    in_query = client.post(
        f"{BASE}/requests.json?api_key={make_account(city, 'staff').token}", data=data
    )
    assert in_query.status_code == 200


@pytest.mark.parametrize(
    ("data", "status", "words"),
    [
        ({"lat": "42.1", "long": "-72.6"}, 400, "service_code was not provided"),
        ({"service_code": "NOPE", "lat": "42.1", "long": "-72.6"}, 404, "No service NOPE"),
        ({"service_code": "POTHOLE", "lat": "42.1", "long": "-72.6"}, 400, "attribute.SIZE"),
        ({"service_code": "POTHOLE", "lat": "42.1", "long": "-72.6",
          "attribute[SIZE]": "enormous"}, 400, "not one of the listed keys"),
        ({"service_code": "POTHOLE", "lat": "42.1", "long": "-72.6", "attribute[SIZE]": "small",
          "attribute[DEPTH_CM]": "deep"}, 400, "not a number"),
        ({"service_code": "GRAFFITI", "lat": "42.1", "long": "-72.6",
          "jurisdiction_id": "elsewhere.example"}, 404, "jurisdiction_id"),
    ],
)  # fmt: skip
def test_errors_keep_the_spec_shape(client, city, api_key, data, status, words) -> None:
    response = post(client, {"api_key": api_key, **data})
    assert response.status_code == status
    errors = response.json()
    assert isinstance(errors, list)
    assert errors[0]["code"] == status
    assert words in errors[0]["description"]
    xml = post(client, {"api_key": api_key, **data}, fmt="xml")
    assert xml.status_code == status
    root = ET.fromstring(xml.content)
    assert root.tag == "errors"
    assert root.find("error/code").text == str(status)
    assert words in root.find("error/description").text


def test_json_bodies_are_refused_with_the_spec_shape(client, city, api_key) -> None:
    response = client.post(f"{BASE}/requests.json", json={"service_code": "GRAFFITI"})
    assert response.status_code == 400
    assert "form" in response.json()[0]["description"]


def test_batch_services_answer_with_a_token(client, city, api_key) -> None:
    response = post(client, {"api_key": api_key, "service_code": "PERMIT_Q",
                             "description": "Do I need a permit for a fence?"})  # fmt: skip
    assert response.status_code == 200, response.text
    [created] = response.json()
    assert "service_request_id" not in created
    assert created["service_notice"].startswith("We answer permit questions")
    token = created["token"]
    [resolved] = client.get(f"{BASE}/tokens/{token}.json").json()
    assert resolved["token"] == token
    assert isinstance(resolved["service_request_id"], str)
    xml = client.get(f"{BASE}/tokens/{token}.xml")
    assert tag_paths(ET.fromstring(xml.content)) == example_paths("request-from-token.xml")
    assert client.get(f"{BASE}/tokens/unknown.json").status_code == 404


def test_post_answers_in_xml_like_the_spec_example(client, city, api_key) -> None:
    response = post(client, {"api_key": api_key, "service_code": "GRAFFITI",
                             "address_string": "Bridge"}, fmt="xml")  # fmt: skip
    assert response.status_code == 200
    assert tag_paths(ET.fromstring(response.content)) == example_paths("service-request-post.xml")


# Reading -------------------------------------------------------------------------------------


def test_get_requests_defaults_to_the_last_90_days(client, city) -> None:
    recent = submit_old(city, 1)
    old = submit_old(city, 120)
    codes = [r["service_request_id"] for r in client.get(f"{BASE}/requests.json").json()]
    assert recent in codes
    assert old not in codes
    # service_request_id overrides every other filter, the window included.
    both = client.get(f"{BASE}/requests.json?service_request_id={recent},{old}").json()
    assert {r["service_request_id"] for r in both} == {recent, old}


def test_get_requests_filters(client, city) -> None:
    now = utcnow()
    graffiti = submit_old(city, 2)
    pothole = submit_old(city, 3, service_code="POTHOLE", attributes={"SIZE": ["small"]})
    far = submit_old(city, 4, lat=42.3, long=-72.6)
    closed = submit_old(city, 5)
    with unit_of_work(city.session_factory) as session:
        actions.transition(session, actor=system_actor("t"), code=closed, to="resolved",
                           public_note="Cleaned.")  # fmt: skip

    def codes(query: str) -> list[str]:
        response = client.get(f"{BASE}/requests.json?{query}")
        assert response.status_code == 200, response.text
        validate(response.json(), "requests.json") if response.json() else None
        return [r["service_request_id"] for r in response.json()]

    assert codes("service_code=POTHOLE") == [pothole]
    assert set(codes("service_code=POTHOLE,GRAFFITI")) == {graffiti, pothole, far, closed}
    assert codes("status=closed") == [closed]
    assert set(codes("status=open,closed")) == {graffiti, pothole, far, closed}
    start = (now - timedelta(days=3, hours=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (now - timedelta(days=1)).isoformat()
    assert set(codes(f"start_date={start}&end_date={end.replace('+', '%2B')}")) == {
        graffiti,
        pothole,
    }
    # An unencoded '+' arrives as a space; it is read as the '+' it was.
    assert set(codes(f"start_date={start}&end_date={end}")) == {graffiti, pothole}
    assert codes("lat=42.1&long=-72.6&radius=1000&status=open") == [graffiti, pothole]
    assert codes("page_size=2") == [graffiti, pothole]
    assert codes("page_size=2&page=2") == [far, closed]
    assert codes(
        f"updated_after={(now - timedelta(minutes=5)).isoformat().replace('+', '%2B')}"
    ) == [closed]
    assert codes("jurisdiction_id=127.0.0.1") == [graffiti, pothole, far, closed]


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("status=pending", "status"),
        ("start_date=yesterday", "start_date"),
        ("start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z", "90 days"),
        ("start_date=2026-02-01T00:00:00Z&end_date=2026-01-01T00:00:00Z", "after"),
        ("page_size=5000", "page_size"),
        ("page=0", "page"),
        ("lat=42", "lat and long"),
        ("jurisdiction_id=elsewhere.example", "jurisdiction_id"),
    ],
)
def test_bad_filters_get_400_or_404_in_the_spec_shape(client, city, query, words) -> None:
    response = client.get(f"{BASE}/requests.json?{query}")
    assert response.status_code in (400, 404)
    [error] = response.json()
    assert error["code"] == response.status_code
    assert words in error["description"]


def test_extensions_give_the_public_notes_history(client, city) -> None:
    code = submit_old(city, 1, description="Tag on the wall. I'm Bo Chan, call 413-555-0199.")
    with unit_of_work(city.session_factory) as session:
        actor = system_actor("t")
        actions.transition(
            session,
            actor=actor,
            code=code,
            to="in_progress",
            public_note="Crew scheduled.",
            internal_note="Use the big sprayer.",
        )
        actions.transition(session, actor=actor, code=code, to="resolved", public_note="Done.")
    [plain] = client.get(f"{BASE}/requests/{code}.json").json()
    assert "extended_attributes" not in plain
    assert plain["status"] == "closed"
    assert plain["status_notes"] == "Done."
    [full] = client.get(f"{BASE}/requests/{code}.json?extensions=true").json()
    extended = full["extended_attributes"]
    assert extended["sub_status"] == "resolved"
    assert [n["description"] for n in extended["notes"]] == [None, "Crew scheduled.", "Done."]
    assert "big sprayer" not in json.dumps(full)
    assert "Bo Chan" not in json.dumps(full)
    assert "555-0199" not in json.dumps(full)
    for note in extended["notes"]:
        assert ZONED.match(note["datetime"])
    xml = client.get(f"{BASE}/requests/{code}.xml?extensions=true")
    root = ET.fromstring(xml.content)
    assert [n.findtext("description") for n in root.iter("note")] == [
        "",
        "Crew scheduled.",
        "Done.",
    ]


def test_request_xml_matches_the_spec_example(client, city) -> None:
    first = submit_old(city, 1, media_url="https://example.org/photo.jpg")
    submit_old(city, 2)
    one = client.get(f"{BASE}/requests/{first}.xml")
    assert one.status_code == 200
    assert tag_paths(ET.fromstring(one.content)) == example_paths("service-request.xml")
    many = client.get(f"{BASE}/requests.xml")
    assert tag_paths(ET.fromstring(many.content)) == example_paths("service-requests.xml")
    root = ET.fromstring(many.content)
    assert len(root.findall("request")) == 2
    assert root.find("request/media_url").text == "https://example.org/photo.jpg"
    assert client.get(f"{BASE}/request/{first}.json").status_code == 200  # swagger spelling


def test_unknown_format_and_request(client, city) -> None:
    assert client.get(f"{BASE}/services.csv").status_code == 404
    response = client.get(f"{BASE}/requests/TH-NOPE1234.json")
    assert response.status_code == 404
    assert response.json()[0]["code"] == 404
    assert client.get(f"{BASE}/nothing-here.json").json()[0]["code"] == 404


def test_hidden_requests_are_not_served(client, city) -> None:
    code = submit_old(city, 1)
    with unit_of_work(city.session_factory) as session:
        actions.set_hidden(session, actor=system_actor("t"), code=code, hidden=True)
    assert client.get(f"{BASE}/requests/{code}.json").status_code == 404
    assert client.get(f"{BASE}/requests.json").json() == []


# A real client -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def live_server(app, city):
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_a_georeport_client_session(live_server, city, api_key) -> None:
    """Discover, list, define, submit, track, list with filters: the issue's "done when"."""
    from georeport import GeoReport

    discovery = httpx.get(f"{live_server}/open311/discovery.json").json()
    root = discovery["endpoints"][0]["url"].replace("http://127.0.0.1:8000", live_server)
    for fmt in ("json", "xml"):
        client = GeoReport(root, jurisdiction="127.0.0.1", api_key=api_key, output_format=fmt)
        services = client.get_service_list()
        assert {s["service_code"] for s in services} >= {"POTHOLE", "GRAFFITI"}
        definition = client.get_service_definition("POTHOLE")
        assert definition["service_code"] == "POTHOLE"
        # georeport has no POST: clients post the form themselves, as the spec describes.
        posted = httpx.post(
            f"{root}/requests.json",
            data={"api_key": client.api_key, "jurisdiction_id": "127.0.0.1",
                  "service_code": "GRAFFITI", "lat": "42.1", "long": "-72.6",
                  "description": f"Tags ({fmt})"},
        )  # fmt: skip
        assert posted.status_code == 200, posted.text
        code = posted.json()[0]["service_request_id"]
        tracked = client.get_service_request(code)
        assert tracked["service_request_id"] == code
        assert tracked["status"] == "open"
        start = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        listed = client.get_service_requests(
            service_code="GRAFFITI", status="open", start_date=start
        )
        listed = listed if isinstance(listed, list) else [listed]
        assert code in {r["service_request_id"] for r in listed}
