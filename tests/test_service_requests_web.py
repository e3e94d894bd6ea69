"""Service request pages: the resident's form, tracking page (live over SSE) and messages;
the staff work queue and request page; the native JSON API. Both backends.
"""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from townhall.actor import ANONYMOUS, system_actor
from townhall.db import unit_of_work, utcnow
from townhall.notify.models import NotifyMessage, NotifySubscription
from townhall.service_requests import actions, queries
from townhall.service_requests.models import RequestMessage, ServiceRequest

from .conftest import auth, csrf_from, login, make_account, serve_in_thread
from .test_events import open_stream
from .test_service_requests import setup_city

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
PERSONAL = ("Ann Lee", "ann@example.org", "413-555-0147")


@pytest.fixture
def city(runtime):
    setup_city(runtime)
    return runtime


def form_page(client, service="GRAFFITI"):
    page = client.get(f"/requests/new?service={service}", headers=BROWSER)
    assert page.status_code == 200
    return page


def submit_form(client, **fields):
    page = form_page(client, fields.get("service_code", "GRAFFITI"))
    data = {
        "csrf_token": csrf_from(page.text),
        "service_code": "GRAFFITI",
        "description": "Tags on the bridge. Call me at 413-555-0147. - Ann Lee",
        "address": "Old Bridge",
        "lat": "42.1",
        "long": "-72.6",
        "name": "Ann Lee",
        "email": "ann@example.org",
        "phone": "413-555-0147",
        "website": "",
    }
    data.update(fields)
    return client.post("/requests/new", data=data, headers=BROWSER, follow_redirects=False)


def created_code(response) -> str:
    assert response.status_code == 303, response.text
    match = re.match(r"^/requests/([A-Z0-9-]+)\?created=1$", response.headers["location"])
    assert match, response.headers["location"]
    return match.group(1)


def stranger(client) -> TestClient:
    """Another browser: same app, no cookies."""
    return TestClient(client.app, base_url="http://testserver")


def count_requests(runtime) -> int:
    with unit_of_work(runtime.session_factory) as session:
        return session.scalar(select(func.count()).select_from(ServiceRequest)) or 0


# Residents -----------------------------------------------------------------------------------


def test_the_index_lists_request_types_and_recent_requests(client, city) -> None:
    page = client.get("/requests", headers=BROWSER)
    assert page.status_code == 200
    assert "Pothole repair" in page.text
    assert "/requests/new?service=POTHOLE" in page.text


def test_resident_submits_without_an_account_and_tracks_it(client, city) -> None:
    page = form_page(client, "POTHOLE")
    for attribute in ("attribute[SIZE]", "attribute[HAZARDS][]", "attribute[DEPTH_CM]"):
        assert f'name="{attribute}"' in page.text
    code = created_code(submit_form(client))
    tracking = client.get(f"/requests/{code}?created=1", headers=BROWSER)
    assert tracking.status_code == 200
    assert code in tracking.text
    assert "Received" in tracking.text
    assert "[phone removed]" in tracking.text
    assert "Messages with the office" in tracking.text, "the submitting browser is the resident"
    # Someone else (no cookie) sees the public page only, with nothing personal on it.
    public = stranger(client).get(f"/requests/{code}", headers=BROWSER)
    assert public.status_code == 200
    assert "Messages with the office" not in public.text
    for personal in PERSONAL:
        assert personal not in public.text
        assert personal not in tracking.text
    with unit_of_work(city.session_factory) as session:
        request = queries.request_by_code(session, code)
        assert request.channel == "web"
        assert request.resident_email == "ann@example.org"
        message = session.scalar(select(NotifyMessage))
        assert message.template_slug == "request.acknowledgement"
        assert code in message.body


def test_bad_input_is_shown_on_the_form(client, city) -> None:
    response = submit_form(client, service_code="POTHOLE")
    assert response.status_code == 400
    assert "There is a problem" in response.text
    assert "SIZE" in response.text
    assert 'value="Old Bridge"' in response.text, "what was typed is kept"
    assert count_requests(city) == 0


def test_the_honeypot_swallows_bots(client, city) -> None:
    response = submit_form(client, website="http://spam.example")
    assert response.status_code == 303
    assert response.headers["location"] == "/requests?received=1"
    assert count_requests(city) == 0


def test_form_without_csrf_is_refused(client, city) -> None:
    form_page(client)
    response = client.post(
        "/requests/new", data={"service_code": "GRAFFITI", "address": "x"}, headers=BROWSER
    )
    assert response.status_code == 403
    assert count_requests(city) == 0


