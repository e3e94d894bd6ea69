"""District of a request from the published boundaries: a real GeoJSON dataset ingested into
the lake, point-in-polygon through the app's `locate_district`, the refresh when a new version
of the boundaries is published, and area subscriptions that then fire for requests submitted
with only lat/long. Both backends."""

from __future__ import annotations

import json

from shapely.geometry import box
from sqlalchemy import select

from townhall.db import unit_of_work
from townhall.directory.districts import DistrictIndex, DistrictLocator
from townhall.notify.models import NotifyMessage
from townhall.service_requests.models import ServiceRequest

from .test_datastore_support import make_dataset, make_publisher, upload_ok
from .test_service_requests import setup_city

WEST = box(-72.70, 42.00, -72.60, 42.10)
EAST = box(-72.60, 42.00, -72.50, 42.10)


def boundaries(codes: tuple[str, str]) -> bytes:
    features = [
        {
            "type": "Feature",
            "properties": {"code": code, "name": f"District {code}"},
            "geometry": json.loads(json.dumps(polygon.__geo_interface__)),
        }
        for code, polygon in zip(codes, (WEST, EAST), strict=True)
    ]
    return json.dumps({"type": "FeatureCollection", "features": features}).encode()


def test_the_index_answers_inside_outside_and_on_the_border() -> None:
    index = DistrictIndex.build([("D02", EAST), ("D01", WEST)])
    assert index.locate(42.05, -72.65) == "D01"
    assert index.locate(42.05, -72.55) == "D02"
    assert index.locate(42.05, -72.60) == "D01", "a shared border goes to the first code"
    assert index.locate(41.00, -72.65) is None
    assert DistrictIndex.build([]).locate(42.05, -72.65) is None


def submit_at(client, lat: float, long: float) -> str:
    response = client.post(
        "/api/v1/requests",
        json={"service_code": "GRAFFITI", "lat": lat, "long": long, "description": "Tags."},
    )
    assert response.status_code == 201, response.text
    return response.json()["tracking_code"]


def district_of(runtime, code: str) -> str | None:
    with unit_of_work(runtime.session_factory) as session:
        return session.scalar(
            select(ServiceRequest.district_code).where(ServiceRequest.tracking_code == code)
        )


def test_requests_with_only_lat_long_get_their_district_and_reach_area_followers(
    client, app, admin, runtime
) -> None:
    from townhall.actor import ANONYMOUS
    from townhall.notify import actions as notify

    setup_city(runtime)
    # Check the published version on every lookup, so the test sees a new one at once.
    app.state.locate_district = DistrictLocator(runtime, check_seconds=0)
    before = submit_at(client, 42.05, -72.65)
    assert district_of(runtime, before) is None, "no boundaries published yet"

    publisher = make_publisher(client, admin, runtime)
    resource = make_dataset(client, publisher, "district-boundaries")
    upload_ok(client, publisher, "district-boundaries", resource, boundaries(("D01", "D02")),
              "districts.geojson")  # fmt: skip
    with unit_of_work(runtime.session_factory) as session:
        notify.subscribe(session, actor=ANONYMOUS, channel="email", topic="area:D01:*",
                         target="west@example.org")  # fmt: skip
        notify.subscribe(session, actor=ANONYMOUS, channel="email", topic="area:D02:GRAFFITI",
                         target="east@example.org")  # fmt: skip

    west = submit_at(client, 42.05, -72.65)
    east = submit_at(client, 42.02, -72.51)
    outside = submit_at(client, 43.0, -72.65)
    assert district_of(runtime, west) == "D01"
    assert district_of(runtime, east) == "D02"
    assert district_of(runtime, outside) is None
    assert client.get(f"/api/v1/requests/{west}").json()["district"] == "D01"
    with unit_of_work(runtime.session_factory) as session:
        sent = {
            (m.recipient, m.reference)
            for m in session.scalars(
                select(NotifyMessage).where(NotifyMessage.template_slug == "request.new_in_area")
            )
        }
    assert sent == {
        ("west@example.org", f"request:{west}"),
        ("east@example.org", f"request:{east}"),
    }

    # A new version of the boundaries (the codes swapped) is used without a restart.
    upload_ok(client, publisher, "district-boundaries", resource, boundaries(("D02", "D01")),
              "districts.geojson")  # fmt: skip
    again = submit_at(client, 42.05, -72.65)
    assert district_of(runtime, again) == "D02"


def test_a_missing_or_switched_off_dataset_leaves_the_district_empty(runtime) -> None:
    assert DistrictLocator(runtime)(42.05, -72.65) is None
    off = runtime.settings.model_copy(update={"district_boundaries_dataset": None})
    runtime_off = type(runtime)(off)
    try:
        assert DistrictLocator(runtime_off)(42.05, -72.65) is None
    finally:
        runtime_off.close()
