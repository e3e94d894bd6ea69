"""Standard feeds for harvesters and search engines: DCAT-AP 3, DCAT-US 1.1 `data.json`,
Frictionless `datapackage.json`, and schema.org `Dataset` JSON-LD for dataset pages."""

from __future__ import annotations

from fastapi import FastAPI

from townhall.feeds.schemaorg import schemaorg_jsonld, schemaorg_script

__all__ = ["register", "schemaorg_jsonld", "schemaorg_script"]


def register(app: FastAPI) -> None:
    from townhall.feeds import api

    before = len(app.router.routes)
    app.include_router(api.router)
    added = app.router.routes[before:]
    # Feed addresses end in a suffix (`/datasets/x.ttl`); they go first so that a page route
    # such as `/datasets/{slug}`, registered earlier by the web slice, cannot swallow them.
    del app.router.routes[before:]
    app.router.routes[0:0] = added
