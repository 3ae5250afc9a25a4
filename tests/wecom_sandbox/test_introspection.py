"""/sandbox/...: drive and inspect the sandbox over HTTP, as the demo and operators do."""

from __future__ import annotations

import httpx

from app.clock import ManualClock
from app.wecom_sandbox.server import create_sandbox_app
from app.wecom_sandbox.state import SandboxState
from tests.wecom_sandbox.support import SandboxApi, text

STUDENT = "wmStudentAxxxxxxxxxxxxxxxxxxx"


async def test_register_a_robot_then_read_the_messages(
    client: httpx.AsyncClient, api: SandboxApi
) -> None:
    assert (await client.post("/sandbox/robots", json={"key": "k1"})).status_code == 200
    assert (await api.robot("k1", {"msgtype": "text", "text": {"content": "hi"}}))["errcode"] == 0
    messages = (await client.get("/sandbox/messages")).json()
    assert messages["sent"] == [{"msgtype": "text", "text": {"content": "hi"}}]
    assert messages["deliveries"][0]["channel"] == "webhook"
    assert messages["deliveries"][0]["at"] == "2026-03-01T09:00:00+00:00"
    assert (await client.delete("/sandbox/robots/k1")).status_code == 200
    assert (await api.robot("k1", {"msgtype": "text", "text": {"content": "hi"}}))[
        "errcode"
    ] == 93000


async def test_calls_can_be_filtered_by_path(client: httpx.AsyncClient, api: SandboxApi) -> None:
    await api.post("message/send", text("x"))
    everything = (await client.get("/sandbox/calls")).json()["calls"]
    sends = (await client.get("/sandbox/calls", params={"path": "message/send"})).json()["calls"]
    assert [c["path"] for c in everything] == ["/cgi-bin/gettoken", "/cgi-bin/message/send"]
    assert [(c["json"], c["response"]["errcode"]) for c in sends] == [(text("x"), 0)]


async def test_inject_failures_over_http(client: httpx.AsyncClient, api: SandboxApi) -> None:
    await client.post(
        "/sandbox/fail-next", json={"path": "message/send", "errcode": -1, "times": 2}
    )
    codes = [(await api.post("message/send", text("x")))["errcode"] for _ in range(3)]
    assert codes == [-1, -1, 0]
    await client.post("/sandbox/fail-forever", json={"path": "message/send", "errcode": 45009})
    assert (await api.post("message/send", text("x")))["errcode"] == 45009
    await client.post("/sandbox/clear-failures")
    assert (await api.post("message/send", text("x")))["errcode"] == 0
    await client.post("/sandbox/respond-5xx", json={"path": "message/send", "status": 503})
    await client.post("/sandbox/invalidate-tokens")
    token = await api.token()
    r = await client.post("/cgi-bin/message/send", params={"access_token": token}, json=text("x"))
    assert r.status_code == 503
    assert (await api.post("message/send", text("x")))["errcode"] == 40014


async def test_drive_the_customer_side(
    client: httpx.AsyncClient, api: SandboxApi, state: SandboxState
) -> None:
    contact = {"external_userid": STUDENT, "name": "小明", "follow_userid": "zhangsan"}
    assert (await client.post("/sandbox/external-contacts", json=contact)).status_code == 200
    group = {"chat_id": "wrCamp42", "owner": "zhangsan", "name": "42期"}
    assert (await client.post("/sandbox/customer-groups", json=group)).json()["name"] == "42期"
    change = (
        await client.post("/sandbox/customer-groups/wrCamp42/join", json={"members": [STUDENT]})
    ).json()
    assert change["cur_version"] == state.customer_groups["wrCamp42"].member_version
    tag_id = (
        await client.post("/sandbox/corp-tags", json={"group_name": "营期", "tag_name": "42"})
    ).json()["tag_id"]
    assert tag_id in state.tags
    code = (
        await client.post(
            "/sandbox/welcome-codes", json={"userid": "zhangsan", "external_userid": STUDENT}
        )
    ).json()["welcome_code"]
    welcome = {"welcome_code": code, "text": {"content": "欢迎"}}
    assert (await api.post("externalcontact/send_welcome_msg", welcome))["errcode"] == 0
    created = await api.post("externalcontact/add_msg_template", {"text": {"content": "喜报"}})
    settled = (await client.post(f"/sandbox/confirm/{created['msgid']}", json={})).json()[
        "settled"
    ]
    assert [(t["target"], t["status"]) for t in settled] == [(STUDENT, 1)]
    left = (
        await client.post("/sandbox/customer-groups/wrCamp42/leave", json={"members": [STUDENT]})
    ).json()
    assert left["members"] == [STUDENT]
    summary = (await client.get("/sandbox/state")).json()
    assert list(summary["customer_groups"]["wrCamp42"]["members"]) == ["zhangsan"]
    assert summary["external_contacts"][STUDENT]["name"] == "小明"


async def test_advance_the_manual_clock(client: httpx.AsyncClient, clock: ManualClock) -> None:
    r = await client.post("/sandbox/advance-clock", json={"seconds": 90})
    assert r.json() == {"now": "2026-03-01T09:01:30+00:00"}
    assert clock.now().minute == 1


async def test_set_a_delay(client: httpx.AsyncClient, state: SandboxState) -> None:
    await client.post("/sandbox/delay", json={"path": "gettoken", "seconds": 0.5})
    assert state.faults.delay_for("/cgi-bin/gettoken") == 0.5
    bad = await client.post("/sandbox/delay", json={"path": "gettoken", "seconds": "soon"})
    assert bad.status_code == 400


async def test_bad_input_is_a_400_and_unknown_things_a_404(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    bad = await client.post("/sandbox/fail-next", json={"path": "message/send", "errcode": "x"})
    assert (bad.status_code, bad.json()) == (400, {"error": "errcode must be int"})
    assert (await client.post("/sandbox/robots", content=b"[1]")).status_code == 400
    assert (await client.post("/sandbox/robots", json={})).json() == {"error": "key is required"}
    missing = await client.post("/sandbox/confirm/msgNope")
    assert (missing.status_code, missing.json()) == (404, {"error": "no msg template 'msgNope'"})
    gone = await client.post("/sandbox/customer-groups/wrNope/join", json={"members": []})
    assert gone.status_code == 404
    assert state.faults.failures == {}


async def test_advance_clock_needs_a_manual_clock() -> None:
    state = SandboxState(corp_id="wwreal", apps={1: "s"})
    transport = httpx.ASGITransport(app=create_sandbox_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        r = await client.post("/sandbox/advance-clock", json={"seconds": 1})
    assert r.status_code == 409
