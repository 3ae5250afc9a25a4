"""Injected failures, lost answers, gateway errors, delays, unknown paths."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.wecom_sandbox.server import ResponseLost, sandbox_transport
from app.wecom_sandbox.state import SandboxState
from tests.wecom_sandbox.support import BASE_URL, CORP_ID, SECRET, SandboxApi, text


async def test_fail_next_n_times_then_success(api: SandboxApi, state: SandboxState) -> None:
    state.fail_next("message/send", -1, times=2)
    codes = [(await api.post("message/send", text(f"#{n}")))["errcode"] for n in range(3)]
    assert codes == [-1, -1, 0]
    # Injected failures do nothing: only the third message was delivered.
    assert [d.body["text"]["content"] for d in state.delivered()] == ["#2"]
    assert [c.outcome for c in state.calls_to("message/send")] == [
        "injected",
        "injected",
        "answered",
    ]


async def test_fail_next_with_a_chosen_errmsg(api: SandboxApi, state: SandboxState) -> None:
    state.fail_next("/cgi-bin/message/send", 42001, errmsg="access_token expired")
    assert await api.post("message/send", text("x")) == {
        "errcode": 42001,
        "errmsg": "access_token expired",
    }


async def test_fail_forever_until_cleared(api: SandboxApi, state: SandboxState) -> None:
    state.fail_forever("gettoken", 40001)
    for _ in range(5):
        r = await api.client.get(
            "/cgi-bin/gettoken", params={"corpid": CORP_ID, "corpsecret": SECRET}
        )
        assert r.json()["errcode"] == 40001
    state.clear_failures()
    assert (await api.post("message/send", text("x")))["errcode"] == 0
    assert state.gettoken_count == 6


async def test_injection_is_per_path(api: SandboxApi, state: SandboxState) -> None:
    state.fail_forever("appchat/send", 45009)
    assert (await api.post("message/send", text("x")))["errcode"] == 0


async def test_accept_then_drop_delivers_but_loses_the_answer(
    api: SandboxApi, state: SandboxState
) -> None:
    state.accept_then_drop("message/send")
    token = await api.token()
    with pytest.raises(httpx.TransportError):
        await api.client.post(
            "/cgi-bin/message/send", params={"access_token": token}, json=text("喜报")
        )
    assert [d.body["text"]["content"] for d in state.delivered()] == ["喜报"]
    [call] = state.calls_to("message/send")
    assert call.outcome == "dropped"
    assert call.errcode == 0
    # Only once: the client's retry gets its answer (and WeCom delivers it again).
    assert (await api.post("message/send", text("喜报")))["errcode"] == 0
    assert len(state.delivered()) == 2


async def test_respond_5xx_does_nothing_and_has_no_json(
    api: SandboxApi, state: SandboxState
) -> None:
    state.respond_5xx("message/send", times=1, status=503)
    token = await api.token()
    r = await api.client.post(
        "/cgi-bin/message/send", params={"access_token": token}, json=text("x")
    )
    assert (r.status_code, r.content) == (503, b"")
    assert state.deliveries == []
    assert (await api.post("message/send", text("x")))["errcode"] == 0
    assert [c.status for c in state.calls_to("message/send")] == [503, 200]


async def test_respond_5xx_wants_a_5xx(state: SandboxState) -> None:
    with pytest.raises(ValueError, match="5xx"):
        state.respond_5xx("message/send", status=404)


async def test_delay_sleeps_for_real_after_the_work(
    api: SandboxApi, state: SandboxState, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        # The message is already delivered when the answer is held back.
        assert len(state.delivered()) == 1
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    state.delay("message/send", 30)
    assert (await api.post("message/send", text("slow")))["errcode"] == 0
    assert slept == [30]
    state.clear_failures()
    await api.post("message/send", text("fast"))
    assert slept == [30]


async def test_unknown_cgi_is_an_empty_404(client: httpx.AsyncClient, state: SandboxState) -> None:
    r = await client.get("/cgi-bin/this_api_does_not_exist", params={"access_token": "x"})
    assert (r.status_code, r.content) == (404, b"")
    assert state.calls[-1].outcome == "unknown_path"


async def test_mock_transport_serves_the_same_corp(state: SandboxState) -> None:
    async with httpx.AsyncClient(transport=sandbox_transport(state), base_url=BASE_URL) as client:
        api = SandboxApi(client, state)
        assert (await api.post("message/send", text("via MockTransport")))["errcode"] == 0
        state.accept_then_drop("message/send")
        token = await api.token()
        with pytest.raises(ResponseLost):
            await client.post(
                "/cgi-bin/message/send", params={"access_token": token}, json=text("y")
            )
        r = await client.get("/cgi-bin/nope")
    assert r.status_code == 404
    assert len(state.delivered()) == 2
    assert state.gettoken_count == 1