def test_nearby_open_requests_are_offered_before_a_duplicate(client, city) -> None:
    first = created_code(submit_form(client))
    second = submit_form(client, lat="42.1003", long="-72.6002", email="bo@example.org")
    assert second.status_code == 200
    assert "Already reported nearby?" in second.text
    assert first in second.text
    assert count_requests(city) == 1
    follow = client.post(
        f"/requests/{first}/follow",
        data={"csrf_token": csrf_from(second.text), "email": "bo@example.org"},
        headers=BROWSER,
        follow_redirects=False,
    )
    assert follow.status_code == 303
    with unit_of_work(city.session_factory) as session:
        topics = session.scalars(
            select(NotifySubscription.topic).where(NotifySubscription.target == "bo@example.org")
        ).all()
        assert topics == [f"request:{first}"]
    # Or the resident insists: it is a different problem.
    anyway = submit_form(client, lat="42.1003", long="-72.6002", confirm_new="1")
    assert created_code(anyway) != first
    assert count_requests(city) == 2


def test_resident_messages_and_photos_through_the_private_link(client, city) -> None:
    code = created_code(submit_form(client))
    with unit_of_work(city.session_factory) as session:
        actions.transition(session, actor=system_actor("t"), code=code,
                           to="waiting_for_resident", public_note="Which side?")  # fmt: skip
        actions.reply_to_resident(session, actor=system_actor("t"), code=code,
                                  body="Is it on the north side?")  # fmt: skip
        reply_mail = session.scalars(
            select(NotifyMessage).where(NotifyMessage.template_slug == "request.reply")
        ).one()
        link = re.search(r"(/requests/\S+/private\?key=\S+)", reply_mail.body).group(1)
    fresh = stranger(client)
    opened = fresh.get(link, headers=BROWSER, follow_redirects=False)
    assert opened.status_code == 303
    assert "key=" not in opened.headers["location"]
    page = fresh.get(f"/requests/{code}", headers=BROWSER)
    assert "Is it on the north side?" in page.text
    sent = fresh.post(
        f"/requests/{code}/messages",
        data={"csrf_token": csrf_from(page.text), "body": "North side, by the rail."},
        headers=BROWSER,
        follow_redirects=False,
    )
    assert sent.status_code == 303
    request = queries_request(city, code)
    assert request.sub_status == "triaged", "answering resumes the request"
    # The old key from the acknowledgement was replaced by the reply's: it no longer opens.
    assert client.get(f"/requests/{code}", headers=BROWSER).text.count("North side") == 0
    anonymous_post = stranger(client).post(f"/requests/{code}/messages", data={"body": "spoof"})
    assert anonymous_post.status_code == 403


def queries_request(runtime, code):
    with unit_of_work(runtime.session_factory) as session:
        return queries.request_by_code(session, code)


def test_attachments_are_served_only_to_who_may_see_them(client, city) -> None:
    import io

    from PIL import Image

    raw = io.BytesIO()
    Image.new("RGB", (10, 10), "blue").save(raw, format="PNG")
    page = form_page(client)
    response = client.post(
        "/requests/new",
        data={"csrf_token": csrf_from(page.text), "service_code": "GRAFFITI",
              "address": "Bridge"},
        files={"photo": ("tags.png", raw.getvalue(), "image/png")},
        headers=BROWSER,
        follow_redirects=False,
    )  # fmt: skip
    code = created_code(response)
    with unit_of_work(city.session_factory) as session:
        request = queries.request_by_code(session, code)
        [attachment] = queries.attachments(session, request.id, public_only=False)
        attachment_id = attachment.id
    url = f"/requests/{code}/attachments/{attachment_id}"
    assert client.get(url).status_code == 200, "the resident sees their own photo"
    assert stranger(client).get(url).status_code == 404
    with unit_of_work(city.session_factory) as session:
        actions.set_attachment_public(
            session, actor=system_actor("t"), attachment_id=attachment_id, is_public=True
        )
    published = stranger(client).get(url)
    assert published.status_code == 200
    assert published.headers["content-type"] == "image/jpeg"  # re-encoded: no alpha
    assert published.headers["x-content-type-options"] == "nosniff"


