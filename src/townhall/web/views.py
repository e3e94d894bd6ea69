"""The home page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from townhall.accounts.auth import PublicActor
from townhall.web.pages import render

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, actor: PublicActor, logged_out: bool = False) -> HTMLResponse:
    """The front door: what residents, staff and developers can do here.

    `logged_out=1` (where logout sends the browser) only adds a confirmation line.
    """
    return render(request, "home.html", {"logged_out": logged_out}, actor=actor)
