"""The ceiling of the stack: a bare Starlette endpoint, served by `bench/load.py` with exactly
the uvicorn settings `townhall serve` uses (loop, HTTP parser, workers, no access log).

`GET /` answers a small JSON object, so the comparison includes JSON and routing but nothing of
Townhall's: no middleware, no dependencies, no database.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "status": "open"})


app = Starlette(routes=[Route("/", hello)])