def test_tracking_page_updates_live_over_sse(app, city) -> None:
    """A staff update reaches the resident's open tracking page, with nothing private."""
    staff = make_account(city, "staff")
    with unit_of_work(city.session_factory) as session:
        code = actions.submit_request(
            session,
            actor=ANONYMOUS,
            submission=actions.Submission(service_code="GRAFFITI", address="Bridge",
                                          resident_email="ann@example.org",
                                          description="Tags. ann@example.org"),
        ).request.tracking_code  # fmt: skip
    with serve_in_thread(app) as base:
        page = httpx.get(f"{base}/requests/{code}", headers=BROWSER)
        assert f"channel={'request.' + code.lower()}" in page.text
        with open_stream(base, f"request.{code.lower()}") as stream:
            response = httpx.post(
                f"{base}/api/v1/requests/{code}/transitions",
                json={"sub_status": "in_progress", "public_note": "Crew on the way.",
                      "internal_note": "Bring the pressure washer."},
                headers=auth(staff),
            )  # fmt: skip
            assert response.status_code == 200, response.text
            event_type, payload = stream.next_event()
    assert event_type == "request.updated"
    data = payload["data"]
    assert data["sub_status"] == "in_progress"
    assert data["note"] == "Crew on the way."
    assert "pressure washer" not in str(payload)
    assert "ann@example.org" not in str(payload)


# Staff ---------------------------------------------------------------------------------------


def seed_queue(runtime) -> dict[str, str]:
    now = utcnow()
    codes = {}
    with unit_of_work(runtime.session_factory) as session:
        for name, days, priority in (("late", 10, 3), ("urgent", 0, 1), ("fresh", 1, 3)):
            codes[name] = actions.submit_request(
                session,
                actor=system_actor("seed"),
                submission=actions.Submission(
                    service_code="GRAFFITI", address=name, priority=priority,
                    resident_email=f"{name}@example.org",
                ),
                now=now - timedelta(days=days),
            ).request.tracking_code  # fmt: skip
    return codes


def test_work_queue_needs_the_permission(client, city) -> None:
    assert client.get("/staff/queue", headers=BROWSER).status_code == 401
    publisher = make_account(city, "publisher")
    login(client, publisher.email)
    assert client.get("/staff/queue", headers=BROWSER).status_code == 403


def test_staff_work_the_queue(client, city) -> None:
    codes = seed_queue(city)
    staff = make_account(city, "staff")
    login(client, staff.email)
    page = client.get("/staff/queue", headers=BROWSER)
    assert page.status_code == 200
    order = list(re.findall(r'name="code" value="([A-Z0-9-]+)"', page.text))
    assert order == [codes["urgent"], codes["late"], codes["fresh"]]
    assert "Late by" in page.text
    late_only = client.get("/staff/queue?late=1", headers=BROWSER)
    assert re.findall(r'name="code" value="([A-Z0-9-]+)"', late_only.text) == [codes["late"]]

    bulk = client.post(
        "/staff/queue/bulk",
        data={"csrf_token": csrf_from(page.text), "code": [codes["late"], codes["fresh"]],
              "operation": "assign_me", "back": "/staff/queue"},
        headers=BROWSER,
        follow_redirects=False,
    )  # fmt: skip
    assert bulk.status_code == 303
    mine = client.get("/staff/queue?assigned=me", headers=BROWSER)
    assert set(re.findall(r'name="code" value="([A-Z0-9-]+)"', mine.text)) == {
        codes["late"],
        codes["fresh"],
    }


@pytest.mark.parametrize(
    ("query", "field", "said"),
    [
        ("sevice=GRAFFITI", None, "'sevice' is not a filter of the queue"),
        ("status=bogus", "status", "status: unknown value 'bogus'"),
        ("sub_status=lost", "sub_status", "sub_status: unknown value 'lost'"),
        ("priority=9", "priority", "priority: unknown value '9'"),
        ("assigned=everyone", "assigned", "assigned: unknown value 'everyone'"),
        ("late=maybe", "late", "late: unknown value 'maybe'"),
        ("service=NOPE", "service", "no request type has the code 'NOPE'"),
        ("page=zero", None, "page: 'zero' is not a page number"),
        ("sub_status=received&sub_status=triaged", "sub_status", "give one value"),
    ],
)
def test_queue_page_names_a_filter_it_cannot_use(client, city, query, field, said) -> None:
    """The page answers as the API does (422, naming the filter) instead of silently showing
    the whole queue; the form stays there, keeping the good values, to fix it."""
    codes = seed_queue(city)
    staff = make_account(city, "staff")
    login(client, staff.email)
    page = client.get(f"/staff/queue?q=late&{query}", headers=BROWSER)
    assert page.status_code == 422, page.text[:500]
    html = page.text
    summary = html[
        html.index('id="error-summary"') : html.index("</div>", html.index('id="error-summary"'))
    ]
    assert 'role="alert"' in html[html.index("<div", html.index("<h1>")) :][:200]
    assert said.replace("'", "&#39;") in summary, summary
    assert f'href="#f-{field}"' in summary if field else 'href="#queue-filters"' in summary
    if field and field not in ("page",):
        assert re.search(rf'id="f-{field}"[^>]*aria-invalid="true"', html), field
        assert f'id="f-{field}-error"' in html
    # No list answered a question that was not asked...
    assert not re.findall(r'name="code" value="([A-Z0-9-]+)"', html)
    assert "Fix the filters above to see the queue." in html
    # ...and the form is still there with the good value kept, and works once fixed.
    assert 'id="queue-filters"' in html
    assert 'name="q" value="late"' in html
    fixed = client.get("/staff/queue?q=late", headers=BROWSER)
    assert fixed.status_code == 200
    assert 'id="error-summary"' not in fixed.text
    assert re.findall(r'name="code" value="([A-Z0-9-]+)"', fixed.text) == [codes["late"]]


