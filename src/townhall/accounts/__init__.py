"""Users, roles, organizations, API tokens, web sessions and the access markers."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from townhall.accounts.auth import ANON_COOKIE, SESSION_COOKIE


def register(app: FastAPI) -> None:
    from townhall.accounts import api, views

    app.include_router(api.router)
    app.include_router(views.router)
    secure = app.state.settings.base_url.startswith("https")
    app.add_middleware(AuthCookieMiddleware, secure=secure)


class AuthCookieMiddleware:
    """Sets the anonymous CSRF nonce and clears dead session cookies that `current_actor` saw."""

    def __init__(self, app: ASGIApp, *, secure: bool) -> None:
        self.app = app
        self.secure = "; Secure" if secure else ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start":
                state = scope.get("state", {})
                headers = message.setdefault("headers", [])
                if nonce := state.get("new_anon_nonce"):
                    cookie = f"{ANON_COOKIE}={nonce}; Path=/; HttpOnly; SameSite=Lax{self.secure}"
                    headers.append((b"set-cookie", cookie.encode()))
                if state.get("clear_session_cookie"):
                    headers.append(
                        (b"set-cookie", f"{SESSION_COOKIE}=; Path=/; Max-Age=0".encode())
                    )
            await send(message)

        await self.app(scope, receive, send_with_cookies)
