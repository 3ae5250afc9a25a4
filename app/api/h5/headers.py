"""Every answer under `/h5/` carries the token-bearing page's headers, whoever made it.

The path holds the student's credential, so no answer under it may be cached, sent on as a
Referer, framed or sniffed — not only the pages the routes build, but the framework's 404,
405 and validation errors, its trailing-slash redirect, and the 500 of a crash. This ASGI
middleware adds `PRIVATE_HEADERS` (and a strict Content-Security-Policy) to any such answer
that lacks them, keeping what a route set itself (the page's CSP with its nonce, an image's
own caching).

A redirect never sends the browser to the request's `Host` header: a Location the framework
built from it (the trailing-slash redirect) is made relative to this origin, so a forged Host
cannot send a student, token and all, to another site.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.h5.route_class import PRIVATE_HEADERS

PREFIX = "/h5"
# For answers that set no policy of their own (errors, redirects): nothing may load, run or
# frame; inline style only, as the short refusal page has.
FALLBACK_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
H5_HEADERS = {**PRIVATE_HEADERS, "Content-Security-Policy": FALLBACK_POLICY}
CRASHED = "服务暂时出了点问题，请稍后再试。"


def is_h5(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def same_origin_relative(location: str, origin: str) -> str:
    """`location` without scheme and host when it points at `origin` (the netloc the
    request's own URL has: its Host header); anything else as it is."""
    parts = urlsplit(location)
    if not parts.netloc or parts.netloc.lower() != origin.lower():
        return location
    path = "/" + parts.path.lstrip("/")  # never `//host`: that would be another origin
    return urlunsplit(("", "", path, parts.query, parts.fragment))


class H5Headers:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_h5(scope["path"]):
            await self.app(scope, receive, send)
            return
        started = False

        async def send_private(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in H5_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
                location = headers.get("location")
                if location is not None:
                    origin = Request(scope).url.netloc  # what the framework builds URLs from
                    headers["location"] = same_origin_relative(location, origin)
            await send(message)

        try:
            await self.app(scope, receive, send_private)
        except Exception:
            # The server's own 500 page would go out without these headers: answer first,
            # then let the error reach the server's log as before.
            if not started:
                crashed = PlainTextResponse(CRASHED, status_code=500, headers=H5_HEADERS)
                await crashed(scope, receive, send)
            raise
