"""The web shell: base layout, static assets, the page renderer and the home page."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

WEB_DIR = Path(__file__).parent


def register(app: FastAPI) -> None:
    from townhall.web import views

    templates = Jinja2Templates(directory=[str(WEB_DIR / "templates")])
    templates.env.globals["site_name"] = app.state.settings.site_name
    app.state.templates = templates
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    app.include_router(views.router)


def add_template_dir(app: FastAPI, directory: Path) -> None:
    """Slices with their own templates add their folder here."""
    loader = app.state.templates.env.loader
    loader.searchpath.append(str(directory))  # type: ignore[union-attr]
