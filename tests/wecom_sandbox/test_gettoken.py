"""gettoken and the access_token rules every business call applies."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from app.clock import ManualClock
from app.wecom_sandbox.state import SandboxState
from tests.wecom_sandbox.support import AGENT, CORP_ID, OTHER_AGENT, SECRET, SandboxApi, text


async def _gettoken(client: httpx.AsyncClient, **params: str) -> dict[str, object]:
    r = await client.get("/cgi-bin/gettoken", params=params)
    assert r.status_code == 200
    return dict(r.json())


async def test_success_has_the_documented_shape(client: httpx.AsyncClient) -> None:
    body = await _gettoken(client, corpid=CORP_ID, corpsecret=SECRET)
    assert (body["errcode"], body["errmsg"], body["expires_in"]) == (0, "ok", 7200)
    token = body["access_token"]
    assert isinstance(token, str)
    assert len(token) >= 64


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({}, 41004),  # the real server reports the missing secret first
        ({"corpid": CORP_ID}, 41004),
        ({"corpsecret": SECRET}, 41002),
        ({"corpid": "wwsomeoneelse", "corpsecret": SECRET}, 40013),
        ({"corpid": CORP_ID, "corpsecret": "wrong"}, 40001),
    ],
)
async def test_errors(client: httpx.AsyncClient, params: dict[str, str], errcode: int) -> None:
    body = await _gettoken(client, **params)
    assert body["errcode"] == errcode
    assert "access_token" not in body
    assert str(body["errmsg"]).endswith(
        f"more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"
    )


async def test_expiry_follows_the_clock(
    api: SandboxApi, state: SandboxState, clock: ManualClock
) -> None:
    assert (await api.post("message/send", text("hi")))["errcode"] == 0
    clock.advance(timedelta(seconds=7199))
    assert (await api.post("message/send", text("still valid")))["errcode"] == 0
    clock.advance(timedelta(seconds=1))
    expired = await api.post("message/send", text("too late"))
    assert expired["errcode"] == 42001
    assert expired["errmsg"].startswith("access_token expired, hint: [")
    assert len(state.delivered("message")) == 2


async def test_lifetime_and_expiry_code_are_configurable(
    client: httpx.AsyncClient, state: SandboxState, clock: ManualClock
) -> None:
    state.token_lifetime, state.expired_errcode = 60, 40014
    api = SandboxApi(client, state)
    await api.token()
    issued = state.calls_to("gettoken")[0].response
    assert issued is not None
    assert issued["expires_in"] == 60
    clock.advance(timedelta(seconds=60))
    assert (await api.post("message/send", text("x")))["errcode"] == 40014


async def test_early_invalidation_answers_40014_and_a_new_token_works(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    api = SandboxApi(client, state)
    await api.token()
    state.invalidate_tokens()
    assert (await api.post("message/send", text("x")))["errcode"] == 40014
    fresh = SandboxApi(client, state)
    assert (await fresh.post("message/send", text("x")))["errcode"] == 0
    assert state.gettoken_count == 2


async def test_token_only_counts_in_the_query_string(
    client: httpx.AsyncClient, api: SandboxApi
) -> None:
    token = await api.token()
    in_header = await client.post(
        "/cgi-bin/message/send", json=text("x"), headers={"Authorization": f"Bearer {token}"}
    )
    in_body = await client.post("/cgi-bin/message/send", json={**text("x"), "access_token": token})
    garbage = await client.post(
        "/cgi-bin/message/send", params={"access_token": "garbage"}, json=text("x")
    )
    assert [r.json()["errcode"] for r in (in_header, in_body, garbage)] == [41001, 41001, 40014]


async def test_a_token_serves_its_own_app_only(api: SandboxApi) -> None:
    other_app_token = await api.post("message/send", text("x", agent=AGENT), agent=OTHER_AGENT)
    assert other_app_token["errcode"] == 301002
    assert (await api.post("message/send", text("x", agent=OTHER_AGENT), agent=OTHER_AGENT))[
        "errcode"
    ] == 0


async def test_success_without_errcode_switch(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    state.answer_success_without_errcode()
    body = await _gettoken(client, corpid=CORP_ID, corpsecret=SECRET)
    assert "errcode" not in body
    assert "errmsg" not in body
    assert body["expires_in"] == 7200
    # Errors still carry their errcode, and the recorded call reads as success.
    assert (await _gettoken(client, corpid=CORP_ID, corpsecret="bad"))["errcode"] == 40001
    assert [c.errcode for c in state.calls_to("gettoken")] == [0, 40001]


async def test_customer_contact_needs_an_app_allowed_to_call_it(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    state.contact_apps = {OTHER_AGENT}
    api = SandboxApi(client, state)
    denied = await api.get("externalcontact/get", external_userid="wmStudentA0000001")
    allowed = await api.get(
        "externalcontact/get", agent=OTHER_AGENT, external_userid="wmStudentA0000001"
    )
    assert (denied["errcode"], allowed["errcode"]) == (48002, 84061)
