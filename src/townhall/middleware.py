"""ASGI middleware: request ids, body size limits and security headers.

Written as plain ASGI (not BaseHTTPMiddleware) so streaming responses such as SSE and large
downloads are not buffered.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from townhall.errors import error_body
from townhall.request_context import reset_request_id, set_request_id

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Paths that take files get the upload limit instead of the JSON body limit (CKAN's included).
UPLOAD_PATH_MARKERS = (
    "/upload",
    "/ingest",
    "/attachments",
    "/resource_create",
    "/resource_update",
    "/resource_patch",
    "/datastore_create",
    "/datastore_upsert",
)


class RequestIdMiddleware:
    """Take a sane `X-Request-ID` from the client or make one; echo it in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = assign_request_id(scope)
        token = set_request_id(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append(request_id_header(request_id))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            reset_request_id(token)


def assign_request_id(scope: Scope) -> str:
    """The request's id: the client's `X-Request-ID` if sane, else a new one; kept in the
    scope's state, where error bodies and logs find it. Shared with the status hot path
    (`service_requests.hot_path`), so both answer with the same id rules."""
    given = _header(scope, b"x-request-id").decode("latin-1")
    request_id = given if _SAFE_REQUEST_ID.match(given) else new_request_id()
    scope.setdefault("state", {})["request_id"] = request_id
    return request_id


class _RequestIds:
    """32 hex digits: a random prefix per process and a counter. Unique without a random draw
    per request (`uuid4` cost 1.7 us, a fortieth of a polled status lookup in process); a
    forked child draws its own prefix. Ids are for correlating logs, not secrets."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = secrets.token_hex(8)
        self.counter = itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.counter) & 0xFFFFFFFFFFFFFFFF:016x}"


new_request_id = _RequestIds()


def request_id_header(request_id: str) -> tuple[bytes, bytes]:
    """The response header echoing `request_id`."""
    return (b"x-request-id", request_id.encode("latin-1"))


def _header(scope: Scope, name: bytes) -> bytes:
    """The first value of request header `name` (lower case), or b"": a walk over the few
    headers costs less than building a dict of them on every request."""
    for key, value in scope["headers"]:
        if key == name:
            return value
    return b""


class BodySizeLimitMiddleware:
    """Refuse bodies over the limit with 413 before they are read into memory."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = (
            self.max_upload_bytes
            if any(marker in path for marker in UPLOAD_PATH_MARKERS)
            else self.max_body_bytes
        )
        declared = _header(scope, b"content-length")
        if declared:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = False
            if too_big:
                await _send_413(send, limit)
                return

        received = 0
        response_started = False
        cut_off = False  # the body went over the limit; the app is told the client left
        answered = False  # ... and the client got its 413 from here

        async def limited_receive() -> Message:
            nonlocal received, response_started, cut_off, answered
            if cut_off:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Answer here rather than raise: the app may catch whatever receive() raises
                    # (FastAPI turns it into 400 "There was an error parsing the body").
                    cut_off = True
                    if not response_started:
                        response_started = answered = True
                        await _send_413(send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if answered:
                return  # the app's own answer to a refused request is dropped
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            # The app failed on the body it was cut off from; the client has been answered.
            if not cut_off:
                raise


async def _send_413(send: Send, limit: int) -> None:
    body: dict[str, Any] = error_body(
        413, "body_too_large", f"The request body is larger than {limit} bytes."
    )
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


# Scripts come only from our own files: no inline script or event handler runs, so injected
# markup cannot execute (tests/test_web.py fails on an inline script in any template). Pages
# hand data to their scripts in `<script type="application/json">` blocks, which never run.
# Styles keep 'unsafe-inline' for `style=` attributes. No page can be framed by another site.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's Swagger UI loads its assets from a CDN; the policy would blank it.
CSP_EXEMPT_PATHS = frozenset({"/api/docs", "/docs/oauth2-redirect"})


class SecurityHeaders:
    """CSP, anti-framing, no MIME sniffing, a strict referrer policy; HSTS behind HTTPS.

    The header lists are built once per app; `add_to` is what every response gets, from the
    middleware below or from the status hot path (`service_requests.hot_path`)."""

    def __init__(self, *, https: bool) -> None:
        headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"strict-origin-when-cross-origin"),
            (b"permissions-policy", b"geolocation=(self), camera=(), microphone=()"),
        ]
        if https:
            headers.append((b"strict-transport-security", b"max-age=31536000"))
        self.with_csp = (*headers, (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))
        self.without_csp = tuple(headers)
        self.names = frozenset(name for name, _ in self.with_csp)

    def add_to(self, headers: list[tuple[bytes, bytes]], path: str) -> None:
        """Append ours to a response's `headers`; a route's own value (an attachment's
        stricter policy, say) wins over ours."""
        extra = self.without_csp if path in CSP_EXEMPT_PATHS else self.with_csp
        present = self.names.intersection(name.lower() for name, _ in headers)
        if present:
            headers.extend(header for header in extra if header[0] not in present)
        else:
            headers.extend(extra)


class SecurityHeadersMiddleware:
    """Adds `SecurityHeaders` to every response."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.headers = SecurityHeaders(https=https)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        add_to = self.headers.add_to

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_to(message.setdefault("headers", []), path)
            await send(message)

        await self.app(scope, receive, send_with_headers)
