"""The route class of H5 pages: a refused token answers 403 with a short Chinese page (or
JSON to a client that asks for it) that says nothing about the member or the token."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute

from app.api.h5.deps import TokenRefused

REFUSED_MESSAGE = "链接无效或已失效，请联系助教获取新的链接。"
_REFUSED_PAGE = (
    '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width,initial-scale=1">'
    "<title>链接无效</title><style>body{font:16px/1.6 system-ui,sans-serif;margin:0;"
    "padding:40px 24px;color:#333;text-align:center}h1{font-size:20px}</style></head>"
    f"<body><h1>链接无效</h1><p>{REFUSED_MESSAGE}</p></body></html>"
)
# Token-bearing pages: never cached, never sent on as a Referer, never framed.
PRIVATE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def refused_response(request: Request) -> Response:
    if wants_json(request):
        return JSONResponse({"detail": REFUSED_MESSAGE}, status_code=403, headers=PRIVATE_HEADERS)
    return HTMLResponse(_REFUSED_PAGE, status_code=403, headers=PRIVATE_HEADERS)


class H5Route(APIRoute):
    """Turns TokenRefused, raised by the `h5_member` dependency, into the 403 answer."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except TokenRefused:
                return refused_response(request)

        return guarded
