"""`/wecom/callback` served as plain ASGI, ahead of the framework's routing.

Every callback is one small POST, and most of a server's work is callbacks. Behind FastAPI
each paid the middleware stack, the router, dependency solving and response classes: ~29%
of intake's CPU under load, more than intake's own verify, decrypt, parse and claim. This
middleware answers the callback's path itself and hands every other request on unchanged.
It reads the body with `app.api.callback`'s bounds and, like the framework's background
tasks, runs the answer's `after` once the answer is sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from app.api import callback
from app.errors import CallbackError
from app.runtime import Runtime

PATH = "/wecom/callback"
_ALLOWED = b"GET, POST"


class ClientGone(Exception):
    """The client hung up before its body arrived: nobody is left to answer."""


class CallbackLane:
    """ASGI middleware: the callback's path answered here, every other request passed on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        runtime: Runtime = scope["app"].state.runtime
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        try:
            answer = await _answer(runtime, scope, receive, query)
        except CallbackError as exc:
            answer = callback.refusal(exc)
        except ClientGone:
            return
        await _send(send, answer)
        if answer.after is not None:
            await answer.after()


async def _answer(
    runtime: Runtime, scope: Scope, receive: Receive, query: dict[str, str]
) -> callback.Answer:
    method = scope["method"]
    if method == "POST":
        request = callback.CallbackRequest(
            query=query, content_length=_header(scope, b"content-length"), chunks=_chunks(receive)
        )
        return await callback.receive(runtime, request)
    if method == "GET":
        return callback.verify_url(runtime, query)
    return callback.Answer("Method Not Allowed", status=405)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:  # ASGI servers give header names in lower case
            return str(value.decode("latin-1"))
    return ""


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def _send(send: Send, answer: callback.Answer) -> None:
    body = answer.body.encode()
    headers = [
        (b"content-type", answer.media_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if answer.status == 405:
        headers.append((b"allow", _ALLOWED))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
