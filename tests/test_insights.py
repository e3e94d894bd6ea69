"""Insights: backlog, productivity, demand, forecast, alerts, areas, staffing, triage, pages.

A small deterministic city built through the slices' own actions, pinned at `NOW`, on SQLite and
PostgreSQL; every number asserted is worked out by hand in the comments.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from townhall.accounts import actions as account_actions
from townhall.actor import system_actor
from townhall.db import unit_of_work
from townhall.directory import actions as directory_actions
from townhall.insights import erlang, forecast, tasks, triage
from townhall.insights.queries import robust_z
from townhall.service_requests import actions as request_actions
from townhall.service_requests import queries as request_queries

from .conftest import auth, login, make_account
from .test_datastore_support import make_dataset, make_publisher, upload_ok

# A Wednesday noon, UTC; every request and visit is placed relative to it.
NOW = datetime(2026, 3, 18, 12, 0, tzinfo=UTC)
AS_OF = {"as_of": NOW.isoformat()}
SYSTEM = system_actor("test")


def submit(session, code: str, at: datetime, district: str, text: str = "") -> str:
    submitted = request_actions.submit_request(
        session,
        actor=SYSTEM,
        submission=request_actions.Submission(
            service_code=code,
            description=text or f"{code.lower()} at the corner",
            address="1 Main Street",
            district_code=district,
        ),
        now=at,
    )
    return submitted.request.tracking_code


def resolve(session, code: str, user_id: int, at: datetime) -> None:
    request_actions.assign(session, actor=SYSTEM, code=code, user_id=user_id, now=at)
    request_actions.transition(session, actor=SYSTEM, code=code, to="resolved", now=at)


@pytest.fixture
def office(runtime):
    """Two request types of the roads office, and two staff members who resolve requests."""
    with unit_of_work(runtime.session_factory) as session:
        account_actions.create_organization(session, actor=SYSTEM, slug="roads", name="Roads")
        for code, name, days in (("POTHOLE", "Pothole", 2), ("NOISE", "Noise complaint", 5)):
            request_actions.create_service(
                session,
                actor=SYSTEM,
                code=code,
                name=name,
                organization_slug="roads",
                expected_days=days,
            )
    first = make_account(runtime, "staff", email="ada@city.example", orgs=["roads"])
    second = make_account(runtime, "staff", email="bob@city.example", orgs=["roads"])
    return {"first": first, "second": second}


@pytest.fixture
def city(runtime, office):
    """Open: A (pothole, 3 days old, due a day ago: breached), B (pothole, 2 hours old, due in
    46 h: on time), C (noise, 4 days - 1 h old, due in 25 h: on time). Resolved: E by the
    first staff member in 24 h, F by the first in 72 h (1 day late), G by the second in 12 h,
    D a month ago (outside the productivity weeks)."""
    first, second = office["first"].id, office["second"].id
    with unit_of_work(runtime.session_factory) as session:
        submit(session, "POTHOLE", NOW - timedelta(days=3), "D1")
        submit(session, "POTHOLE", NOW - timedelta(hours=2), "D1")
        submit(session, "NOISE", NOW - timedelta(days=4) + timedelta(hours=1), "D2")
        d = submit(session, "NOISE", NOW - timedelta(days=40), "D2")
        resolve(session, d, second, NOW - timedelta(days=35))
        e = submit(session, "POTHOLE", NOW - timedelta(days=6), "D1")
        resolve(session, e, first, NOW - timedelta(days=5))
        f = submit(session, "POTHOLE", NOW - timedelta(days=5), "D2")
        resolve(session, f, first, NOW - timedelta(days=2))
        g = submit(session, "NOISE", NOW - timedelta(days=3), "D1")
        resolve(session, g, second, NOW - timedelta(days=3) + timedelta(hours=12))
    return office


def manager_token(runtime):
    return auth(make_account(runtime, "manager", orgs=["roads"]))


# --- pure maths ----------------------------------------------------------------------------


def test_erlang_c_matches_the_textbook_example():
    # 100 calls per half hour, 3 minutes each = 10 erlangs; 80% answered within 20 seconds.
    traffic = erlang.traffic_erlangs(200, 180)
    assert traffic == pytest.approx(10.0)
    assert erlang.erlang_c(11, traffic) == pytest.approx(0.6821, abs=1e-4)
    assert erlang.service_level(11, traffic, 180, 20) == pytest.approx(0.3896, abs=1e-4)
    assert erlang.service_level(13, traffic, 180, 20) == pytest.approx(0.7956, abs=1e-4)
    need = erlang.agents_needed(200, 180, target_seconds=20, target_level=0.8)
    assert need.agents == 14
    assert need.service_level == pytest.approx(0.8884, abs=1e-4)
    assert need.average_wait_seconds == pytest.approx(7.8, abs=0.05)
    assert need.occupancy == pytest.approx(10 / 14)


def test_erlang_c_edges():
    assert erlang.agents_needed(0, 300, target_seconds=60, target_level=0.8).agents == 0
    # Not enough desks: everybody waits, nobody is served in time.
    assert erlang.erlang_c(2, 3.0) == 1.0
    assert erlang.service_level(2, 3.0, 300, 60) == 0.0
    # Hundreds of agents: the recursion does not overflow where factorials would.
    big = erlang.agents_needed(6000, 360, target_seconds=20, target_level=0.9)
    assert 600 < big.agents < 700
    with pytest.raises(ValueError, match="target_level"):
        erlang.agents_needed(10, 60, target_seconds=20, target_level=1.5)


def test_forecast_keeps_the_weekly_pattern_and_orders_its_interval():
    # Ten weeks of a clear weekly pattern: busy Mondays (30), quiet Sundays (5).
    pattern = [30, 20, 20, 20, 20, 10, 5]
    history = [pattern[i % 7] + (i % 3) for i in range(70)]
    last = date(2026, 3, 15)  # a Sunday: the forecast starts on a Monday
    result = forecast.forecast_daily(history, last, horizon_days=28)
    assert result.method == "holt_winters"
    assert len(result.daily) == 28
    assert len(result.weekly) == 4
    assert result.daily[0].start == date(2026, 3, 16)
    for point in result.daily + result.weekly:
        assert 0 <= point.lower <= point.value <= point.upper
    assert result.daily[0].value > result.daily[6].value + 15  # Monday >> Sunday
    assert result.weekly[0].value == pytest.approx(sum(pattern) + 7, rel=0.15)


def test_short_history_falls_back_to_seasonal_naive():
    result = forecast.forecast_daily(
        [4, 6, 8, 2, 3, 9, 1, 5, 7, 9], date(2026, 3, 15), horizon_days=7
    )
    assert result.method == "seasonal_naive"
    assert len(result.daily) == 7
    # Each day repeats the same weekday of the last week: 5 days back... values[3:10].
    assert [round(p.value) for p in result.daily] == pytest.approx([2, 3, 9, 1, 5, 7, 9], abs=2)
    assert all(p.lower <= p.value <= p.upper for p in result.daily)
    assert forecast.forecast_daily([], date(2026, 3, 15), horizon_days=7).method == "none"


def test_robust_z_flags_spikes_not_noise():
    baseline = [3, 4, 2, 3, 5, 3, 4, 3, 2, 4]
    assert robust_z(3, baseline) == pytest.approx(0.0, abs=0.5)
    assert robust_z(15, baseline) > 3.5
    # A flat baseline of zeros: one request is not a spike (the MAD is floored).
    assert robust_z(1, [0] * 28) == pytest.approx(1.0)


def test_local_days_follow_the_zone_across_a_dst_change(runtime, office):
    # Boston moves to summer time on 2026-03-08 at 07:00 UTC.
    moments = [
        datetime(2026, 3, 8, 4, 30, tzinfo=UTC),  # 23:30 EST on the 7th
        datetime(2026, 3, 9, 3, 30, tzinfo=UTC),  # 23:30 EDT on the 8th
        datetime(2026, 3, 9, 4, 30, tzinfo=UTC),  # 00:30 EDT on the 9th
        datetime(2026, 3, 9, 5, 30, tzinfo=UTC),  # 01:30 EDT on the 9th
    ]
    with unit_of_work(runtime.session_factory) as session:
        for moment in moments:
            submit(session, "POTHOLE", moment, "D1")
        counts = request_queries.daily_request_counts(
            session,
            start=datetime(2026, 3, 1, tzinfo=UTC),
            end=datetime(2026, 3, 20, tzinfo=UTC),
            zone="America/New_York",
        )
        weeks = request_queries.closed_work(
            session,
            start=datetime(2026, 3, 1, tzinfo=UTC),
            end=datetime(2026, 3, 20, tzinfo=UTC),
            zone="America/New_York",
            by_user=False,
            by_week=True,
        )
    assert sorted(counts) == [
        ("2026-03-07", None, 1),
        ("2026-03-08", None, 1),
        ("2026-03-09", None, 2),
    ]
    assert weeks == []  # nothing resolved


# --- the API on the small city ---------------------------------------------------------------


def test_backlog_counts_open_requests_and_breaches(client, runtime, city):
    response = client.get("/api/v1/insights/backlog", params=AS_OF, headers=manager_token(runtime))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["open"] == 3
    assert body["breached"] == 1
    assert body["at_risk"] == 0
    assert body["by_sla"] == {"breached": 1, "at_risk": 0, "on_time": 2, "paused": 0, "no_sla": 0}
    assert body["by_age"] == {"under 1 day": 1, "1-7 days": 2, "7-30 days": 0, "over 30 days": 0}
    assert body["by_sub_status"] == {"received": 3}
    pothole = next(s for s in body["by_service"] if s["service"] == "POTHOLE")
    assert (pothole["open"], pothole["breached"]) == (2, 1)
    assert body["by_office"] == [{"office": "Roads", "open": 3, "breached": 1, "at_risk": 0}]
    # Six hours later B is still on time, and C (due NOW + 25 h) is now due within 24 hours.
    later = client.get(
        "/api/v1/insights/backlog",
        params={"as_of": (NOW + timedelta(hours=6)).isoformat()},
        headers=manager_token(runtime),
    ).json()
    assert (later["breached"], later["at_risk"]) == (1, 1)


def test_productivity_per_staff_and_team_with_names_only_for_insights_readers(
    client, runtime, city
):
    response = client.get(
        "/api/v1/insights/productivity",
        params={**AS_OF, "weeks": 2},
        headers=manager_token(runtime),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    # Weeks start on Mondays: 2026-03-09 and 2026-03-16 (NOW is Wednesday the 18th).
    assert body["weeks"] == ["2026-03-09", "2026-03-16"]
    staff = {s["name"]: s for s in body["staff"]}
    ada = staff["ada"]
    # E closed Friday the 13th (24 h), F closed Monday the 16th (72 h): median 48 h.
    assert ada["closed"] == 2
    assert ada["median_hours_to_resolve"] == pytest.approx(48.0)
    assert ada["per_week"] == {"2026-03-09": 1, "2026-03-16": 1}
    bob = staff["bob"]
    assert (bob["closed"], bob["median_hours_to_resolve"]) == (1, pytest.approx(12.0))
    assert body["teams"] == [
        {
            "office": "Roads",
            "closed": 3,
            "median_hours_to_resolve": pytest.approx(24.0),
            "per_week": {"2026-03-09": 1, "2026-03-16": 2},
        }
    ]
    # A staff member sees the numbers, their own name, and nobody else's.
    mine = client.get(
        "/api/v1/insights/productivity",
        params={**AS_OF, "weeks": 2},
        headers=auth(city["second"]),
    ).json()
    names = sorted(s["name"] for s in mine["staff"])
    assert names == ["Staff member 1", "bob"]
    assert "ada" not in str(mine)
    assert mine["names_shown"] is False


def test_demand_per_day_and_week_with_trend(client, runtime, city):
    response = client.get(
        "/api/v1/insights/demand",
        params={**AS_OF, "days": 7, "by": "service"},
        headers=manager_token(runtime),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["from"], body["to"]) == ("2026-03-12", "2026-03-18")
    series = {s["key"]: s for s in body["series"]}
    # Potholes in the last 7 days: F (13th), A (15th), B (18th); E on the 12th too.
    pothole = {p["period"]: p["count"] for p in series["POTHOLE"]["points"]}
    assert pothole == {
        "2026-03-12": 1, "2026-03-13": 1, "2026-03-14": 0, "2026-03-15": 1,
        "2026-03-16": 0, "2026-03-17": 0, "2026-03-18": 1,
    }  # fmt: skip
    assert series["POTHOLE"]["total"] == 4
    assert series["POTHOLE"]["trend"]["last_28_days"] == 4
    weekly = client.get(
        "/api/v1/insights/demand",
        params={**AS_OF, "days": 14, "unit": "week"},
        headers=manager_token(runtime),
    ).json()
    total = weekly["series"][0]
    # Week of the 9th: E (12th), F (13th), C (14th), A and G (15th); of the 16th: B.
    assert {p["period"]: p["count"] for p in total["points"]} == {
        "2026-03-02": 0,
        "2026-03-09": 5,
        "2026-03-16": 1,
    }


def test_forecast_shape_and_interval_from_a_short_history(client, runtime, city):
    response = client.get(
        "/api/v1/insights/forecast",
        params={**AS_OF, "weeks": 2},
        headers=manager_token(runtime),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    # History starts at the first request (D, 40 days ago): enough days for Holt-Winters,
    # or too flat for it; either way the shape and the interval hold.
    assert body["method"] in ("holt_winters", "seasonal_naive")
    assert body["history_to"] == "2026-03-17"
    assert len(body["points"]) == 14
    assert body["points"][0]["period"] == "2026-03-18"
    for point in body["points"]:
        assert 0 <= point["lower"] <= point["forecast"] <= point["upper"]
    weekly = client.get(
        "/api/v1/insights/forecast",
        params={**AS_OF, "weeks": 2, "unit": "week", "service": "NOISE"},
        headers=manager_token(runtime),
    ).json()
    assert weekly["service"] == "NOISE"
    assert [p["period"] for p in weekly["points"]] == ["2026-03-23"]  # the one complete week
    unknown = client.get(
        "/api/v1/insights/forecast", params={"service": "NOPE"}, headers=manager_token(runtime)
    )
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "service_not_found"


def test_alerts_flag_a_spike_against_the_last_four_weeks(client, runtime, office):
    with unit_of_work(runtime.session_factory) as session:
        for day in range(1, 29):
            submit(session, "NOISE", NOW - timedelta(days=day), "D1")
        for minute in range(8):
            submit(session, "POTHOLE", NOW - timedelta(minutes=30 + minute), "D2")
        submit(session, "NOISE", NOW - timedelta(hours=1), "D1")
    body = client.get("/api/v1/insights/alerts", params=AS_OF, headers=manager_token(runtime))
    assert body.status_code == 200, body.text
    alerts = {(a["kind"], a["key"]): a for a in body.json()["alerts"]}
    # 8 potholes today against none before: z = 8 (the MAD floored at 1/1.4826).
    assert alerts[("service", "POTHOLE")]["today"] == 8
    assert alerts[("service", "POTHOLE")]["robust_z"] == pytest.approx(8.0)
    assert ("district", "D2") in alerts
    # One noise complaint a day, one today: no spike.
    assert ("service", "NOISE") not in alerts


def test_area_indicators_rank_districts_with_population(client, runtime, admin, city):
    publisher = make_publisher(client, admin, runtime, org="stats")
    resource = make_dataset(client, publisher, "district-population", org="stats")
    upload_ok(
        client,
        publisher,
        "district-population",
        resource,
        b"district_code,population\nD1,2000\nD2,1000\n",
    )
    response = client.get(
        "/api/v1/insights/areas", params={**AS_OF, "days": 60}, headers=manager_token(runtime)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["population_known"] is True
    districts = {d["district"]: d for d in body["districts"]}
    # D1: A, B, E, G = 4 requests for 2,000 residents; D2: C, D, F = 3 for 1,000.
    assert districts["D1"]["requests_per_1000"] == pytest.approx(2.0)
    assert districts["D2"]["requests_per_1000"] == pytest.approx(3.0)
    assert body["city"]["requests_per_1000"] == pytest.approx(7 / 3000 * 1000, abs=0.05)
    # Resolved: D1 E 24 h, G 12 h -> 18 h; D2 D 120 h, F 72 h -> 96 h; city 24,72,12,120 -> 48.
    assert districts["D1"]["median_hours_to_resolve"] == pytest.approx(18.0)
    assert districts["D2"]["median_hours_to_resolve"] == pytest.approx(96.0)
    assert body["city"]["median_hours_to_resolve"] == pytest.approx(48.0)
    # Breaches: D1 has A (open, overdue) of 4; D2 has F (closed a day late) of 3.
    assert districts["D1"]["sla_breach_rate"] == pytest.approx(0.25)
    assert districts["D2"]["sla_breach_rate"] == pytest.approx(0.333, abs=0.001)
    assert districts["D2"]["response_gap_percent"] == pytest.approx(100.0)
    assert [d["district"] for d in body["districts"]] == ["D2", "D1"]
    assert body["districts"][0]["rank"] == 1
    assert body["districts"][0]["need_score"] > 1 > body["districts"][1]["need_score"]


def test_area_indicators_without_population(client, runtime, city):
    body = client.get(
        "/api/v1/insights/areas", params={**AS_OF, "days": 60}, headers=manager_token(runtime)
    ).json()
    assert body["population_known"] is False
    assert all(d["requests_per_1000"] is None for d in body["districts"])
    assert all(d["need_score"] is not None for d in body["districts"])


def test_staffing_from_queue_events_uses_erlang_c(client, runtime, admin, office):
    office_body = {
        "slug": "roads-desk",
        "name": "Roads Desk",
        "organization": "roads",
        "timezone": "UTC",
        "desks": 1,
        "hours": [{"day": "MO", "opens": "08:00", "closes": "16:00"}],
    }
    created = client.post("/api/v1/directory/offices", headers=auth(admin), json=office_body)
    assert created.status_code == 201, created.text
    service = {
        "slug": "road-permit",
        "name": "Road permit",
        "organization": "roads",
        "locations": ["roads-desk"],
    }
    created = client.post("/api/v1/directory/services", headers=auth(admin), json=service)
    assert created.status_code == 201, created.text
    monday_ten = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)
    with unit_of_work(runtime.session_factory) as session:
        # Ten visitors between 10:00 and 11:00 on Monday, six minutes at the desk each.
        for n in range(10):
            issued = monday_ten + timedelta(minutes=6 * n)
            for kind, at in (
                ("issued", issued),
                ("called", issued),
                ("served", issued + timedelta(minutes=6)),
            ):
                directory_actions.record_visit_event(
                    session,
                    actor=SYSTEM,
                    location_slug="roads-desk",
                    event_id=f"{kind}-{n}",
                    type=kind,
                    ticket_code=f"R{n:03d}",
                    service_ref="road-permit" if kind == "issued" else None,
                    desk="1" if kind == "called" else None,
                    occurred_at=at,
                    now=NOW,
                )
    response = client.get(
        "/api/v1/insights/staffing",
        params={**AS_OF, "weeks": 1, "office": "roads-desk"},
        headers=manager_token(runtime),
    )
    assert response.status_code == 200, response.text
    (desk,) = response.json()["offices"]
    assert desk["handling_seconds"] == pytest.approx(360.0)
    assert desk["visits_measured"] == 10
    (hour,) = desk["hours"]
    assert (hour["day"], hour["hour"]) == ("Monday", 10)
    assert hour["arrivals_per_hour"] == 10
    assert hour["traffic_erlangs"] == pytest.approx(1.0)
    # One erlang: one desk can never keep up (agents must exceed the traffic); two serve
    # 1 - C(2, 1) x e^(-(2 - 1) x 600 / 360) = 1 - 1/3 x 0.19 = 94% within 10 minutes.
    assert hour["agents"] == 2
    assert (
        hour["agents"] == erlang.agents_needed(10, 360, target_seconds=600, target_level=0.8).agents
    )
    assert desk["understaffed_hours"] == 1  # the office has one desk
    missing = client.get(
        "/api/v1/insights/staffing", params={"office": "nowhere"}, headers=manager_token(runtime)
    )
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/insights/demand", {"days": 3}),
        ("/api/v1/insights/demand", {"by": "planet"}),
        ("/api/v1/insights/forecast", {"weeks": 9}),
        ("/api/v1/insights/backlog", {"as_of": "2026-03-18T12:00:00"}),  # no time zone
        ("/api/v1/insights/areas", {"as_of": "0001-01-02T00:00:00Z"}),
        ("/api/v1/insights/staffing", {"target_level": 1.5}),
        ("/api/v1/insights/areas", {"days": "many"}),
    ],
)
def test_bad_parameters_are_clear_4xx(client, runtime, office, path, params):
    response = client.get(path, params=params, headers=manager_token(runtime))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_request"


def test_insights_need_the_permission(client, runtime, office):
    anonymous = client.get("/api/v1/insights/backlog")
    assert anonymous.status_code == 401
    staff = client.get("/api/v1/insights/backlog", headers=auth(office["first"]))
    assert staff.status_code == 403
    assert staff.json()["code"] == "permission_denied"
    partner = make_account(runtime, "partner")
    assert client.get("/api/v1/insights/productivity", headers=auth(partner)).status_code == 403
    assert client.post("/api/v1/insights/triage", json={"text": "pothole"}).status_code == 401
    page = client.get("/insights", follow_redirects=False)
    assert page.status_code in (303, 401)
    assert client.get("/insights/areas", headers=auth(office["first"])).status_code == 403


# --- triage --------------------------------------------------------------------------------

POTHOLE_TEXTS = [
    "Deep pothole in the asphalt on {}",
    "The road surface is broken with a big hole near {}",
    "Pothole damaged my tyre outside {}",
]
NOISE_TEXTS = [
    "Loud music from a party at {} every night",
    "Neighbours shouting and noise late at {}",
    "Barking and loud noise after midnight near {}",
]
STREETS = [
    "Elm Street",
    "Oak Avenue",
    "Pine Road",
    "Maple Lane",
    "Cedar Way",
    "Birch Drive",
    "Ash Court",
]


def test_triage_model_is_trained_by_the_job_and_suggests_the_service(client, runtime, office):
    manager = manager_token(runtime)
    before = client.post("/api/v1/insights/triage", json={"text": "a pothole"}, headers=manager)
    assert before.status_code == 409
    assert "No triage model" in before.json()["message"]
    assert client.get("/api/v1/insights/triage", headers=manager).json()["trained"] is False
    with unit_of_work(runtime.session_factory) as session:
        for i, street in enumerate(STREETS):
            for text in POTHOLE_TEXTS:
                submit(session, "POTHOLE", NOW - timedelta(hours=i + 1), "D1", text.format(street))
            for text in NOISE_TEXTS:
                submit(session, "NOISE", NOW - timedelta(hours=i + 1), "D2", text.format(street))
    meta = tasks.train_triage(runtime)
    assert meta is not None
    assert meta["examples"] == 42
    assert meta["test_examples"] == 9  # 20% held out, stratified
    assert meta["service_accuracy"] >= 0.8
    status = client.get("/api/v1/insights/triage", headers=manager).json()
    assert status["trained"] is True
    assert status["model"]["service_accuracy"] == meta["service_accuracy"]
    response = client.post(
        "/api/v1/insights/triage",
        json={"text": "There is a pothole in the asphalt outside my house"},
        headers=auth(office["first"]),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["service"]["code"] == "POTHOLE"
    assert body["service"]["name"] == "Pothole"
    assert body["service"]["probability"] > 0.5
    assert body["alternatives"][0]["code"] == "NOISE"
    assert body["priority"]["value"] == 3
    noise = client.post(
        "/api/v1/insights/triage", json={"text": "loud party music all night"}, headers=manager
    ).json()
    assert noise["service"]["code"] == "NOISE"
    # The training is audited.
    from sqlalchemy import select

    from townhall.audit.models import AuditEntry

    with unit_of_work(runtime.session_factory) as session:
        audited = session.scalars(
            select(AuditEntry.action).where(AuditEntry.action.like("insights.%"))
        ).all()
    assert audited == ["insights.triage_trained"]
    empty = client.post("/api/v1/insights/triage", json={"text": ""}, headers=manager)
    assert empty.status_code == 422
    extra = client.post("/api/v1/insights/triage", json={"text": "x", "y": 1}, headers=manager)
    assert extra.status_code == 422
    # Staff see the suggestion on the request's page; a request filed under the wrong service
    # is pointed out. Residents' tracking pages never show it.
    with unit_of_work(runtime.session_factory) as session:
        misfiled = submit(session, "NOISE", NOW, "D1", "Deep pothole in the asphalt on Elm Street")
    login(client, office["first"].email)
    page = client.get(f"/requests/{misfiled}/manage")
    assert page.status_code == 200, page.text
    assert "Triage suggests" in page.text
    assert "not the service this request was filed under" in page.text
    assert "Triage suggests" not in client.get(f"/requests/{misfiled}").text


def test_triage_with_too_few_requests_keeps_no_model(runtime, office):
    with unit_of_work(runtime.session_factory) as session:
        submit(session, "POTHOLE", NOW, "D1", "a pothole")
    assert tasks.train_triage(runtime) is None
    assert triage.status(triage.model_dir(runtime.settings.data_dir)) is None


def test_training_can_be_requested_and_is_audited(client, runtime, office):
    response = client.post("/api/v1/insights/triage/train", headers=manager_token(runtime))
    assert response.status_code == 202, response.text
    assert response.json()["queued"] == "insights.train_triage"
    assert "insights.train_triage" in runtime.jobs.job_names
    staff = client.post("/api/v1/insights/triage/train", headers=auth(office["first"]))
    assert staff.status_code == 403


# --- pages ---------------------------------------------------------------------------------


def test_dashboard_and_areas_pages_render_charts_with_tables(client, runtime, city):
    manager = make_account(runtime, "manager", orgs=["roads"])
    login(client, manager.email)
    page = client.get("/insights")
    assert page.status_code == 200, page.text
    html = page.text
    assert "<h1>Insights</h1>" in html
    assert '<svg class="chart-svg"' in html
    assert "<table" in html
    assert "The chart's numbers as a table" in html
    assert 'href="/insights"' in html  # the navigation link
    assert "Pothole" in html
    assert 'id="backlog-title"' in html
    assert 'id="demand-title"' in html
    assert 'class="forecast-band"' in html
    chosen = client.get("/insights", params={"service": "NOISE"})
    assert chosen.status_code == 200
    assert 'value="NOISE" selected' in chosen.text
    areas = client.get("/insights/areas", params={"days": 90})
    assert areas.status_code == 200, areas.text
    assert "<h1>Area indicators</h1>" in areas.text
    assert '<th scope="row">D1</th>' in areas.text
    assert client.get("/insights/areas", params={"days": 0}).status_code == 422
