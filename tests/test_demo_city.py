"""The demo city is deterministic, believable and carries the patterns dashboards look for."""

from __future__ import annotations

import collections
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import shapely
from shapely.geometry import shape

from townhall.demo.city import (
    DEFAULT_END,
    HISTORY_DAYS,
    DemoCity,
    districts_geojson,
    generate_city,
    opening_hours_osm,
)

SRC = Path(__file__).resolve().parents[1] / "src"
PHONE = re.compile(r"\(?413\)?[-. ]?555[-.]?01\d\d")


@pytest.fixture(scope="module")
def city() -> DemoCity:
    return generate_city()


@pytest.fixture(scope="module")
def local_days(city: DemoCity) -> collections.Counter[date]:
    tz = ZoneInfo(city.timezone)
    return collections.Counter(r.requested_at.astimezone(tz).date() for r in city.service_requests)


def monthly(city: DemoCity, code: str) -> collections.Counter[int]:
    tz = ZoneInfo(city.timezone)
    return collections.Counter(
        r.requested_at.astimezone(tz).month for r in city.service_requests if r.service_code == code
    )


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_gives_the_same_city(city: DemoCity) -> None:
    assert generate_city() == city


def test_different_seed_gives_a_different_city() -> None:
    a = generate_city(1, request_count=2_000)
    b = generate_city(2, request_count=2_000)
    assert a.districts != b.districts
    assert [r.description for r in a.service_requests] != [
        r.description for r in b.service_requests
    ]


def test_output_does_not_depend_on_hash_randomisation() -> None:
    """Set iteration order changes with PYTHONHASHSEED; the city must not."""
    code = (
        "import hashlib; from townhall.demo.city import generate_city; "
        "print(hashlib.sha256(repr(generate_city(5, request_count=3000)).encode()).hexdigest())"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(SRC)}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        digests.add(done.stdout.strip())
    assert len(digests) == 1


def test_request_count_does_not_move_the_geography() -> None:
    assert generate_city(request_count=10).districts == generate_city(request_count=20).districts


# --- counts and references ----------------------------------------------------------------------


def test_counts(city: DemoCity) -> None:
    assert 8 <= len(city.districts) <= 12
    assert 4 <= len(city.offices) <= 8
    assert len(city.services) >= 30
    assert sum(s.accepts_requests for s in city.services) >= 9
    assert len(city.service_requests) == 60_000 >= 50_000
    assert 3 <= len(city.datasets) <= 5
    assert {m.role for m in city.staff} == {"admin", "publisher", "manager", "staff", "partner"}


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6, 7, 8])
def test_other_seeds_stay_within_bounds(seed: int) -> None:
    other = generate_city(seed, request_count=500)
    assert 8 <= len(other.districts) <= 12
    polygons = [shape(d.geometry()) for d in other.districts]
    assert all(p.is_valid and p.geom_type == "Polygon" for p in polygons)
    assert shapely.union_all(polygons).geom_type == "Polygon"
    assert len(other.service_requests) == 500


def test_references_resolve(city: DemoCity) -> None:
    offices = {o.slug for o in city.offices}
    districts = {d.code for d in city.districts}
    staff = {m.id for m in city.staff}
    services = {s.code: s for s in city.services}
    assert len(services) == len(city.services)
    for s in city.services:
        assert s.office_slug in offices
        assert set(s.available_at) <= offices
        assert (s.target_days is not None) == s.accepts_requests
        assert s.keywords
        assert s.channels
        assert s.description
    assert {o.district_code for o in city.offices} <= districts
    assert {h.office_slug for h in city.opening_hours} == offices
    for r in city.service_requests:
        assert services[r.service_code].accepts_requests
        assert r.office_slug == services[r.service_code].office_slug
        assert r.district_code in districts
        assert r.assigned_staff_id is None or r.assigned_staff_id in staff


def test_identifiers(city: DemoCity) -> None:
    requests = city.service_requests
    assert [r.id for r in requests] == list(range(1, len(requests) + 1))
    assert len({r.tracking_code for r in requests}) == len(requests)
    assert len({m.email for m in city.staff}) == len(city.staff)
    for m in city.staff:
        if m.role != "partner":
            assert m.email.endswith("@" + city.domain)


# --- geography -----------------------------------------------------------------------------------


def test_district_polygons_are_valid_and_tile_the_city(city: DemoCity) -> None:
    polygons = [shape(d.geometry()) for d in city.districts]
    for polygon in polygons:
        assert polygon.is_valid
        assert polygon.geom_type == "Polygon"
    for a, b in itertools.combinations(polygons, 2):
        assert not a.relate_pattern(b, "2********")  # interiors never overlap
    union = shapely.union_all(polygons)
    assert union.geom_type == "Polygon"  # one city without gaps between districts
    assert union.area == pytest.approx(sum(p.area for p in polygons), rel=1e-9)
    # A believable city: a few hundred thousand people on 60-250 km2 around the centre.
    assert 60 <= sum(d.area_km2 for d in city.districts) <= 250
    assert 150_000 <= sum(d.population for d in city.districts) <= 600_000
    assert union.contains(shapely.Point(city.centre_lon, city.centre_lat))


