"""Resident pages (no account) and the staff counter page, with the demo city's directory."""

from __future__ import annotations

import json
import re

import pytest

from townhall.actor import system_actor
from townhall.db import unit_of_work
from townhall.demo.city import generate_city
from townhall.directory.demo import seed_directory

from .conftest import csrf_from, login, make_account
from .test_web import BROWSER, assert_accessible_shell

CITY = generate_city(request_count=0)


@pytest.fixture
def demo(runtime):
    with unit_of_work(runtime.session_factory) as session:
        seed_directory(session, actor=system_actor("demo"), city=CITY)


def test_search_page_finds_services_by_words_and_typos(client, demo):
    page = client.get("/services", params={"q": "bulky waste pickup"}, headers=BROWSER)
    assert page.status_code == 200
    assert_accessible_shell(page.text)
    first = re.search(r'<h2 class="h3"><a href="/services/([a-z0-9-]+)"', page.text)
    assert first.group(1) == "bulky-waste"
    typo = client.get("/services", params={"q": "dog licence"}).text
    assert 'href="/services/dog-license"' in typo
    passport = client.get("/services", params={"q": "renew passport"}).text
    assert 'href="/services/birth-cert"' in passport
    nothing = client.get("/services", params={"q": "qqqq zzzz"}).text
    assert "0 services found" in nothing


def test_browse_by_category_and_life_event(client, demo):
    home = client.get("/services", headers=BROWSER)
    assert_accessible_shell(home.text)
    assert 'href="/services?category=civil-records"' in home.text
    assert 'href="/services?life_event=having-a-baby"' in home.text
    records = client.get("/services", params={"category": "civil-records"}).text
    assert 'href="/services/birth-cert"' in records
    assert 'href="/services/pothole"' not in records
    assert client.get("/services", params={"category": "nope"}, headers=BROWSER).status_code == 404


def test_service_page_has_steps_documents_fees_and_offices(client, demo):
    page = client.get("/services/birth-cert", headers=BROWSER)
    assert page.status_code == 200
    assert_accessible_shell(page.text)
    for text in (
        "How to get it",
        "What to bring",
        "Photo ID",
        "15.00 USD",
        "Processing time",
        "Where to go",
        "Riverton City Hall",
    ):
        assert text in page.text, text
    points = json.loads(re.search(r'id="map-data">(.*?)</script>', page.text, re.S).group(1))
    assert {p["slug"] for p in points} >= {"city-hall"}
    assert "/directory-assets/leaflet/leaflet.js" in page.text
    near = client.get("/services/birth-cert", params={"lat": 42.2, "lon": -72.6}).text
    assert " km" in near
    request_type = client.get("/services/pothole").text
    assert "Start a request" in request_type
    assert client.get("/services/nope", headers=BROWSER).status_code == 404


def test_office_and_status_pages(client, demo):
    office = client.get("/offices/city-hall", headers=BROWSER)
    assert_accessible_shell(office.text)
    assert "Opening hours" in office.text
    assert "08:30–16:30" in office.text
    assert 'data-channel="office.city-hall"' in office.text
    offices = client.get("/offices", headers=BROWSER)
    assert_accessible_shell(offices.text)
    status = client.get("/status", headers=BROWSER)
    assert_accessible_shell(status.text)
    assert status.text.count("data-office-waiting=") == len(CITY.offices)
    assert client.get("/directory-assets/live.js").status_code == 200
    assert client.get("/directory-assets/leaflet/leaflet.css").status_code == 200


def test_counter_page_calls_the_next_ticket(client, demo, runtime):
    assert client.get("/counter/city-hall").status_code == 401
    clerk = make_account(runtime, "staff", orgs=["city-hall"])
    login(client, clerk.email)
    page = client.get("/counter/city-hall", headers=BROWSER)
    assert page.status_code == 200
    assert_accessible_shell(page.text)
    csrf = csrf_from(page.text)
    issued = client.post(
        "/counter/city-hall/issue",
        data={"csrf_token": csrf, "service": "birth-cert", "desk": "2"},
        follow_redirects=False,
    )
    assert issued.status_code == 303
    assert "Ticket+B001+issued" in issued.headers["location"]
    refused = client.post("/counter/city-hall/call-next", data={"desk": "2"})
    assert refused.status_code == 403, "CSRF"
    called = client.post("/counter/city-hall/call-next", data={"csrf_token": csrf, "desk": "2"})
    assert "Ticket B001 called to desk 2." in called.text
    assert "Serving <strong>B001</strong>" in called.text
    served = client.post(
        "/counter/city-hall/finish",
        data={"csrf_token": csrf, "desk": "2", "ticket": "B001", "outcome": "served"},
    )
    assert "Ticket B001 served." in served.text
    elsewhere = client.get("/counter/permit-center")
    assert elsewhere.status_code == 403
