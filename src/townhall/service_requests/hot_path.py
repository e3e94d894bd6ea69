"""The status hot path: residents' polled lookups answered in front of the middleware stack.

Measured in process, the stack in front of a status route (our request-id, security-header,
body-limit, usage, lockdown, cookie and metrics middlewares, then Starlette's and FastAPI's
exception, exit-stack and body-limit layers, routing, and the route's own wrappers) cost more
CPU than the lookup itself (docs/performance.md, "Load: service requests"). `StatusHotPath`
is the app's outermost middleware (inside Starlette's `ServerErrorMiddleware` only, which
still turns an unexpected error into the logged 500). It answers one case only:

- `GET`, a path matching one of the `StatusRoute`s (`app.state.status_routes`, the same
  patterns routing tries first), no query string, no body, no `root_path`;
- an anonymous caller (`accounts.auth.is_anonymous`: no `Authorization`, no session cookie).

Everything else goes to the app untouched. The answer is what the normal path answers:

- the route's own code (`StatusRoute.answer_polled`, what its handler calls without a query
  string), so the rate limit (`reads`, sync or async counter), the queries, the documents and
  a 404 or 429 (rendered by the app's own exception handlers, Retry-After included) are the
  same code;
- the request id (`middleware.assign_request_id`, echoed in `X-Request-ID`, set for logs and
  error bodies) and the security headers (`middleware.SecurityHeaders`) as the middlewares
  add them, in the same order;
- the request counted in the app's metrics under the route's template, as `MetricsMiddleware`
  counts it.

What the skipped middlewares would do to such a request, and why nothing is lost: the body
limit has no body to limit; usage counts dataset reads only; the cookie middleware sets
cookies only for callers that a page or `current_actor` marked; lockdown refuses writes and
leaves a banner notice on the scope for pages, and a GET of JSON or XML shows neither
(tests/test_status_hot_path.py compares whole answers, lockdown on).

The same front answers anonymous data reads (`/rows`, `/aggregate`, with a query string) that
are made of kept answers only (`kept_reads`, `datastore.front.kept_read`, which decides what it
takes), with the same request id, headers and metrics, the rate limit counted first (its 429
is the app's own), and the dataset's usage counted (`answered_read`) as `UsageMiddleware`
counts a read the stack answers (tests/test_datastore_front.py compares whole answers).
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from townhall.accounts.auth import is_anonymous
from townhall.actor import ANONYMOUS
from townhall.middleware import SecurityHeaders, assign_request_id, request_id_header
from townhall.ratelimit import enforce_async as enforce_rate_limit_async
from townhall.request_context import reset_request_id, set_request_id
from townhall.service_requests.api import StatusRoute

_BODY_HEADERS = (b"content-length", b"transfer-encoding")
# `datastore.front.kept_read`: a kept data read's route template and answer, or None.
KeptReads = Callable[[Request], tuple[str, Response] | None]


class StatusHotPath:
    """Answers anonymous `GET`s of the status routes before the middleware stack (module
    docstring); `answered` counts them (tests check which path a request took)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Sequence[StatusRoute],
        https: bool,
        metrics: Any | None = None,
        kept_reads: KeptReads | None = None,
        answered_read: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.routes = tuple(route for route in routes if "GET" in route.methods)
        self.security_headers = SecurityHeaders(https=https)
        self.metrics = metrics  # `health.Metrics`, when the health slice is registered
        self.kept_reads = kept_reads  # `datastore.front.kept_read`, with the datastore slice
        # Told the path of each kept read answered 200 (the dataset usage counts).
        self.answered_read = answered_read
        self.answered = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        if scope["query_string"]:
            if self.kept_reads is not None and "/datasets/" in scope["path"]:
                request = Request(scope, receive)
                if is_anonymous(request) and not _has_body(scope):
                    found = self.kept_reads(request)
                    if found is not None:
                        await self._answer_kept(scope, send, request, *found)
                        return
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        for route in self.routes:
            match = route.path_regex.match(path)
            if match is not None:
                break
        else:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        if not is_anonymous(request) or _has_body(scope):
            await self.app(scope, receive, send)
            return
        convertors = route.param_convertors
        scope["path_params"] = {
            name: convertors[name].convert(value) for name, value in match.groupdict().items()
        }
        scope["endpoint"] = route.endpoint
        scope["route"] = route
        await self._answer(scope, send, route, request)

    async def _answer(self, scope: Scope, send: Send, route: StatusRoute, request: Request) -> None:
        await self._respond(scope, send, request, route.path, route.answer_polled(request))

    async def _answer_kept(
        self, scope: Scope, send: Send, request: Request, route_path: str, response: Response
    ) -> None:
        """A kept data read: counted by the rate limit as the route would (429 instead of the
        answer past the limit), and by the dataset's usage counts when answered."""

        async def counted() -> Response:
            request.state.actor = ANONYMOUS
            await enforce_rate_limit_async(request, ANONYMOUS)
            return response

        status = await self._respond(scope, send, request, route_path, counted())
        if status == 200 and self.answered_read is not None:
            self.answered_read(scope["path"])

    async def _respond(
        self,
        scope: Scope,
        send: Send,
        request: Request,
        route_path: str,
        produce: Awaitable[Response],
    ) -> int:
        """Send what `produce` gives (or the app's answer to what it raises) with the stack's
        request id and security headers, counted in the metrics; returns the status."""
        self.answered += 1
        started = time.perf_counter()
        status = 500  # what the metrics count if the lookup raises (`MetricsMiddleware` too)
        request_id = assign_request_id(scope)
        token = set_request_id(request_id)
        try:
            try:
                response = await produce
            except Exception as exc:
                handler = _handler_for(scope["app"], exc)
                if handler is None:
                    raise  # to `ServerErrorMiddleware`: logged, 500, as on the normal path
                response = await handler(request, exc)
            status = response.status_code
            headers = response.raw_headers
            self.security_headers.add_to(headers, scope["path"])
            headers.append(request_id_header(request_id))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": response.body})
            if response.background is not None:
                await response.background()
        finally:
            reset_request_id(token)
            if self.metrics is not None:
                self.metrics.observe("GET", route_path, status, time.perf_counter() - started)
        return status


def _has_body(scope: Scope) -> bool:
    return any(name in _BODY_HEADERS for name, _ in scope["headers"])


def _handler_for(app: Any, exc: Exception) -> Any:
    """The app's handler for `exc` as Starlette's exception middleware picks it (by class,
    nearest first), as a coroutine function; None for what only `ServerErrorMiddleware`
    handles (`Exception` itself, 500)."""
    handlers = app.exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        handler = handlers.get(cls)
        if handler is not None:
            if inspect.iscoroutinefunction(handler):
                return handler
            return functools.partial(run_in_threadpool, handler)
    return None