def test_every_request_lies_inside_its_district(city: DemoCity) -> None:
    by_district = collections.defaultdict(list)
    for r in city.service_requests:
        by_district[r.district_code].append((r.lon, r.lat))
    for d in city.districts:
        points = by_district[d.code]
        assert points, f"no requests in {d.name}"
        polygon = shape(d.geometry())
        xs, ys = zip(*points, strict=True)
        assert shapely.contains_xy(polygon, xs, ys).all()


def test_offices_and_dataset_points_lie_inside_their_district(city: DemoCity) -> None:
    polygons = {d.code: shape(d.geometry()) for d in city.districts}
    for o in city.offices:
        assert polygons[o.district_code].contains(shapely.Point(o.lon, o.lat))
    for d in city.districts:
        assert polygons[d.code].contains(shapely.Point(d.centre_lon, d.centre_lat))
    for dataset in city.datasets:
        for row in dataset.records():
            if "lat" in row:
                point = shapely.Point(row["lon"], row["lat"])
                assert polygons[row["district_code"]].contains(point)


def test_districts_geojson(city: DemoCity) -> None:
    collection = json.loads(json.dumps(districts_geojson(city)))
    assert collection["type"] == "FeatureCollection"
    assert len(collection["features"]) == len(city.districts)
    for feature in collection["features"]:
        assert feature["geometry"]["type"] == "Polygon"
        ring = feature["geometry"]["coordinates"][0]
        assert ring[0] == ring[-1]
        assert shapely.Polygon(ring).exterior.is_ccw  # RFC 7946 right-hand rule
        assert "reporting_propensity" not in feature["properties"]


# --- offices and hours ---------------------------------------------------------------------------


def test_opening_hours_have_the_promised_variety(city: DemoCity) -> None:
    hours = city.opening_hours
    assert all(h.opens < h.closes for h in hours)
    assert any(h.closes.hour >= 19 for h in hours), "an office open late"
    per_day = collections.Counter((h.office_slug, h.weekday) for h in hours)
    assert any(n == 2 for n in per_day.values()), "an office with a lunch break"
    assert any(h.weekday == 5 and h.closes.hour <= 13 for h in hours), "Saturday mornings"
    assert all(o.timezone == city.timezone for o in city.offices)


def test_opening_hours_osm_groups_days(city: DemoCity) -> None:
    hall = [h for h in city.opening_hours if h.office_slug == "city-hall"]
    assert opening_hours_osm(hall) == "Mo-We 08:30-16:30; Th 08:30-19:00; Fr 08:30-16:30"
    assert opening_hours_osm([]) == "off"


# --- time patterns -------------------------------------------------------------------------------


def test_timestamps_are_aware_ordered_and_inside_the_window(city: DemoCity) -> None:
    assert city.end == DEFAULT_END
    assert city.start == DEFAULT_END - timedelta(days=HISTORY_DAYS)
    previous = city.start
    for r in city.service_requests:
        assert r.requested_at.utcoffset() == timedelta(0)
        assert previous <= r.requested_at < city.end
        previous = r.requested_at
        stamps = [r.requested_at, r.acknowledged_at, r.started_at, r.closed_at]
        present = [t for t in stamps if t is not None]
        assert all(t.tzinfo is not None for t in present)
        assert present == sorted(present)
        assert r.updated_at == present[-1] <= city.end
        assert r.expected_at > r.requested_at
        if r.closed_at is not None:
            assert r.closed_at >= r.requested_at


def test_lifecycle_statuses(city: DemoCity) -> None:
    for r in city.service_requests:
        assert (r.status == "closed") == (r.closed_at is not None) == (r.resolution is not None)
        assert (r.status == "received") == (r.acknowledged_at is None)
        assert (r.status == "in_progress") == (r.started_at is not None and r.closed_at is None)
    recent = [r for r in city.service_requests if r.requested_at > city.end - timedelta(days=7)]
    old = [r for r in city.service_requests if r.requested_at < city.end - timedelta(days=365)]
    recent_open = sum(r.is_open for r in recent) / len(recent)
    old_open = sum(r.is_open for r in old) / len(old)
    assert recent_open > 0.3 > 0.01 > old_open
    assert {r.status for r in recent} == {"received", "acknowledged", "in_progress", "closed"}


def test_resolution_times_follow_the_service(city: DemoCity) -> None:
    days = collections.defaultdict(list)
    for r in city.service_requests:
        if r.resolution == "resolved":
            days[r.service_code].append((r.closed_at - r.requested_at).total_seconds() / 86400)
    assert statistics.median(days["NOISE"]) < 1 < statistics.median(days["POTHOLE"])
    assert statistics.median(days["SIDEWALK"]) > 3 * statistics.median(days["POTHOLE"])