def test_queue_page_takes_every_filter_its_form_sends(client, city) -> None:
    codes = seed_queue(city)
    staff = make_account(city, "staff")
    login(client, staff.email)
    everything = (
        "q=&status=open&sub_status=&service=GRAFFITI&district=&priority=3&assigned=any"
        "&late=1&page=1&done=2+updated"
    )
    page = client.get(f"/staff/queue?{everything}", headers=BROWSER)
    assert page.status_code == 200, page.text[:500]
    assert re.findall(r'name="code" value="([A-Z0-9-]+)"', page.text) == [codes["late"]]
    assert "2 updated." in page.text


def test_staff_request_page_updates_with_templates_notes_and_replies(client, city) -> None:
    codes = seed_queue(city)
    with unit_of_work(city.session_factory) as session:
        template = actions.create_response_template(
            session, actor=system_actor("t"), name="Scheduled",
            body="Thanks for reporting ((tracking_code)); a crew will come by ((expected_date)).",
            sub_status="in_progress",
        )  # fmt: skip
        template_id = template.id
    staff = make_account(city, "staff")
    login(client, staff.email)
    code = codes["late"]
    page = client.get(f"/requests/{code}/manage", headers=BROWSER)
    assert page.status_code == 200
    assert "late@example.org" in page.text, "staff see the resident's contact"
    csrf = csrf_from(page.text)

    def act(**data):
        response = client.post(f"/requests/{code}/manage", data={"csrf_token": csrf, **data},
                               headers=BROWSER, follow_redirects=False)  # fmt: skip
        assert response.status_code == 303, response.text
        return response

    act(operation="transition", sub_status="in_progress", template_id=str(template_id),
        internal_note="Gate code 1234.")  # fmt: skip
    act(operation="reply", body="We will need access to the yard.")
    act(operation="priority", priority="2")
    refused = client.post(
        f"/requests/{code}/manage",
        data={"csrf_token": csrf, "operation": "transition", "sub_status": "rejected"},
        headers=BROWSER,
    )
    assert refused.status_code == 409
    assert "cannot become rejected" in refused.text

    request = queries_request(city, code)
    assert request.sub_status == "in_progress"
    assert request.priority == 2
    assert request.status_notes.startswith(f"Thanks for reporting {code}; a crew will come by")
    public = stranger(client).get(f"/requests/{code}", headers=BROWSER)
    assert "a crew will come by" in public.text
    assert "Gate code" not in public.text
    assert "access to the yard" not in public.text
    with unit_of_work(city.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(RequestMessage)) == 1
        slugs = session.scalars(
            select(NotifyMessage.template_slug)
            .where(NotifyMessage.recipient == "late@example.org")
            .order_by(NotifyMessage.id)
        ).all()
        assert slugs == ["request.acknowledgement", "request.status_changed", "request.reply"]


# Native API ----------------------------------------------------------------------------------


