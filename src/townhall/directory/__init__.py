"""The public service directory (HSDS-shaped), opening hours, live office status and queues."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

DIRECTORY_DIR = Path(__file__).parent
# Not under /static: the web shell's mount there would shadow a nested one.
STATIC_PREFIX = "/directory-assets"


def register(app: FastAPI) -> None:
    from townhall.directory import api, hsds_api, views
    from townhall.directory.districts import DistrictLocator
    from townhall.web import add_template_dir

    # Service requests located by lat/long get their district from the published boundaries.
    app.state.locate_district = DistrictLocator(app.state.runtime)

    add_template_dir(app, DIRECTORY_DIR / "templates")
    app.mount(
        STATIC_PREFIX, StaticFiles(directory=DIRECTORY_DIR / "static"), name="directory-static"
    )
    app.include_router(api.router)
    app.include_router(hsds_api.router)
    app.include_router(views.router)
