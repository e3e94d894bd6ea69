"""The home page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from townhall.accounts.auth import PublicActor
from townhall.web.pages import render

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, actor: PublicActor) -> HTMLResponse:
    return render(request, "home.html", actor=actor)
