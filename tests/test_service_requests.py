"""Service requests: models, lifecycle, SLA clocks, audited actions, queries, privacy.

Every database test runs on SQLite and PostgreSQL (the `runtime` fixture).
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from townhall.accounts import actions as account_actions
from townhall.actor import ANONYMOUS, Actor, system_actor
from townhall.audit.models import AuditEntry
from townhall.db import unit_of_work
from townhall.demo.city import generate_city
from townhall.errors import TownhallError
from townhall.notify.models import NotifyMessage, NotifySubscription
from townhall.service_requests import actions, queries
from townhall.service_requests.lifecycle import (
    CLOSED_SUB_STATUSES,
    OPEN_SUB_STATUSES,
    SUB_STATUSES,
    TRANSITIONS,
    open311_status,
    sla_state,
)
from townhall.service_requests.models import RequestUpdate, ServiceRequest
from townhall.service_requests.privacy import scrub_personal_data

from .conftest import make_account

SYSTEM = system_actor("test")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

ALL_ATTRIBUTES = [
    {"code": "SIZE", "datatype": "singlevaluelist", "required": True, "order": 1,
     "description": "How big is it?",
     "values": [{"key": "small", "name": "Smaller than a plate"},
                {"key": "large", "name": "Larger than a plate"}]},
    {"code": "HAZARDS", "datatype": "multivaluelist", "required": False, "order": 2,
     "values": [{"key": "water", "name": "Water"}, {"key": "traffic", "name": "Traffic"},
                {"key": "glass", "name": "Broken glass"}]},
    {"code": "DEPTH_CM", "datatype": "number", "required": False, "order": 3},
    {"code": "SEEN_AT", "datatype": "datetime", "required": False, "order": 4},
    {"code": "POLE", "datatype": "string", "required": False, "order": 5},
    {"code": "DETAILS", "datatype": "text", "required": False, "order": 6},
    {"code": "NOTICE", "datatype": "text", "required": False, "variable": False, "order": 7,
     "description": "Crews fill potholes within five working days."},
]  # fmt: skip


def setup_city(runtime, *, attributes=None) -> None:
    """One office and two request types (pothole with every attribute datatype; graffiti)."""
    with unit_of_work(runtime.session_factory) as session:
        account_actions.create_organization(
            session, actor=SYSTEM, slug="public-works", name="Public Works"
        )
        actions.create_service(
            session,
            actor=SYSTEM,
            code="POTHOLE",
            name="Pothole repair",
            description="A hole in the road.",
            group="Streets",
            keywords=["pothole", "road"],
            attributes=ALL_ATTRIBUTES if attributes is None else attributes,
            organization_slug="public-works",
            expected_days=5,
        )
        actions.create_service(
            session,
            actor=SYSTEM,
            code="GRAFFITI",
            name="Graffiti removal",
            group="Clean city",
            organization_slug="public-works",
            expected_days=3,
        )


def submit(runtime, **fields) -> str:
    values = {
        "service_code": "GRAFFITI",
        "description": "Tags on the bridge.",
        "lat": 42.1,
        "long": -72.6,
    }
    values.update(fields)
    now = values.pop("now", None)
    actor = values.pop("actor", ANONYMOUS)
    with unit_of_work(runtime.session_factory) as session:
        submitted = actions.submit_request(
            session, actor=actor, submission=actions.Submission(**values), now=now
        )
        return submitted.request.tracking_code


def load(runtime, code: str) -> ServiceRequest:
    with unit_of_work(runtime.session_factory) as session:
        request = queries.request_by_code(session, code)
        assert request is not None
        return request


# Lifecycle (no database) ---------------------------------------------------------------------


def test_every_sub_status_maps_to_an_open311_status() -> None:
    assert set(SUB_STATUSES) == OPEN_SUB_STATUSES | CLOSED_SUB_STATUSES
    for sub in OPEN_SUB_STATUSES:
        assert open311_status(sub) == "open"
    for sub in CLOSED_SUB_STATUSES:
        assert open311_status(sub) == "closed"
        assert TRANSITIONS[sub] == {"triaged"}, "closed requests can only be reopened"
    assert set(TRANSITIONS) == set(SUB_STATUSES)
    for targets in TRANSITIONS.values():
        assert targets <= set(SUB_STATUSES)


def test_sla_state_freezes_while_paused() -> None:
    expected = T0 + timedelta(days=5)
    running = sla_state(
        requested_at=T0,
        expected_at=expected,
        sla_paused_at=None,
        closed_at=None,
        now=T0 + timedelta(days=6),
    )
    assert running.late
    assert running.risk == pytest.approx(6 / 5)
    paused = sla_state(
        requested_at=T0,
        expected_at=expected,
        sla_paused_at=T0 + timedelta(days=1),
        closed_at=None,
        now=T0 + timedelta(days=30),
    )
    assert paused.paused
    assert not paused.late
    assert paused.remaining == timedelta(days=4)


# Privacy -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "gone", "kept"),
    [
        ("Call me at (413) 555-0142 please.", "555-0142", "Call me at"),
        ("Reach me at ann.lee@example.org.", "ann.lee@", "Reach me at"),
        ("Thanks, Ann Lee (ann@example.org)", "Ann Lee", "Thanks,"),
        ("Car parked for weeks. Plate 7ABC12.", "7ABC12", "Plate"),
        ("It's Ann Lee's house that causes this.", "Ann Lee", "house"),
        ("Hole near 12 Elm Street. - Ann O'Brien", "O'Brien", "12 Elm Street"),
        ("my name is ann lee, call 413.555.0101", "ann lee", "my name is"),
        ("I'm Bo Chan, call +44 20 7946 0958.", "7946", "call"),
    ],
)
def test_scrubber_removes_contact_details_and_names(text: str, gone: str, kept: str) -> None:
    scrubbed = scrub_personal_data(text)
    assert gone not in scrubbed
    assert kept in scrubbed
    assert scrub_personal_data(scrubbed) == scrubbed, "scrubbing is idempotent"


@pytest.mark.parametrize(
    "text",
    [
        "Streetlight out at 1530 Elm Street. The pole has a tag 1187.",
        "Elm Street's drain is blocked again, water up to the curb.",
        "Someone sprayed tags on the library near 2081 Pynchon Avenue. Thank you!",
        "Pothole 30 cm deep at Main St & 5th Ave, since 2024-03-01.",
    ],
)
def test_scrubber_leaves_ordinary_reports_alone(text: str) -> None:
    assert scrub_personal_data(text) == text


def test_scrubber_removes_the_residents_own_name_anywhere() -> None:
    text = "Jane Roe here, the bins of JANE ROE's building were skipped."
    assert "roe" not in scrub_personal_data(text, known_names=["Jane Roe"]).lower()


def test_scrubber_finds_the_demo_citys_planted_personal_data() -> None:
    """The demo city says which descriptions hold which personal data: the scrubber must find
    nearly all of it and touch almost nothing else."""
    city = generate_city(request_count=8000)
    marks = {
        "name": "[name removed]",
        "phone": "[phone removed]",
        "email": "[email removed]",
        "plate": "[plate removed]",
    }
    found = dict.fromkeys(marks, 0)
    total = dict.fromkeys(marks, 0)
    changed_clean = clean = 0
    for request in city.service_requests:
        scrubbed = scrub_personal_data(request.description, known_names=[request.resident_name])
        for kind in request.description_pii:
            total[kind] += 1
            found[kind] += marks[kind] in scrubbed
        if not request.description_pii:
            clean += 1
            changed_clean += scrubbed != request.description
    for kind in ("phone", "email", "plate"):
        assert found[kind] == total[kind], kind
    assert found["name"] / total["name"] >= 0.95
    assert changed_clean / clean <= 0.005


# Submitting ----------------------------------------------------------------------------------


def test_submit_stores_routes_and_audits(runtime) -> None:
    setup_city(runtime)
    code = submit(
        runtime,
        service_code="POTHOLE",
        description="Deep hole. Call me at 413-555-0100. - Ann Lee",
        attributes={"SIZE": ["large"], "HAZARDS": ["water", "traffic"], "DEPTH_CM": ["12.5"],
                    "SEEN_AT": ["2026-03-01T08:00:00-05:00"], "POLE": ["P-17"]},
        resident_name="Ann Lee",
        resident_email="ann@example.org",
        resident_phone="413-555-0100",
        now=T0,
    )  # fmt: skip
    request = load(runtime, code)
    assert request.status == "open"
    assert request.sub_status == "received"
    assert request.expected_at == T0 + timedelta(days=5)
    assert request.organization is not None
    assert request.organization.slug == "public-works"
    assert request.attribute_values == {
        "SIZE": "large",
        "HAZARDS": ["water", "traffic"],
        "DEPTH_CM": 12.5,
        "SEEN_AT": "2026-03-01T13:00:00+00:00",
        "POLE": "P-17",
    }
    assert "555-0100" in request.description
    assert "555-0100" not in request.public_description
    assert "Ann Lee" not in request.public_description
    with unit_of_work(runtime.session_factory) as session:
        entry = session.scalar(
            select(AuditEntry).where(AuditEntry.action == "service_request.submit")
        )
        assert entry is not None
        assert entry.object_id == code
        trail = str(session.scalars(select(AuditEntry.changes)).all()).lower()
        for personal in ("ann lee", "ann@example.org", "555-0100", "deep hole"):
            assert personal not in trail, "no personal data in the audit trail"
        history = queries.history(session, request.id, public_only=True)
        assert [u.kind for u in history] == ["created"]
        # The resident follows their request and gets an acknowledgement with the code.
        message = session.scalar(select(NotifyMessage))
        assert message is not None
        assert message.template_slug == "request.acknowledgement"
        assert code in message.subject
        assert code in message.body
        assert message.template_version == 1
        assert (
            session.scalar(
                select(NotifySubscription.topic).where(
                    NotifySubscription.target == "ann@example.org"
                )
            )
            == f"request:{code}"
        )


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"service_code": "POTHOLE"}, "attribute.SIZE"),
        ({"service_code": "POTHOLE", "attributes": {"SIZE": ["huge"]}}, "attribute.SIZE"),
        ({"service_code": "POTHOLE", "attributes": {"SIZE": ["small"], "HAZARDS": ["fire"]}},
         "attribute.HAZARDS"),
        ({"service_code": "POTHOLE", "attributes": {"SIZE": ["small"], "DEPTH_CM": ["deep"]}},
         "attribute.DEPTH_CM"),
        ({"service_code": "POTHOLE", "attributes": {"SIZE": ["small"], "SEEN_AT": ["noon"]}},
         "attribute.SEEN_AT"),
        ({"service_code": "POTHOLE", "attributes": {"SIZE": ["small", "large"]}},
         "attribute.SIZE"),
        ({"service_code": "POTHOLE", "attributes": {"SIZE": ["small"], "COLOUR": ["red"]}},
         "attribute.COLOUR"),
        ({"lat": None, "long": None}, "location"),
        ({"lat": 42.0, "long": None}, "long"),
        ({"lat": 95.0}, "lat"),
        ({"resident_email": "not-an-address"}, "email"),
        ({"description": "x" * 4001}, "description"),
    ],
)  # fmt: skip
def test_submit_refuses_bad_input_and_says_where(runtime, fields, where) -> None:
    setup_city(runtime)
    with pytest.raises(TownhallError) as caught:
        submit(runtime, **fields)
    assert caught.value.status == 422
    assert caught.value.message.startswith(where + ":"), caught.value.message
    with unit_of_work(runtime.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(ServiceRequest)) == 0


def test_unknown_service_is_not_found(runtime) -> None:
    setup_city(runtime)
    with pytest.raises(TownhallError) as caught:
        submit(runtime, service_code="NOPE")
    assert caught.value.code == "service_not_found"


def test_submissions_are_rate_limited_per_address(runtime, monkeypatch) -> None:
    setup_city(runtime)
    monkeypatch.setattr(actions, "SUBMISSIONS_PER_HOUR_PER_ADDRESS", 2)
    for _ in range(2):
        submit(runtime, client_hash="abc")
    with pytest.raises(TownhallError) as caught:
        submit(runtime, client_hash="abc")
    assert caught.value.status == 429
    submit(runtime, client_hash="other")  # another address is not affected


# Working a request ---------------------------------------------------------------------------


def test_transitions_are_validated_audited_and_kept_as_history(runtime) -> None:
    setup_city(runtime)
    staff = make_account(runtime, "staff")
    actor = Actor(label="user:staff", via="session", user_id=staff.id, role="staff",
                  permissions=frozenset({"requests:work"}))  # fmt: skip
    code = submit(runtime, now=T0)
    with unit_of_work(runtime.session_factory) as session:
        actions.transition(
            session,
            actor=actor,
            code=code,
            to="triaged",
            internal_note="Checked the photo.",
            now=T0 + timedelta(hours=1),
        )
        actions.transition(
            session,
            actor=actor,
            code=code,
            to="in_progress",
            public_note="A crew is on the way.",
            now=T0 + timedelta(hours=2),
        )
        actions.transition(session, actor=actor, code=code, to="resolved",
                           public_note="Cleaned.", now=T0 + timedelta(hours=5))  # fmt: skip
    request = load(runtime, code)
    assert (request.status, request.sub_status, request.resolution) == (
        "closed",
        "resolved",
        "resolved",
    )
    assert request.acknowledged_at == T0 + timedelta(hours=1)
    assert request.started_at == T0 + timedelta(hours=2)
    assert request.closed_at == T0 + timedelta(hours=5)
    assert request.status_notes == "Cleaned."
    with unit_of_work(runtime.session_factory) as session:
        public = queries.history(session, request.id, public_only=True)
        assert all(u.internal_note is None or u.kind == "status" for u in public)
        staff_view = queries.history(session, request.id, public_only=False)
        assert any(u.internal_note == "Checked the photo." for u in staff_view)
        audit = session.scalars(
            select(AuditEntry.changes).where(AuditEntry.action == "service_request.transition")
        ).all()
        assert [c["sub_status"] for c in audit] == [
            ["received", "triaged"],
            ["triaged", "in_progress"],
            ["in_progress", "resolved"],
        ]
        # Closed requests can only be reopened.
        with pytest.raises(TownhallError) as caught:
            actions.transition(session, actor=actor, code=code, to="in_progress")
        assert caught.value.code == "invalid_transition"
        assert caught.value.status == 409
        actions.transition(session, actor=actor, code=code, to="triaged", public_note="Back.")
    reopened = load(runtime, code)
    assert reopened.status == "open"
    assert reopened.closed_at is None


def test_waiting_for_the_resident_pauses_the_sla_clock(runtime) -> None:
    setup_city(runtime)
    code = submit(runtime, now=T0, resident_email="res@example.org")
    with unit_of_work(runtime.session_factory) as session:
        actions.transition(session, actor=SYSTEM, code=code, to="in_progress", now=T0)
        actions.transition(
            session, actor=SYSTEM, code=code, to="waiting_for_resident",
            public_note="Which side of the bridge?", now=T0 + timedelta(days=1),
        )  # fmt: skip
    request = load(runtime, code)
    assert request.sla_paused_at == T0 + timedelta(days=1)
    key = "k"
    with unit_of_work(runtime.session_factory) as session:
        row = queries.request_by_code(session, code)
        row.resident_key_hash = actions.key_hash(key)
    with unit_of_work(runtime.session_factory) as session, pytest.raises(TownhallError):
        actions.message_from_resident(
            session, actor=ANONYMOUS, code=code, key="wrong", body="North side."
        )
    with unit_of_work(runtime.session_factory) as session:
        actions.message_from_resident(
            session, actor=ANONYMOUS, code=code, key=key, body="North side.",
            now=T0 + timedelta(days=4),
        )  # fmt: skip
    request = load(runtime, code)
    assert request.sub_status == "in_progress", "work resumes where it was"
    assert request.sla_paused_at is None
    assert request.sla_paused_seconds == 3 * 86400
    assert request.expected_at == T0 + timedelta(days=3 + 3)


def test_assignment_priority_merge_and_permissions(runtime) -> None:
    setup_city(runtime)
    worker = make_account(runtime, "staff")
    code_a = submit(runtime, resident_email="a@example.org")
    code_b = submit(runtime, resident_email="b@example.org")
    with unit_of_work(runtime.session_factory) as session:
        actions.assign(session, actor=SYSTEM, code=code_a, user_id=worker.id)
        actions.set_priority(session, actor=SYSTEM, code=code_a, priority=1)
        actions.merge_duplicate(session, actor=SYSTEM, code=code_b, into_code=code_a)
    a, b = load(runtime, code_a), load(runtime, code_b)
    assert a.sub_status == "assigned"
    assert a.assigned_user_id == worker.id
    assert a.priority == 1
    assert b.sub_status == "duplicate"
    assert b.duplicate_of_id == a.id
    assert b.status == "closed"
    with unit_of_work(runtime.session_factory) as session:
        followers = session.scalars(
            select(NotifySubscription.target).where(NotifySubscription.topic == f"request:{code_a}")
        ).all()
        assert sorted(followers) == ["a@example.org", "b@example.org"]
        publisher = Actor(label="user:p", via="token", user_id=1,
                          permissions=frozenset({"datasets:publish"}))  # fmt: skip
        with pytest.raises(TownhallError) as caught:
            actions.transition(session, actor=publisher, code=code_a, to="in_progress")
        assert caught.value.status == 403
        with pytest.raises(TownhallError) as caught:
            actions.transition(session, actor=ANONYMOUS, code=code_a, to="in_progress")
        assert caught.value.status == 401


def test_staff_of_another_office_cannot_work_the_request(runtime) -> None:
    setup_city(runtime)
    with unit_of_work(runtime.session_factory) as session:
        other = account_actions.create_organization(
            session, actor=SYSTEM, slug="parks", name="Parks"
        )
        other_id = other.id
    code = submit(runtime)
    outsider = Actor(label="user:x", via="token", user_id=99, role="staff",
                     permissions=frozenset({"requests:work"}),
                     organization_ids=frozenset({other_id}))  # fmt: skip
    with unit_of_work(runtime.session_factory) as session, pytest.raises(TownhallError) as caught:
        actions.transition(session, actor=outsider, code=code, to="triaged")
    assert caught.value.status == 403


# Queries -------------------------------------------------------------------------------------


def test_queue_orders_by_priority_then_deadline(runtime) -> None:
    setup_city(runtime)
    late = submit(runtime, now=T0 - timedelta(days=10))
    soon = submit(runtime, now=T0 - timedelta(days=2))
    urgent_new = submit(runtime, now=T0, priority=1, actor=SYSTEM)
    paused = submit(runtime, now=T0 - timedelta(days=20))
    with unit_of_work(runtime.session_factory) as session:
        actions.transition(session, actor=SYSTEM, code=paused, to="waiting_for_resident")
        rows, total = queries.list_requests(
            session, queries.RequestFilter(statuses=["open"]), sort="queue", with_total=True
        )
        assert [r.tracking_code for r in rows] == [urgent_new, late, soon, paused]
        assert total == 4
        late_rows, _ = queries.list_requests(
            session, queries.RequestFilter(late_only=True, now=T0), sort="queue"
        )
        assert [r.tracking_code for r in late_rows] == [late]


def test_nearby_open_requests_are_suggested_as_duplicates(runtime) -> None:
    setup_city(runtime)
    near = submit(runtime, lat=42.10000, long=-72.60000)
    submit(runtime, lat=42.10300, long=-72.60000)  # about 330 m north
    submit(runtime, service_code="POTHOLE", lat=42.1, long=-72.6,
           attributes={"SIZE": ["small"]})  # another service  # fmt: skip
    closed = submit(runtime, lat=42.10001, long=-72.60001)
    with unit_of_work(runtime.session_factory) as session:
        actions.transition(session, actor=SYSTEM, code=closed, to="resolved")
        service = queries.service_by_code(session, "GRAFFITI")
        found = queries.nearby_open_requests(
            session, service_id=service.id, lat=42.10005, long=-72.60005, radius_m=150
        )
        assert [(r.tracking_code, round(d)) for r, d in found] == [(near, 7)]


def test_attachments_are_reencoded_without_exif(runtime) -> None:
    from PIL import Image

    setup_city(runtime)
    code = submit(runtime)
    image = Image.new("RGB", (40, 30), "red")
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[0x8825] = {2: (42.0, 6.0, 0.0)}  # GPSInfo: latitude
    raw = io.BytesIO()
    image.save(raw, format="JPEG", exif=exif.tobytes())
    assert b"SpyCam" in raw.getvalue()
    with unit_of_work(runtime.session_factory) as session:
        attachment = actions.add_attachment(
            session, actor=SYSTEM, code=code, filename="../../photo.JPG", data=raw.getvalue()
        )
        stored = attachment.data
        assert attachment.filename == "photo.jpg"
        assert attachment.content_type == "image/jpeg"
    assert b"SpyCam" not in stored
    assert not Image.open(io.BytesIO(stored)).getexif()
    with unit_of_work(runtime.session_factory) as session, pytest.raises(TownhallError) as caught:
        actions.add_attachment(session, actor=SYSTEM, code=code, filename="x.exe", data=b"MZ\0")
    assert caught.value.status == 415


def test_history_of_the_request_table_is_complete(runtime) -> None:
    setup_city(runtime)
    code = submit(runtime)
    with unit_of_work(runtime.session_factory) as session:
        actions.add_note(session, actor=SYSTEM, code=code, internal_note="Internal only.")
        actions.add_note(session, actor=SYSTEM, code=code, public_note="Scheduled for Monday.")
        request = queries.request_by_code(session, code)
        kinds = session.scalars(
            select(RequestUpdate.kind)
            .where(RequestUpdate.request_id == request.id)
            .order_by(RequestUpdate.id)
        ).all()
        assert kinds == ["created", "note", "note"]
        public = queries.history(session, request.id, public_only=True)
        assert [u.public_note for u in public] == [None, "Scheduled for Monday."]
