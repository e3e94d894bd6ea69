"""The directory over the native API, on SQLite and PostgreSQL: staff edits (audited, scoped to
their organizations), bad input, open-now, search, office status, incidents and queues."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from townhall.audit.models import AuditEntry
from townhall.db import unit_of_work, utcnow
from townhall.directory.models import Ticket, VisitEvent

from .conftest import auth, make_account

HOURS = [{"day": d, "opens": "08:30", "closes": "16:30"} for d in ("MO", "TU", "WE", "TH", "FR")]
# A Tuesday at 10:00 in Boston (EDT, UTC-4), and the same Tuesday evening.
TUESDAY_10AM = "2026-05-05T14:00:00Z"
TUESDAY_8PM = "2026-05-06T00:00:00Z"


@pytest.fixture
def city(client, admin, runtime):
    """Two offices of two organizations, a manager and a clerk at City Hall."""
    for slug, name in [("city-hall", "Riverton City Hall"), ("permits", "Permit Center")]:
        response = client.post(
            "/api/v1/organizations", headers=auth(admin), json={"slug": slug, "name": name}
        )
        assert response.status_code == 201, response.text
    manager = make_account(runtime, "manager", orgs=["city-hall"])
    clerk = make_account(runtime, "staff", orgs=["city-hall"])
    office = {
        "slug": "city-hall",
        "name": "Riverton City Hall",
        "organization": "city-hall",
        "latitude": 42.2249,
        "longitude": -72.6219,
        "address_1": "1 Main Street",
        "city": "Riverton",
        "state_province": "MA",
        "postal_code": "01060",
        "country": "US",
        "timezone": "America/New_York",
        "holiday_country": "US",
        "holiday_subdivision": "MA",
        "desks": 2,
        "phone": "(413) 555-0110",
        "hours": HOURS,
    }
    response = client.post("/api/v1/directory/offices", headers=auth(manager), json=office)
    assert response.status_code == 201, response.text
    annex = {
        **office,
        "slug": "north-annex",
        "name": "North Annex",
        "latitude": 42.26,
        "longitude": -72.62,
        "hours": HOURS[:2],
        "desks": 1,
    }
    response = client.post("/api/v1/directory/offices", headers=auth(manager), json=annex)
    assert response.status_code == 201, response.text
    service = {
        "slug": "birth-certificate",
        "code": "BIRTH_CERT",
        "name": "Birth certificate copy",
        "organization": "city-hall",
        "description": "Certified copy of a birth record.",
        "keywords": ["birth certificate", "vital records", "passport"],
        "categories": ["Civil Records"],
        "life_events": ["Having a baby", "Applying for a passport"],
        "documents": [{"document": "Photo ID"}],
        "cost_options": [{"amount": "15.00", "currency": "USD", "option": "Per copy"}],
        "channels": ["online", "in_person", "mail"],
        "processing_days": 1,
        "steps": ["Fill in the form", "Show your ID", "Pay the fee"],
        "typical_visit_minutes": 10,
        "locations": ["city-hall", "north-annex"],
    }
    response = client.post("/api/v1/directory/services", headers=auth(manager), json=service)
    assert response.status_code == 201, response.text
    dog = {
        "slug": "dog-license",
        "code": "DOG_LICENSE",
        "name": "Dog license",
        "organization": "city-hall",
        "keywords": ["dog", "pet license", "rabies"],
        "categories": ["Pets"],
        "locations": ["city-hall"],
    }
    assert (
        client.post("/api/v1/directory/services", headers=auth(manager), json=dog).status_code
        == 201
    )
    return {"manager": manager, "clerk": clerk, "admin": admin}


def audit_actions(runtime, prefix="directory.") -> list[str]:
    with unit_of_work(runtime.session_factory) as session:
        return list(
            session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.action.startswith(prefix))
                .order_by(AuditEntry.seq)
            )
        )


# Edits --------------------------------------------------------------------------------------


def test_created_service_reads_back_and_every_write_is_audited(client, city, runtime):
    service = client.get("/api/v1/directory/services/birth-certificate").json()
    assert service["categories"] == ["Civil Records"]
    assert service["life_events"] == ["Applying for a passport", "Having a baby"]
    assert service["documents"] == ["Photo ID"]
    assert service["cost_options"][0]["amount"] == "15.00"
    assert service["locations"] == ["city-hall", "north-annex"]
    assert service["organization"] == "city-hall"
    changed = client.patch(
        "/api/v1/directory/services/birth-certificate",
        headers=auth(city["manager"]),
        json={"processing_days": 2, "documents": [{"document": "Photo ID"}, {"document": "Form"}]},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["documents"] == ["Photo ID", "Form"]
    assert audit_actions(runtime) == [
        "directory.organization.create",
        "directory.location.create",
        "directory.location.create",
        "directory.service.create",
        "directory.service.create",
        "directory.service.update",
    ]
    retired = client.delete("/api/v1/directory/services/dog-license", headers=auth(city["manager"]))
    assert retired.json()["status"] == "defunct"
    assert client.get("/api/v1/directory/services/dog-license").status_code == 404


def test_edits_need_directory_edit_for_ones_own_organization(client, city, runtime):
    body = {"name": "Changed"}
    url = "/api/v1/directory/services/birth-certificate"
    assert client.patch(url, json=body).status_code == 401
    assert client.patch(url, json=body, headers=auth(city["clerk"])).status_code == 403
    outsider = make_account(runtime, "manager", orgs=["permits"])
    denied = client.patch(url, json=body, headers=auth(outsider))
    assert denied.status_code == 403
    assert denied.json()["code"] == "permission_denied"
    assert client.get(url).json()["name"] == "Birth certificate copy"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("offices", {"timezone": "Mars/Olympus"}, "timezone"),
        ("offices", {"holiday_country": "XX"}, "holiday_country"),
        (
            "offices",
            {
                "hours": [
                    {"day": "MO", "opens": "09:00", "closes": "12:00"},
                    {"day": "MO", "opens": "11:00", "closes": "14:00"},
                ]
            },
            "hours",
        ),
        ("offices", {"hours": [{"day": "MO", "opens": "09:00", "closes": "09:00"}]}, "hours"),
        ("offices", {"hours": [{"day": "XX", "opens": "09:00", "closes": "10:00"}]}, "day"),
        ("offices", {"latitude": 91, "longitude": 0}, "latitude"),
        ("offices", {"latitude": 42.0}, "latitude"),
        ("services", {"channels": ["carrier pigeon"]}, "channels"),
        ("services", {"minimum_age": 70, "maximum_age": 20}, "minimum_age"),
        ("services", {"locations": ["nowhere"]}, None),
    ],
)
def test_bad_directory_input_is_refused_with_a_clear_error(client, city, path, body, field):
    base = (
        {"slug": "new-office", "name": "New", "organization": "city-hall"}
        if path == "offices"
        else {"slug": "new-service", "name": "New", "organization": "city-hall"}
    )
    response = client.post(
        f"/api/v1/directory/{path}", headers=auth(city["manager"]), json={**base, **body}
    )
    assert response.status_code in (404, 422), response.text
    error = response.json()
    if field is None:
        assert error["code"] == "location_not_found"
    else:
        assert error["code"] == "invalid_request"
        assert field in error["message"] or field in str(error["errors"])


def test_duplicate_slug_is_a_conflict(client, city):
    body = {"slug": "dog-license", "name": "Again", "organization": "city-hall"}
    response = client.post("/api/v1/directory/services", headers=auth(city["manager"]), json=body)
    assert response.status_code == 409


# Hours and status ------------------------------------------------------------------------------


def test_office_open_now_and_next_opening(client, city):
    morning = client.get("/api/v1/directory/offices/city-hall", params={"at": TUESDAY_10AM}).json()
    assert morning["status"]["state"] == "open"
    assert morning["status"]["closes_at"] == "2026-05-05T20:30:00Z"
    evening = client.get("/api/v1/directory/offices/city-hall", params={"at": TUESDAY_8PM}).json()
    assert evening["status"]["state"] == "closed"
    assert evening["status"]["next_opens_at"] == "2026-05-06T12:30:00Z"
    memorial = client.get(
        "/api/v1/directory/offices/city-hall", params={"at": "2026-05-25T14:00:00Z"}
    ).json()
    assert memorial["status"]["closed_reason"] == "holiday: Memorial Day"
    naive = client.get("/api/v1/directory/offices/city-hall", params={"at": "2026-05-05T10:00"})
    assert naive.status_code == 422


def test_exceptions_and_weekly_hours_can_be_changed(client, city, runtime):
    manager = auth(city["manager"])
    added = client.post(
        "/api/v1/directory/offices/city-hall/exceptions",
        headers=manager,
        json={"valid_from": "2026-05-05", "closed": True, "note": "Staff training"},
    )
    assert added.status_code == 201, added.text
    closed = client.get("/api/v1/directory/offices/city-hall", params={"at": TUESDAY_10AM}).json()
    assert closed["status"]["closed_reason"] == "exception: Staff training"
    removed = client.delete(
        f"/api/v1/directory/offices/city-hall/exceptions/{added.json()['id']}", headers=manager
    )
    assert removed.status_code == 204
    bad = client.post(
        "/api/v1/directory/offices/city-hall/exceptions",
        headers=manager,
        json={"valid_from": "2026-05-05", "closed": False},
    )
    assert bad.status_code == 422
    night = client.put(
        "/api/v1/directory/offices/city-hall/hours",
        headers=manager,
        json={"hours": [{"day": "MO", "opens": "22:00", "closes": "02:00"}]},
    )
    assert night.status_code == 200, night.text
    # Monday 22:00 to Tuesday 02:00 local: open at 01:00 Tuesday (05:00 UTC).
    late = client.get(
        "/api/v1/directory/offices/city-hall", params={"at": "2026-05-05T05:00:00Z"}
    ).json()
    assert late["status"]["state"] == "open"
    assert "directory.location.hours" in audit_actions(runtime)


def test_unexpected_closure_needs_a_message_and_ends_on_return(client, city):
    manager = auth(city["manager"])
    url = "/api/v1/directory/offices/city-hall/status"
    missing = client.put(url, headers=manager, json={"condition": "unexpectedly_closed"})
    assert missing.status_code == 422
    assert "message" in missing.json()["message"]
    back = (utcnow() + timedelta(hours=2)).isoformat()
    closed = client.put(
        url,
        headers=manager,
        json={
            "condition": "unexpectedly_closed",
            "message": "Power cut",
            "expected_return_at": back,
        },
    )
    assert closed.status_code == 200, closed.text
    live = client.get("/api/v1/directory/offices/city-hall/live").json()
    assert live["status"]["state"] == "unexpectedly_closed"
    assert live["status"]["message"] == "Power cut"
    later = (utcnow() + timedelta(hours=3)).isoformat()
    after = client.get("/api/v1/directory/offices/city-hall/live", params={"at": later}).json()
    assert after["status"]["state"] != "unexpectedly_closed"
    past = client.put(
        url,
        headers=manager,
        json={"condition": "reduced", "message": "x", "expected_return_at": "2020-01-01T00:00:00Z"},
    )
    assert past.status_code == 422
    reduced = client.put(url, headers=manager, json={"condition": "reduced", "message": "One desk"})
    assert reduced.status_code == 200
    at_ten = client.get("/api/v1/directory/offices/city-hall/live", params={"at": TUESDAY_10AM})
    assert at_ten.json()["status"]["state"] == "reduced"


def test_service_incident_shows_on_offices_until_resolved(client, city):
    manager = auth(city["manager"])
    opened = client.post(
        "/api/v1/directory/services/birth-certificate/incidents",
        headers=manager,
        json={"message": "Printer down until 14:00", "office": "city-hall"},
    )
    assert opened.status_code == 201, opened.text
    live = client.get("/api/v1/directory/offices/city-hall/live").json()
    assert live["incidents"][0]["message"] == "Printer down until 14:00"
    assert client.get("/api/v1/directory/incidents").json()[0]["office"] == "city-hall"
    resolved = client.post(
        f"/api/v1/directory/incidents/{opened.json()['id']}/resolve", headers=manager
    )
    assert resolved.status_code == 200
    assert client.get("/api/v1/directory/offices/city-hall/live").json()["incidents"] == []
    again = client.post(
        f"/api/v1/directory/incidents/{opened.json()['id']}/resolve", headers=manager
    )
    assert again.status_code == 404


# Search ---------------------------------------------------------------------------------------


def test_search_by_words_with_typos_and_browse_by_category(client, city):
    found = client.get("/api/v1/directory/services", params={"q": "birth certficate"}).json()
    assert [s["slug"] for s in found["items"]] == ["birth-certificate"]
    synonym = client.get("/api/v1/directory/services", params={"q": "rabies"}).json()
    assert [s["slug"] for s in synonym["items"]] == ["dog-license"]
    by_category = client.get("/api/v1/directory/services", params={"category": "pets"}).json()
    assert [s["slug"] for s in by_category["items"]] == ["dog-license"]
    by_event = client.get(
        "/api/v1/directory/services", params={"life_event": "having-a-baby"}
    ).json()
    assert [s["slug"] for s in by_event["items"]] == ["birth-certificate"]
    nothing = client.get("/api/v1/directory/services", params={"q": "zzzz qqqq"}).json()
    assert nothing["total"] == 0


def test_offices_for_a_service_put_open_and_near_first(client, city):
    # Wednesday 10:00: both open (the annex only opens Monday and Tuesday).
    offices = client.get(
        "/api/v1/directory/services/birth-certificate/offices",
        params={"lat": 42.26, "lon": -72.62, "at": TUESDAY_10AM},
    ).json()
    assert [o["office"] for o in offices] == ["north-annex", "city-hall"]
    assert offices[0]["distance_km"] == 0.0
    wednesday = client.get(
        "/api/v1/directory/services/birth-certificate/offices",
        params={"lat": 42.26, "lon": -72.62, "at": "2026-05-06T14:00:00Z"},
    ).json()
    assert [o["office"] for o in wednesday] == ["city-hall", "north-annex"]
    assert wednesday[1]["status"]["state"] == "closed"
    half = client.get("/api/v1/directory/services/birth-certificate/offices", params={"lat": 42.0})
    assert half.status_code == 422


# Queues -----------------------------------------------------------------------------------------


def visit(client, account, **body):
    return client.post(
        "/api/v1/directory/offices/city-hall/visits", headers=auth(account), json=body
    )


def test_queue_events_give_waiting_wait_and_served_today(client, city, runtime):
    clerk = city["clerk"]
    now = utcnow()
    for n in range(4):
        response = visit(
            client,
            clerk,
            event_id=f"e-issue-{n}",
            type="issued",
            ticket=f"B{n:03d}",
            service="BIRTH_CERT",
            occurred_at=(now - timedelta(minutes=30 - n)).isoformat(),
        )
        assert response.status_code == 200, response.text
    queue = response.json()["queue"]
    birth = next(q for q in queue if q["service"] == "birth-certificate")
    assert birth["waiting"] == 4
    # No visits yet: the typical 10 minutes, two desks -> 4 * 10 / 2.
    assert birth["estimated_wait_minutes"] == 20
    called = visit(
        client,
        clerk,
        event_id="e-call-0",
        type="called",
        ticket="B000",
        desk="1",
        occurred_at=(now - timedelta(minutes=20)).isoformat(),
    )
    assert called.json()["ticket"]["state"] == "called"
    served = visit(
        client,
        clerk,
        event_id="e-serve-0",
        type="served",
        ticket="B000",
        occurred_at=(now - timedelta(minutes=16)).isoformat(),
    )
    birth = next(q for q in served.json()["queue"] if q["service"] == "birth-certificate")
    assert birth["waiting"] == 3
    assert birth["served_today"] == 1
    assert birth["average_visit_minutes"] == 4.0
    # One desk called recently: 3 waiting * 4 minutes / 1 desk.
    assert birth["estimated_wait_minutes"] == 12
    live = client.get("/api/v1/directory/offices/city-hall/live").json()
    assert live["waiting"] == 3
    assert live["served_today"] == 1


def test_queue_events_are_idempotent_and_conflicts_refused(client, city, runtime):
    clerk = city["clerk"]
    body = {
        "event_id": "kiosk-1-0001",
        "type": "issued",
        "ticket": "A001",
        "service": "dog-license",
    }
    first = visit(client, clerk, **body)
    assert first.json()["duplicate"] is False
    at = first.json()["ticket"]["issued_at"]
    again = visit(client, clerk, **body, occurred_at=at)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    reused = visit(client, clerk, **{**body, "ticket": "A002"})
    assert reused.status_code == 409
    reissued = visit(client, clerk, **{**body, "event_id": "kiosk-1-0002"})
    assert reissued.status_code == 409, "the same ticket number twice in one day"
    with unit_of_work(runtime.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(VisitEvent)) == 1
        assert session.scalar(select(func.count()).select_from(Ticket)) == 1


def test_queue_events_out_of_order_end_in_the_same_state(client, city, runtime):
    clerk = city["clerk"]
    base = utcnow() - timedelta(minutes=30)
    events = [
        {
            "event_id": "o-3",
            "type": "served",
            "ticket": "C001",
            "occurred_at": base + timedelta(minutes=9),
        },
        {
            "event_id": "o-2",
            "type": "called",
            "ticket": "C001",
            "desk": "2",
            "occurred_at": base + timedelta(minutes=5),
        },
        {
            "event_id": "o-1",
            "type": "issued",
            "ticket": "C001",
            "service": "birth-certificate",
            "occurred_at": base,
        },
    ]
    for event in events:
        response = visit(
            client, clerk, **{**event, "occurred_at": event["occurred_at"].isoformat()}
        )
        assert response.status_code == 200, response.text
    ticket = response.json()["ticket"]
    assert ticket["state"] == "served"
    assert ticket["service"] == "birth-certificate"
    assert ticket["desk"] == "2"
    birth = next(q for q in response.json()["queue"] if q["service"] == "birth-certificate")
    assert birth["average_visit_minutes"] == 4.0
    assert birth["waiting"] == 0


def test_transfer_moves_the_ticket_to_the_other_queue(client, city):
    clerk = city["clerk"]
    start = utcnow() - timedelta(minutes=10)
    visit(
        client,
        clerk,
        event_id="t-1",
        type="issued",
        ticket="D001",
        service="birth-certificate",
        occurred_at=start.isoformat(),
    )
    visit(
        client,
        clerk,
        event_id="t-2",
        type="called",
        ticket="D001",
        desk="1",
        occurred_at=(start + timedelta(minutes=1)).isoformat(),
    )
    moved = visit(
        client,
        clerk,
        event_id="t-3",
        type="transferred",
        ticket="D001",
        service="birth-certificate",
        to_service="dog-license",
        occurred_at=(start + timedelta(minutes=2)).isoformat(),
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["ticket"]["state"] == "waiting"
    assert moved.json()["ticket"]["service"] == "dog-license"
    queues = {q["service"]: q["waiting"] for q in moved.json()["queue"]}
    assert queues == {"birth-certificate": 0, "dog-license": 1}
    same = visit(
        client,
        clerk,
        event_id="t-4",
        type="transferred",
        ticket="D001",
        service="dog-license",
        to_service="dog-license",
    )
    assert same.status_code == 422


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"type": "issued", "ticket": "Z1", "service": "no-such-service"}, 404),
        ({"type": "issued", "ticket": "Z1"}, 422),
        ({"type": "transferred", "ticket": "Z1"}, 422),
        (
            {
                "type": "issued",
                "ticket": "Z1",
                "service": "dog-license",
                "occurred_at": "2099-01-01T00:00:00Z",
            },
            422,
        ),
        (
            {
                "type": "issued",
                "ticket": "Z1",
                "service": "dog-license",
                "occurred_at": "2020-01-01T00:00:00Z",
            },
            422,
        ),
        (
            {
                "type": "issued",
                "ticket": "Z1",
                "service": "dog-license",
                "occurred_at": "2026-05-01T10:00:00",
            },
            422,
        ),
        ({"type": "eaten", "ticket": "Z1"}, 422),
        ({"type": "issued", "ticket": "Z 1; DROP", "service": "dog-license"}, 422),
    ],
)
def test_bad_queue_events_are_refused(client, city, body, status):
    response = visit(client, city["clerk"], event_id="bad-1", **body)
    assert response.status_code == status, response.text


def test_queue_events_need_queues_operate_at_that_office(client, city, runtime):
    body = {"event_id": "p-1", "type": "issued", "ticket": "A1", "service": "dog-license"}
    assert client.post("/api/v1/directory/offices/city-hall/visits", json=body).status_code == 401
    elsewhere = make_account(runtime, "staff", orgs=["permits"])
    assert visit(client, elsewhere, **body).status_code == 403
    assert visit(client, city["admin"], **body).status_code == 200


def test_counter_issues_and_calls_the_longest_waiting_first(client, city):
    clerk = auth(city["clerk"])
    url = "/api/v1/directory/offices/city-hall"
    first = client.post(f"{url}/tickets", headers=clerk, json={"service": "birth-certificate"})
    second = client.post(f"{url}/tickets", headers=clerk, json={"service": "dog-license"})
    assert first.status_code == 201, first.text
    assert first.json()["ticket"]["ticket"] == "B001"
    assert second.json()["ticket"]["ticket"] == "D002"
    called = client.post(f"{url}/call-next", headers=clerk, json={"desk": "3"})
    assert called.json()["ticket"]["ticket"] == "B001"
    only_dogs = client.post(
        f"{url}/call-next", headers=clerk, json={"desk": "3", "services": ["dog-license"]}
    )
    assert only_dogs.json()["ticket"]["ticket"] == "D002"
    assert client.post(f"{url}/call-next", headers=clerk, json={"desk": "3"}).json() is None


def test_status_board_lists_every_office(client, city):
    board = client.get("/api/v1/directory/status", params={"at": TUESDAY_10AM}).json()
    assert {o["office"]: o["status"]["state"] for o in board} == {
        "city-hall": "open",
        "north-annex": "open",
    }
    assert datetime.fromisoformat(board[0]["at"]) == datetime(2026, 5, 5, 14, tzinfo=UTC)


def test_a_retried_event_without_occurred_at_is_a_duplicate_not_a_conflict(client, city, runtime):
    """A kiosk that does not send occurred_at and retries seconds later: the event time
    defaults to arrival, so the retry arrives with another time and used to be a 409."""
    clerk = city["clerk"]
    body = {"event_id": "kiosk-2-0001", "type": "issued", "ticket": "A001",
            "service": "dog-license"}  # fmt: skip
    assert visit(client, clerk, **body).json()["duplicate"] is False
    with unit_of_work(runtime.session_factory) as session:
        stored = session.scalar(select(VisitEvent))
        stored.occurred_at -= timedelta(seconds=20)  # as if the retry came 20 s later
    again = visit(client, clerk, **body)
    assert again.status_code == 200, again.text
    assert again.json()["duplicate"] is True
    assert visit(client, clerk, **{**body, "type": "called"}).status_code == 409
    with unit_of_work(runtime.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(VisitEvent)) == 1
        assert session.scalar(select(func.count()).select_from(Ticket)) == 1


def test_kiosk_ticket_and_call_retries_with_an_idempotency_key(client, city, runtime):
    clerk = city["clerk"]
    tickets = "/api/v1/directory/offices/city-hall/tickets"

    def press(key: str | None, service: str = "dog-license"):
        headers = {**auth(clerk), **({"Idempotency-Key": key} if key else {})}
        return client.post(tickets, headers=headers, json={"service": service})

    first = press("kiosk1-press-0001")
    assert first.status_code == 201, first.text
    retry = press("kiosk1-press-0001")
    assert retry.status_code == 200
    assert retry.json()["duplicate"] is True
    assert retry.json()["ticket"]["ticket"] == first.json()["ticket"]["ticket"]
    assert retry.json()["event_id"] == first.json()["event_id"]
    other = press("kiosk1-press-0002")
    assert other.status_code == 201
    assert other.json()["ticket"]["ticket"] != first.json()["ticket"]["ticket"]
    misused = press("kiosk1-press-0001", service="birth-certificate")
    assert misused.status_code == 409
    assert misused.json()["code"] == "conflict"
    bad = press("no spaces allowed")
    assert bad.status_code == 422
    assert "Idempotency-Key" in str(bad.json()["errors"])
    dog = next(q for q in retry.json()["queue"] if q["service"] == "dog-license")
    assert dog["waiting"] == 1, "the retry did not issue a second ticket"

    call = "/api/v1/directory/offices/city-hall/call-next"
    keyed = {**auth(clerk), "Idempotency-Key": "desk3-call-0001"}
    called = client.post(call, headers=keyed, json={"desk": "3"})
    assert called.status_code == 200, called.text
    called_again = client.post(call, headers=keyed, json={"desk": "3"})
    assert called_again.json()["duplicate"] is True
    assert called_again.json()["ticket"]["ticket"] == called.json()["ticket"]["ticket"]
    other_desk = client.post(call, headers=keyed, json={"desk": "4"})
    assert other_desk.status_code == 409
    with unit_of_work(runtime.session_factory) as session:
        states = sorted(session.scalars(select(Ticket.state)))
    assert states == ["called", "waiting"], "one call, one person still waiting"
