"""One access line per HTTP request, written by CampBot instead of uvicorn.

uvicorn builds its access record (client address, quoted path) for every request before any
filter can drop it; for the callbacks, most of a server's requests, that was ~6% of intake's
CPU in bench/callback_ingest.py. `configure_logging` turns uvicorn's access log off and this
middleware writes the same line on the `campbot.access` logger, skipping accepted callbacks
(campbot_callbacks_total counts them) before anything is formatted. A refusal of a callback,
and every other request, keeps its line.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.callback_asgi import PATH as CALLBACK_PATH

ACCESS_LOGGER = "campbot.access"

_access = logging.getLogger(ACCESS_LOGGER)


class AccessLog:
    """ASGI middleware: uvicorn's access line format, minus accepted callbacks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _access.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        callback = scope["method"] == "POST" and scope["path"] == CALLBACK_PATH

        async def logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                status: int = message["status"]
                if not (callback and 200 <= status < 300):
                    _log(scope, status)
            await send(message)

        await self.app(scope, receive, logged)


class FastAPIWithAccessLog(FastAPI):
    """FastAPI with AccessLog around its whole stack: middleware added with `add_middleware`
    sits inside the framework's error middleware, whose 500 answers would go unlogged."""

    def build_middleware_stack(self) -> ASGIApp:
        return AccessLog(super().build_middleware_stack())


def _log(scope: Scope, status: int) -> None:
    client = scope.get("client")
    address = f"{client[0]}:{client[1]}" if client else "-"
    # raw_path is the path as the client sent it, still percent-encoded: nothing to quote.
    path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    target = (path + b"?" + query if query else path).decode("latin-1")
    _access.info(
        '%s - "%s %s HTTP/%s" %d', address, scope["method"], target, scope["http_version"], status
    )
