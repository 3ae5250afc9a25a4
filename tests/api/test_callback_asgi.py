"""The callback served ahead of the framework: what HTTP sees is what a route gave, a body in
several pieces is one body, a client gone before its body leaves nothing, and every other
path still reaches the app."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.wecom_sandbox.callbacks import CallbackBuilder, SignedCallback
from tests.support import T0, AppHarness, inbox_rows, text_message


async def test_other_methods_are_refused_with_the_allowed_ones(harness: AppHarness) -> None:
    for method in ("PUT", "DELETE", "PATCH"):
        answer = await harness.client.request(method, "/wecom/callback")
        assert answer.status_code == 405
        assert answer.headers["allow"] == "GET, POST"


async def test_answers_carry_their_type_and_length(
    harness: AppHarness, wecom: CallbackBuilder
) -> None:
    accepted = await harness.deliver(wecom.post(text_message("7001"), at=T0))
    refused = await harness.client.post("/wecom/callback", content=b"<xml/>")
    for answer, status in ((accepted, 200), (refused, 400)):
        assert answer.status_code == status
        assert answer.headers["content-type"] == "text/plain; charset=utf-8"
        assert int(answer.headers["content-length"]) == len(answer.content)
    assert accepted.text == "success"
    assert refused.text == "missing query parameter: msg_signature, timestamp, nonce"


async def test_the_rest_of_the_app_is_untouched(harness: AppHarness) -> None:
    assert (await harness.client.get("/healthz")).status_code == 200
    assert (await harness.client.get("/wecom/callback/")).status_code == 404


def _asgi_scope(callback: SignedCallback, app: Any) -> dict[str, Any]:
    path, _, query = callback.path.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"test"), (b"content-type", b"text/xml")],
        "server": ("test", 80),
        "client": ("127.0.0.1", 1),
        "app": app,
    }


async def _call(
    harness: AppHarness, callback: SignedCallback, messages: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One raw ASGI call of the app: `messages` are what `receive` gives, in turn."""
    pending = list(messages)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return pending.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await harness.app(_asgi_scope(callback, harness.app), receive, send)
    return sent


async def test_a_body_in_several_pieces_is_read_whole(
    harness: AppHarness, wecom: CallbackBuilder, sessions: async_sessionmaker[AsyncSession]
) -> None:
    callback = wecom.post(text_message("7002"), at=T0)
    body = callback.body.encode()
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    messages = [{"type": "http.request", "body": p, "more_body": True} for p in pieces]
    sent = await _call(harness, callback, [*messages, {"type": "http.request", "body": b""}])
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"success"
    assert [row.dedupe_key for row in await inbox_rows(sessions)] == ["msg:7002"]


async def test_a_client_gone_before_its_body_gets_no_answer_and_leaves_nothing(
    harness: AppHarness, wecom: CallbackBuilder, sessions: async_sessionmaker[AsyncSession]
) -> None:
    callback = wecom.post(text_message("7003"), at=T0)
    half = callback.body.encode()[:20]
    sent = await _call(
        harness,
        callback,
        [{"type": "http.request", "body": half, "more_body": True}, {"type": "http.disconnect"}],
    )
    assert sent == []
    assert await inbox_rows(sessions) == []
