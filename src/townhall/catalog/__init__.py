"""Organizations' datasets, resources and versions; search; metadata formats; catalog pages."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

CATALOG_DIR = Path(__file__).parent
# Not under /static: the web shell's mount there would shadow a nested one.
STATIC_PREFIX = "/catalog-assets"


def register(app: FastAPI) -> None:
    from townhall.catalog import api, views
    from townhall.web import add_template_dir

    add_template_dir(app, CATALOG_DIR / "templates")
    app.mount(STATIC_PREFIX, StaticFiles(directory=CATALOG_DIR / "static"), name="catalog-static")
    app.include_router(api.router)
    app.include_router(views.router)