def test_native_api_submit_read_and_work(client, city) -> None:
    created = client.post(
        "/api/v1/requests",
        json={"service_code": "POTHOLE", "lat": 42.1, "long": -72.6,
              "attributes": {"SIZE": "small", "HAZARDS": ["water"]},
              "description": "Hole. Mail me: ann@example.org", "email": "ann@example.org"},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    code = created.json()["tracking_code"]
    public = client.get(f"/api/v1/requests/{code}").json()
    assert public["sub_status"] == "received"
    assert "[email removed]" in public["description"]
    assert "ann@example.org" not in str(public)
    assert [h["kind"] for h in public["history"]] == ["created"]
    listing = client.get("/api/v1/requests?service_code=POTHOLE").json()
    assert listing["total"] == 1
    assert listing["items"][0]["tracking_code"] == code

    staff = make_account(city, "staff")
    assert client.get(f"/api/v1/requests/{code}/staff").status_code == 401
    staff_view = client.get(f"/api/v1/requests/{code}/staff", headers=auth(staff)).json()
    assert staff_view["resident_email"] == "ann@example.org"
    moved = client.post(f"/api/v1/requests/{code}/transitions", headers=auth(staff),
                        json={"sub_status": "resolved", "public_note": "Filled."})  # fmt: skip
    assert moved.status_code == 200
    assert moved.json()["status"] == "closed"
    again = client.post(f"/api/v1/requests/{code}/transitions", headers=auth(staff),
                        json={"sub_status": "in_progress"})  # fmt: skip
    assert again.status_code == 409
    assert again.json()["code"] == "invalid_transition"
    queue = client.get("/api/v1/queue?status=any", headers=auth(staff)).json()
    assert queue["items"][0]["tracking_code"] == code
    nearby = client.get("/api/v1/request-services/POTHOLE/nearby?lat=42.1&long=-72.6").json()
    assert nearby == [], "closed requests are not offered as duplicates"


def test_request_types_are_managed_by_directory_editors(client, city) -> None:
    manager = make_account(city, "manager")
    staff = make_account(city, "staff")
    body = {"code": "TREE", "name": "Tree down", "organization": "public-works",
            "expected_days": 2, "attributes": [{"code": "BLOCKING", "datatype": "singlevaluelist",
            "values": [{"key": "yes", "name": "Yes"}, {"key": "no", "name": "No"}]}]}  # fmt: skip
    assert (
        client.post("/api/v1/request-services", json=body, headers=auth(staff)).status_code == 403
    )
    created = client.post("/api/v1/request-services", json=body, headers=auth(manager))
    assert created.status_code == 201, created.text
    assert created.json()["attributes"][0]["order"] == 1
    listed = client.get("/open311/v2/services.json").json()
    assert "TREE" in {s["service_code"] for s in listed}
    changed = client.patch("/api/v1/request-services/TREE", json={"active": False},
                           headers=auth(manager))  # fmt: skip
    assert changed.status_code == 200
    assert "TREE" not in {s["service_code"] for s in client.get("/open311/v2/services.json").json()}


@pytest.mark.parametrize(
    ("path", "query", "param"),
    [
        ("/api/v1/requests", "sub_status=bogus", "sub_status"),
        ("/api/v1/requests", "status=bogus", "status"),
        ("/api/v1/requests", "requested_after=yesterday", "requested_after"),
        ("/api/v1/requests", "updated_after=2026-13-45", "updated_after"),
        ("/api/v1/queue", "sub_status=received&sub_status=bogus", "sub_status"),
        ("/api/v1/queue", "priority=9", "priority"),
        ("/api/v1/queue", "priority=urgent", "priority"),
    ],
)
def test_unknown_filter_values_are_a_clear_422(client, city, path, query, param) -> None:
    """A filter that cannot match is named in the error instead of being dropped (which
    used to answer with every request)."""
    submit_api = client.post("/api/v1/requests", json={"service_code": "GRAFFITI",
                                                       "address": "Old Bridge"})  # fmt: skip
    assert submit_api.status_code == 201
    staff = make_account(city, "staff")
    response = client.get(f"{path}?{query}", headers=auth(staff))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "invalid_request"
    # FastAPI names a list item by its index after the parameter: ["query", "priority", 0].
    assert any(param in error["loc"] for error in body["errors"]), body


def test_known_filters_still_narrow_and_unknown_codes_match_nothing(client, city) -> None:
    staff = make_account(city, "staff")
    created = client.post("/api/v1/requests", json={"service_code": "GRAFFITI",
                                                    "address": "Old Bridge"})  # fmt: skip
    assert created.status_code == 201
    ok = client.get("/api/v1/requests?status=open&sub_status=received").json()
    assert ok["total"] == 1
    assert client.get("/api/v1/requests?sub_status=resolved").json()["total"] == 0
    assert client.get("/api/v1/requests?service_code=NOPE").json()["total"] == 0
    queue = client.get("/api/v1/queue?sub_status=received&priority=3", headers=auth(staff))
    assert queue.status_code == 200, queue.text
    assert queue.json()["total"] == 1
