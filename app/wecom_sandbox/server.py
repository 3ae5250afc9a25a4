"""The sandbox over HTTP: qyapi's /cgi-bin/... plus /sandbox/... to inspect and drive it.

In tests: `httpx.AsyncClient(transport=httpx.ASGITransport(app=create_sandbox_app(state)),
base_url="https://qyapi.weixin.qq.com")`, or `sandbox_transport(state)` (an
httpx.MockTransport). Standalone: `serve_sandbox(host, port, state)`.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qsl

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.types import Message, Receive, Scope, Send

from app.wecom_sandbox.core import Answer, handle
from app.wecom_sandbox.endpoints_jsapi import authorize
from app.wecom_sandbox.introspection import BadInput, Introspection, bad_input, not_found
from app.wecom_sandbox.request import ApiRequest
from app.wecom_sandbox.state import SandboxState

JSON_TYPE = "application/json; charset=UTF-8"


class ResponseLost(httpx.RemoteProtocolError):
    """WeCom processed the request, but its answer never arrived (accept_then_drop).

    A transport error, so in-process clients see what a dropped connection gives them.
    """


def _encode(answer: Answer) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    if answer.file is not None:
        file = answer.file
        return file.data, [
            (b"content-type", file.content_type.encode()),
            (b"content-disposition", f'attachment; filename="{file.filename}"'.encode()),
            (b"content-length", b"%d" % len(file.data)),
        ]
    if answer.payload is None:
        return b"", [(b"content-length", b"0")]
    body = json.dumps(answer.payload, ensure_ascii=False, separators=(",", ":")).encode()
    return body, [(b"content-type", JSON_TYPE.encode()), (b"content-length", b"%d" % len(body))]


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _header(scope: Scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), "")


class CgiApp:
    """Raw ASGI for /cgi-bin: an answer may be delayed or lost mid-flight."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client") or ("127.0.0.1", 0)
        req = ApiRequest(
            method=scope["method"],
            path=scope["path"],
            query=dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)),
            body=await _read_body(receive),
            content_type=_header(scope, b"content-type"),
            client_ip=client[0],
        )
        answer = handle(self.state, req)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        body, headers = _encode(answer)
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        if answer.lost:
            # Headers promised a body that never comes: uvicorn closes the connection mid-body.
            await send({"type": "http.response.body", "body": b"", "more_body": True})
            raise ResponseLost("sandbox: WeCom processed the request, the response was lost")
        await send({"type": "http.response.body", "body": body})


def create_sandbox_app(state: SandboxState) -> Starlette:
    control = Starlette(
        routes=Introspection(state).routes(),
        exception_handlers={BadInput: bad_input, KeyError: not_found},
    )
    app = Starlette(
        routes=[
            Mount("/sandbox", app=control),
            Route("/connect/oauth2/authorize", authorize),  # what WeCom's client opens
            Route("/{path:path}", CgiApp(state)),
        ]
    )
    app.state.sandbox = state
    return app


def sandbox_transport(state: SandboxState) -> httpx.MockTransport:
    """The cgi side as an httpx transport, for clients that take one (no /sandbox routes)."""

    async def answer(request: httpx.Request) -> httpx.Response:
        req = ApiRequest(
            method=request.method,
            path=request.url.path,
            query=dict(request.url.params),
            body=await request.aread(),
            content_type=request.headers.get("content-type", ""),
        )
        result = handle(state, req)
        if result.delay:
            await asyncio.sleep(result.delay)
        if result.lost:
            raise ResponseLost(
                "sandbox: WeCom processed the request, the response was lost", request=request
            )
        body, headers = _encode(result)
        return httpx.Response(result.status, content=body, headers=headers)

    return httpx.MockTransport(answer)


def serve_sandbox(host: str, port: int, state: SandboxState) -> None:
    """Run the sandbox with uvicorn until interrupted (the `campbot sandbox` command)."""
    uvicorn.run(create_sandbox_app(state), host=host, port=port)