def test_weekly_seasonality(local_days: collections.Counter[date]) -> None:
    weekday = [n for d, n in local_days.items() if d.weekday() < 5]
    weekend = [n for d, n in local_days.items() if d.weekday() >= 5]
    assert statistics.mean(weekday) > 1.3 * statistics.mean(weekend)


def test_yearly_seasonality(city: DemoCity) -> None:
    potholes = monthly(city, "POTHOLE")
    assert potholes[2] + potholes[3] > 2 * (potholes[7] + potholes[8])
    snow = monthly(city, "SNOW_ICE")
    assert snow[1] + snow[2] > 20 * (snow[6] + snow[7] + snow[8] + 1)
    leaves = monthly(city, "LEAF_COLLECTION")
    assert leaves[10] + leaves[11] > 3 * (leaves[4] + leaves[5] + leaves[6] + leaves[7])
    grass = monthly(city, "OVERGROWN")
    assert grass[6] + grass[7] > 5 * (grass[12] + grass[1])


def test_hour_of_day_pattern(city: DemoCity) -> None:
    tz = ZoneInfo(city.timezone)
    hours = collections.Counter(r.requested_at.astimezone(tz).hour for r in city.service_requests)
    assert min(hours[h] for h in range(9, 16)) > 3 * max(hours[h] for h in range(2, 5))
    noise = collections.Counter(
        r.requested_at.astimezone(tz).hour
        for r in city.service_requests
        if r.service_code == "NOISE"
    )
    assert noise[23] > noise[10]


def test_history_follows_the_end_argument() -> None:
    end = datetime(2025, 1, 1, 12, tzinfo=UTC)
    moved = generate_city(request_count=1_000, end=end)
    assert moved.end == end
    assert all(
        end - timedelta(days=HISTORY_DAYS) <= r.requested_at < end for r in moved.service_requests
    )
    assert all(r.updated_at <= end for r in moved.service_requests)


def test_naive_end_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generate_city(end=datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test


# --- equity, people, text ------------------------------------------------------------------------


def test_reporting_rates_differ_between_districts(city: DemoCity) -> None:
    counts = collections.Counter(r.district_code for r in city.service_requests)
    per_head = {d.code: counts[d.code] / d.population for d in city.districts}
    assert max(per_head.values()) > 1.8 * min(per_head.values())
    # The generator's ground truth is recoverable: high-propensity districts report more.
    ranked = sorted(city.districts, key=lambda d: d.reporting_propensity)
    low, high = ranked[: len(ranked) // 3], ranked[-(len(ranked) // 3) :]
    assert statistics.mean(per_head[d.code] for d in high) > statistics.mean(
        per_head[d.code] for d in low
    )


def test_residents_are_fake_and_about_forty_percent(city: DemoCity) -> None:
    named = [r for r in city.service_requests if r.resident_name]
    assert 0.35 < len(named) / len(city.service_requests) < 0.45
    emails = [r.resident_email for r in city.service_requests if r.resident_email]
    assert emails
    assert all(e.endswith("@example.org") for e in emails)
    assert all(r.resident_name for r in city.service_requests if r.resident_email)


def test_personal_data_in_descriptions_is_labelled(city: DemoCity) -> None:
    kinds = collections.Counter(k for r in city.service_requests for k in r.description_pii)
    assert {"name", "phone", "email", "plate"} <= set(kinds)
    labelled = [r for r in city.service_requests if r.contains_pii]
    assert 0.03 < len(labelled) / len(city.service_requests) < 0.2
    for r in city.service_requests:
        text = r.description
        assert ("@" in text) == ("email" in r.description_pii)
        assert bool(PHONE.search(text)) == ("phone" in r.description_pii)
    descriptions = {r.description for r in city.service_requests}
    assert len(descriptions) > 20_000, "templates vary"


# --- datasets ------------------------------------------------------------------------------------


def test_datasets_are_complete(city: DemoCity) -> None:
    slugs = [d.slug for d in city.datasets]
    assert len(set(slugs)) == len(slugs)
    for dataset in city.datasets:
        assert dataset.title
        assert dataset.description
        assert dataset.keywords
        assert dataset.license_id in {"CC-BY-4.0", "CC0-1.0", "ODbL-1.0"}
        assert dataset.theme
        assert dataset.frequency
        assert dataset.rows
        types = {"string": str, "integer": int, "number": float, "boolean": bool}
        for row in dataset.rows:
            assert len(row) == len(dataset.columns)
            for value, column in zip(row, dataset.columns, strict=True):
                assert value is None or isinstance(value, types[column.type]), column.name
        json.dumps(dataset.records())
    population = next(d for d in city.datasets if d.slug == "district-population")
    assert sum(r["population"] for r in population.records()) == sum(
        d.population for d in city.districts
    )
