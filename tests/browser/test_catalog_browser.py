"""The catalog in a real browser: a data user searches the catalog, opens a dataset, sorts and
filters its preview, draws a chart and sees the map; a publisher creates a dataset, uploads a
file with a progress bar, reads the validation report and publishes.

Debian's Chromium through Playwright, against a real `townhall serve` subprocess on loopback with
its own data folder, seeded with the NYC 311 sample (timestamps, categories, lat/long). The
upload is throttled through the DevTools protocol so the progress bar has time to move.
Screenshots land in `test-artifacts/` (gitignored).
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from .conftest import (
    LiveServer,
    free_port,
    run_in_environment,
    screenshot,
    server_environment,
    serving,
    watch_problems,
)

pytestmark = pytest.mark.browser

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SAMPLE_311 = SHARED_DATA / "nyc311_service_requests_sample.csv"
PUBLISHER_EMAIL = "publisher@city.example"
PUBLISHER_PASSWORD = "publisher-password-123"

SEED = textwrap.dedent(
    """
    import sys
    from townhall.accounts import actions as accounts
    from townhall.accounts.auth import actor_for_user
    from townhall.actor import system_actor
    from townhall.catalog import actions as catalog
    from townhall.config import Settings
    from townhall.datastore.ingest import ingest_file
    from townhall.db import unit_of_work
    from townhall.governance import actions as governance
    from townhall.migrate import upgrade
    from townhall.runtime import Runtime

    runtime = Runtime(Settings())
    upgrade(runtime.engine)
    system = system_actor("browser-test")
    with unit_of_work(runtime.session_factory) as session:
        accounts.create_organization(session, actor=system, slug="311", name="311 Call Centre")
        accounts.create_organization(session, actor=system, slug="parks", name="Parks Department")
        user = accounts.create_user(
            session, actor=system, email=sys.argv[2], password=sys.argv[3], role="publisher",
            display_name="Pat Publisher", organization_slugs=["311", "parks"],
        )
        session.flush()
        publisher = actor_for_user(user)
        catalog.create_dataset(
            session, actor=publisher, organization_slug="311", slug="service-requests",
            title="311 service requests", license_id="CC-BY-4.0", frequency="DAILY",
            description="Every **311 request**: what, where and when.",
            keywords=["311", "requests", "noise"], themes=["GOVE", "SOCI"],
        )
        resource = catalog.create_resource(
            session, actor=publisher, slug="service-requests", name="requests", format="CSV"
        )
        catalog.set_dataset_state(
            session, actor=publisher, slug="service-requests", state="published"
        )
        for i, (title, theme) in enumerate(
            [("Park benches", "ENVI"), ("Playgrounds", "EDUC"), ("Street trees", "ENVI")]
        ):
            catalog.create_dataset(
                session, actor=publisher, organization_slug="parks", slug=f"parks-{i}",
                title=title, license_id="CC0-1.0", themes=[theme], keywords=["parks"],
            )
            catalog.set_dataset_state(
                session, actor=publisher, slug=f"parks-{i}", state="published"
            )
        # Open data: NYC's address columns are classified (confirmed public by the
        # operator) before a version carries them (docs/governance.md).
        governance.classify_dataset(
            session, actor=system, slug="service-requests",
            columns={"Incident Address": "public", "Address Type": "public"},
        )
        resource_id = resource.id
    ingest_file(
        runtime, actor=publisher, resource_id=resource_id, path=sys.argv[1],
        source_name="311-sample.csv",
    )
    runtime.close()
    print("seeded")
    """
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    if not SAMPLE_311.exists():
        pytest.skip(f"the shared 311 sample is not at {SAMPLE_311}")
    work = tmp_path_factory.mktemp("browser-catalog")
    port = free_port()
    env = server_environment(work, port, TOWNHALL_SITE_NAME="Riverside City Hall")
    run_in_environment(
        [sys.executable, "-c", SEED, str(SAMPLE_311), PUBLISHER_EMAIL, PUBLISHER_PASSWORD],
        env,
        work,
    )
    with serving(work, port, env) as running:
        yield running


def test_search_preview_chart_and_map(browser: Browser, server: LiveServer) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems = watch_problems(page)
    try:
        # Search by words, then narrow with a facet checkbox (a plain GET form).
        page.goto(f"{server.base_url}/datasets")
        expect(page.get_by_role("heading", level=1)).to_have_text("Open data")
        expect(page.get_by_role("heading", name="4 datasets")).to_be_visible()
        screenshot(page, "catalog-search")
        # The facets are reached and ticked with the keyboard alone.
        page.get_by_label("Search datasets").focus()
        page.keyboard.press("Tab")
        expect(page.get_by_role("button", name="Search", exact=True)).to_be_focused()
        page.keyboard.press("Tab")
        first_box = page.locator(".facets input[type=checkbox]").first
        expect(first_box).to_be_focused()
        page.keyboard.press("Space")
        expect(first_box).to_be_checked()
        page.keyboard.press("Space")
        expect(first_box).not_to_be_checked()
        page.get_by_role("checkbox", name=re.compile(r"^Environment")).check()
        page.get_by_role("button", name="Apply filters").click()
        expect(page).to_have_url(re.compile(r"theme=ENVI"))
        expect(page.get_by_role("heading", name="2 datasets")).to_be_visible()
        expect(page.get_by_role("link", name=re.compile("Remove filter Theme"))).to_be_visible()
        page.get_by_role("link", name="Clear all filters").click()
        page.get_by_label("Search datasets").fill("noise")
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name=re.compile(r"^1 dataset for"))).to_be_visible()
        page.get_by_role("link", name="311 service requests").click()

        # The dataset page: metadata, preview, JSON-LD.
        expect(page.get_by_role("heading", level=1)).to_contain_text("311 service requests")
        preview = page.get_by_role("table", name=re.compile("^requests: rows 1 to 25"))
        expect(preview).to_be_visible()
        expect(page.locator("#preview-count")).to_contain_text("Rows 1–25 of 1,000")
        assert page.locator('script[type="application/ld+json"]').count() == 1
        screenshot(page, "catalog-dataset")

        # Sort by a column header (a link), then filter with the form.
        page.get_by_role("link", name="Complaint Type (sort ascending)").focus()
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(r"sort=Complaint"))
        header = page.get_by_role("columnheader", name=re.compile("^Complaint Type"))
        expect(header).to_have_attribute("aria-sort", "ascending")
        page.get_by_label("Column", exact=True).select_option("Borough")
        page.get_by_label("Condition").select_option("eq")
        page.get_by_label("Value").fill("BROOKLYN")
        page.get_by_role("button", name="Apply").click()
        expect(page).to_have_url(re.compile(r"Borough__eq=BROOKLYN"))
        count_text = page.locator("#preview-count").inner_text()
        brooklyn = int(re.search(r"of ([\d,]+)", count_text).group(1).replace(",", ""))
        assert 0 < brooklyn < 1000
        boroughs = page.locator("table.preview tbody tr td:nth-child(26)").all_inner_texts()
        assert boroughs
        assert set(boroughs) == {"BROOKLYN"}, boroughs[:5]
        # Page 2 of the filtered rows.
        page.get_by_role("navigation", name="Preview pages").get_by_role(
            "link", name="Next page"
        ).click()
        expect(page.locator("#preview-count")).to_contain_text("Rows 26–")
        screenshot(page, "catalog-preview-filtered")

        # Chart: the default is a line over the dates; choose a category column for bars.
        chart = page.locator("figure.chart")
        expect(chart).to_have_attribute("data-chart", "line")
        expect(chart.locator("polyline.line")).to_be_visible()
        page.get_by_label("Column to draw").select_option("Complaint Type")
        page.get_by_role("button", name="Draw").click()
        expect(page).to_have_url(re.compile(r"_chart=Complaint"))
        expect(chart).to_have_attribute("data-chart", "bar")
        bars = chart.locator("g.bar rect")
        assert bars.count() >= 5
        box = bars.first.bounding_box()
        assert box is not None
        assert box["width"] > 20
        page.locator("#chart").scroll_into_view_if_needed()
        screenshot(page, "catalog-chart", full_page=False)
        page.get_by_text("The chart's numbers as a table").click()
        expect(page.get_by_role("table", name=re.compile("Most common values"))).to_be_visible()

        # Map: Leaflet (the directory's vendored copy) with the filtered points, no tiles.
        the_map = page.locator("#data-map")
        expect(the_map).to_have_class(re.compile("map-ready"))
        expect(the_map).to_have_class(re.compile("leaflet-container"))
        drawn = int(the_map.get_attribute("data-features") or 0)
        assert 0 < drawn <= brooklyn
        assert page.locator("#data-map .leaflet-tile").count() == 0
        the_map.scroll_into_view_if_needed()
        screenshot(page, "catalog-map", full_page=False)

        # On a phone the page does not scroll sideways; the preview table scrolls in its box.
        page.set_viewport_size({"width": 375, "height": 800})
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page is {overflow}px wider than a phone screen"
        screenshot(page, "catalog-dataset-phone")
        assert problems == [], problems
    except Exception:
        screenshot(page, "catalog-failure")
        print(server.log())
        raise
    finally:
        context.close()


def test_publisher_creates_uploads_with_progress_and_publishes(
    browser: Browser, server: LiveServer, tmp_path: Path
) -> None:
    # About 3 MB, so that at 512 KB/s the upload takes several seconds.
    big = tmp_path / "benches.csv"
    lines = ["id,park,seats,installed,latitude,longitude"]
    lines += [
        f"{i},Park {i % 40},{2 + i % 5},2023-{1 + i % 12:02d}-{1 + i % 28:02d},"
        f"{40.6 + (i % 997) / 5000:.5f},{-74.0 + (i % 991) / 5000:.5f}"
        for i in range(60_000)
    ]
    big.write_text("\n".join(lines) + "\n")

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems = watch_problems(page)
    try:
        page.goto(f"{server.base_url}/login?next=/datasets/new")
        page.get_by_label("Email").fill(PUBLISHER_EMAIL)
        page.get_by_label("Password").fill(PUBLISHER_PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(f"{server.base_url}/datasets/new")

        # The form refuses mistakes, on the form, with focus on the list of problems.
        page.get_by_label("Title").fill("Benches")
        page.get_by_label("Short name in addresses").fill("Bad Slug")
        page.get_by_role("button", name="Create and upload data").click()
        summary = page.get_by_role("alert").filter(has_text="There is a problem")
        expect(summary).to_be_visible()
        expect(summary).to_be_focused()
        screenshot(page, "catalog-form-errors")
        page.get_by_label("Short name in addresses").fill("")
        page.get_by_label("Publishing office").select_option("parks")
        page.get_by_label("Licence").select_option("CC-BY-4.0")
        page.get_by_label("How often it is updated").select_option("MONTHLY")
        page.get_by_role("checkbox", name="Environment").check()
        page.get_by_label("Keywords").fill("benches, parks")
        page.get_by_label("Description").fill("Every bench in every park.")
        page.get_by_role("button", name="Create and upload data").click()
        expect(page).to_have_url(re.compile(r"/datasets/benches/upload\?created=1$"))
        expect(page.get_by_role("status").first).to_contain_text("created as a draft")

        # Upload through XMLHttpRequest, slowed down so the bar moves.
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send(
            "Network.emulateNetworkConditions",
            {
                "offline": False,
                "latency": 20,
                "downloadThroughput": -1,
                "uploadThroughput": 512 * 1024,
            },
        )
        page.get_by_label("Name of the new table").fill("Benches table")
        page.get_by_label("File", exact=True).set_input_files(str(big))
        screenshot(page, "catalog-upload-form")
        page.get_by_role("button", name="Upload and check").click()
        bar = page.locator("#upload-progress")
        expect(bar).to_be_visible()
        page.wait_for_function(
            "() => { const b = document.getElementById('upload-progress');"
            " return b && b.value > 5 && b.value < 95; }",
            timeout=30_000,
        )
        expect(page.locator("#upload-status")).to_contain_text(re.compile(r"Uploading: \d+%"))
        screenshot(page, "catalog-upload-progress", full_page=False)
        moving = page.evaluate(
            "Number(document.getElementById('upload-form').getAttribute('data-progress-events'))"
        )
        assert moving >= 2, moving

        # The report of the new version, then publish.
        expect(page).to_have_url(
            re.compile(r"/datasets/benches/upload\?resource=\d+&version=1#upload-result$"),
            timeout=90_000,
        )
        cdp.send(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )
        result = page.get_by_role("region", name=re.compile("Version 1 of Benches table"))
        expect(result).to_be_visible()
        expect(result).to_contain_text("60,000 rows and 6 columns")
        expect(result).to_contain_text("Valid.")
        expect(
            result.get_by_role("table", name="Columns as loaded").get_by_role("row")
        ).to_have_count(7)
        screenshot(page, "catalog-upload-report")
        page.get_by_role("button", name="Publish").click()
        expect(page).to_have_url(f"{server.base_url}/datasets/benches?_published=1")
        expect(page.get_by_role("status").first).to_contain_text("Published")
        expect(page.locator("#preview-count")).to_contain_text("of 60,000")

        # A refused file says which rows are wrong, and the published version stays.
        page.goto(f"{server.base_url}/datasets/benches/upload")
        bad = tmp_path / "ragged.csv"
        bad.write_text("id,park,seats\n1,Park 1,2\n2,Park 2\n3,Park 3,4,extra\n")
        page.get_by_label("Table", exact=True).select_option(index=0)
        page.get_by_label("File", exact=True).set_input_files(str(bad))
        page.get_by_role("button", name="Upload and check").click()
        error = page.locator("#upload-error")
        expect(error).to_be_visible()
        expect(error).to_contain_text("row 3")
        expect(error).to_contain_text("previous version")
        screenshot(page, "catalog-upload-refused")
        rows = httpx.get(
            f"{server.base_url}/api/v1/datasets/benches/rows?limit=1", timeout=10, trust_env=False
        ).json()
        assert rows["total"] == 60_000
        assert rows["version"] == 1
        # The failed upload answered 422 to the script: expected, not a problem.
        assert [p for p in problems if not p.startswith("422 ")] == [], problems
    except Exception:
        screenshot(page, "catalog-failure-upload")
        print(server.log())
        raise
    finally:
        context.close()
