"""The native API's one error shape, and the handlers that produce it.

`{"ok": false, "status": 404, "code": "dataset_not_found", "message": "...", "errors": [...],
"request_id": "..."}`. Compatibility APIs (CKAN, Open311) install their own shapes for their
prefixes. HTML pages get an error page instead. A bare `ValueError` is never mapped to 400: a
bug must look like a bug (500, logged).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from townhall.request_context import current_request_id

log = logging.getLogger(__name__)

# Every error code the native API can answer with; docs/api.md lists them (checked by a test).
ERROR_CODES: dict[str, str] = {
    "invalid_request": "The request body, query or path did not match what the endpoint takes.",
    "malformed_json": "The body is not valid JSON.",
    "body_too_large": "The request body is larger than the configured limit.",
    "not_authenticated": "No valid credentials were given.",
    "invalid_token": "The API token is unknown, revoked or expired.",
    "session_expired": "The web session has expired; log in again.",
    "csrf_failed": "The form's CSRF token is missing or wrong.",
    "permission_denied": "The caller is authenticated but lacks the permission.",
    "not_found": "No such route or object.",
    "method_not_allowed": "The route exists but not for this HTTP method.",
    "conflict": "The change conflicts with the current state (for example a duplicate).",
    "too_many_requests": "Too many attempts; wait before trying again.",
    "unsupported_media_type": "The body's content type is not one the endpoint reads.",
    "read_only_mode": "The portal is in lockdown; only administrators can change data.",
    "unknown_action": "The CKAN Action API has no action of that name.",
    "invalid_search_query": "A CKAN search query (q, fq, sort) could not be read.",
    "ingest_failed": "The file could not be loaded as a table; `errors` names rows and columns.",
    "invalid_table_schema": "The Frictionless Table Schema sent with an upload is not valid.",
    "invalid_filter": "A filter, sort, field or metric names an unknown column or a bad value.",
    "invalid_cursor": "The pagination cursor is malformed or belongs to another query.",
    "invalid_sql": "The SQL does not parse, or is not exactly one SELECT statement.",
    "sql_not_allowed": "The SQL uses a table, function or command that is not allowed.",
    "query_timeout": "The query ran past the time limit and was stopped.",
    "query_out_of_memory": "The query needed more memory than one query may use.",
    "internal_error": "An unexpected error; it has been logged with the request id.",
    "invalid_transition": "The service request's lifecycle does not allow that status change.",
}


class TownhallError(Exception):
    """An expected failure with a stable machine-readable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        if code not in ERROR_CODES and not code.endswith("_not_found"):
            raise AssertionError(f"undocumented error code {code!r}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or []
        self.headers = headers


class NotFoundError(TownhallError):
    def __init__(self, what: str, key: object) -> None:
        super().__init__(404, f"{what}_not_found", f"No {what.replace('_', ' ')} {key!s}.")


class PermissionDenied(TownhallError):
    def __init__(self, permission: str) -> None:
        super().__init__(403, "permission_denied", f"This needs the permission {permission!r}.")


class ConflictError(TownhallError):
    def __init__(self, message: str) -> None:
        super().__init__(409, "conflict", message)


def error_body(
    status: int,
    code: str,
    message: str,
    errors: list[dict[str, Any]] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    return {
        "ok": False,
        "status": status,
        "code": code,
        "message": message,
        "errors": errors or [],
        "request_id": request_id or current_request_id(),
    }


def error_response(
    status: int,
    code: str,
    message: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(status, code, message, errors), status, headers=headers)


_STATUS_CODES = {
    400: "invalid_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
}


def _wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith(("/api/", "/ckan/", "/open311/", "/hsds/", "/events/")):
        return False
    return "text/html" in request.headers.get("accept", "")


def _request_id_of(request: Request) -> str | None:
    return request.scope.get("state", {}).get("request_id") or current_request_id()


def render_error(
    request: Request,
    status: int,
    code: str,
    message: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The error as the caller's API shapes it: a compatibility API's own shape (registered
    for its prefix in `app.state.error_shapes`), the HTML error page for a browser, or the
    native JSON shape. For code outside the exception handlers, such as ASGI middleware."""
    handlers = getattr(request.app.state, "error_shapes", {})
    for prefix, shape in handlers.items():
        if request.url.path.startswith(prefix):
            shaped = shape(request, status, code, message, errors or [])
            # Retry-After, Allow and friends matter to every client, whatever the body shape.
            shaped.headers.update(headers or {})
            return shaped
    if _wants_html(request) and hasattr(request.app.state, "templates"):
        return request.app.state.templates.TemplateResponse(
            request,
            "error.html",
            {"status": status, "code": code, "message": message, "errors": errors or []},
            status_code=status,
            headers=headers,
        )
    return JSONResponse(
        error_body(status, code, message, errors, _request_id_of(request)), status, headers=headers
    )


def _validation_errors(exc: RequestValidationError) -> tuple[str, str, list[dict[str, Any]]]:
    errors = []
    for item in exc.errors():
        if item.get("type") == "json_invalid":
            # FastAPI puts the decoder's reason in ctx and the character offset in loc[1].
            reason = (item.get("ctx") or {}).get("error") or item.get("msg")
            where = item.get("loc", ())[1:2]
            at = f" at character {where[0]}" if where else ""
            return "malformed_json", f"The body is not valid JSON: {reason}{at}.", []
        errors.append(
            {
                "loc": [str(part) for part in item.get("loc", ())],
                "message": item.get("msg", ""),
                "type": item.get("type", ""),
            }
        )
    first = errors[0] if errors else {"loc": [], "message": "invalid"}
    where = ".".join(first["loc"][1:] or first["loc"]) or "request"
    return "invalid_request", f"{where}: {first['message']}", errors


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TownhallError)
    async def _townhall_error(request: Request, exc: TownhallError) -> Response:
        return render_error(request, exc.status, exc.code, exc.message, exc.errors, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        code, message, errors = _validation_errors(exc)
        status = 400 if code == "malformed_json" else 422
        return render_error(request, status, code, message, errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = _STATUS_CODES.get(exc.status_code, "invalid_request")
        message = str(exc.detail) if exc.detail else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and message == "Not Found":
            message = f"Nothing at {request.url.path}."
        if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
            # FastAPI answers a JSON body that is not UTF-8 with a generic 400; it is malformed.
            code, message = "malformed_json", "The body is not valid JSON: it is not UTF-8."
        return render_error(request, exc.status_code, code, message, None, exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return render_error(
            request,
            500,
            "internal_error",
            # The 500 handler runs outside the request-id middleware: read the id off the scope.
            f"Unexpected error; quote request id {_request_id_of(request)} when reporting it.",
        )
