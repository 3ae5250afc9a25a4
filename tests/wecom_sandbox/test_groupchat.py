"""客户群 details and listing; group welcome templates."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.clock import ManualClock
from app.wecom_sandbox.state import SandboxState
from tests.wecom_sandbox.support import SandboxApi

STUDENT = "wmStudentAxxxxxxxxxxxxxxxxxxx"


async def test_get_has_the_documented_shape(
    api: SandboxApi, state: SandboxState, clock: ManualClock
) -> None:
    state.add_external_contact(STUDENT, "小明", "zhangsan")
    state.add_customer_group("wrCamp42", "zhangsan", ["lisi"], name="42期1群", notice="每天打卡")
    clock.advance(timedelta(minutes=5))
    state.join_customer_group("wrCamp42", [STUDENT], join_scene=3, invitor="zhangsan")
    body = await api.post("externalcontact/groupchat/get", {"chat_id": "wrCamp42", "need_name": 1})
    assert body["errcode"] == 0
    chat = body["group_chat"]
    assert (chat["chat_id"], chat["name"], chat["owner"], chat["notice"]) == (
        "wrCamp42",
        "42期1群",
        "zhangsan",
        "每天打卡",
    )
    assert chat["member_version"] == state.customer_groups["wrCamp42"].member_version
    members = {m["userid"]: m for m in chat["member_list"]}
    assert (members["lisi"]["type"], members[STUDENT]["type"]) == (1, 2)
    assert members[STUDENT]["join_scene"] == 3
    assert members[STUDENT]["invitor"] == {"userid": "zhangsan"}
    assert members[STUDENT]["name"] == "小明"
    assert members[STUDENT]["join_time"] == chat["create_time"] + 300
    assert chat["admin_list"] == []


async def test_names_only_when_asked(api: SandboxApi, state: SandboxState) -> None:
    state.add_customer_group("wrCamp42", "zhangsan")
    body = await api.post("externalcontact/groupchat/get", {"chat_id": "wrCamp42"})
    assert "name" not in body["group_chat"]["member_list"][0]


async def test_member_changes_bump_the_version(state: SandboxState) -> None:
    group = state.add_customer_group("wrCamp42", "zhangsan")
    start = group.member_version
    joined = state.join_customer_group("wrCamp42", [STUDENT, "zhangsan"])
    left = state.leave_customer_group("wrCamp42", [STUDENT, "wmNeverThere000000000"])
    assert (joined.members, left.members) == ((STUDENT,), (STUDENT,))
    assert joined.last_version == start
    assert left.last_version == joined.cur_version != start
    assert group.member_version == left.cur_version
    assert list(group.members) == ["zhangsan"]


@pytest.mark.parametrize(("body", "errcode"), [({}, 40058), ({"chat_id": "wrNotOurs"}, 90501)])
async def test_get_errors(api: SandboxApi, body: dict[str, Any], errcode: int) -> None:
    assert (await api.post("externalcontact/groupchat/get", body))["errcode"] == errcode


async def test_list_filters_and_pages(api: SandboxApi, state: SandboxState) -> None:
    for n in range(3):
        state.add_customer_group(f"wrZ{n}", "zhangsan")
    state.add_customer_group("wrL0", "lisi")
    everyone = await api.post("externalcontact/groupchat/list", {"limit": 10})
    assert [g["chat_id"] for g in everyone["group_chat_list"]] == ["wrZ0", "wrZ1", "wrZ2", "wrL0"]
    assert everyone["group_chat_list"][0]["status"] == 0
    mine = await api.post(
        "externalcontact/groupchat/list",
        {"limit": 2, "owner_filter": {"userid_list": ["zhangsan"]}},
    )
    rest = await api.post(
        "externalcontact/groupchat/list",
        {"limit": 2, "owner_filter": {"userid_list": ["zhangsan"]}, "cursor": mine["next_cursor"]},
    )
    assert [g["chat_id"] for g in mine["group_chat_list"] + rest["group_chat_list"]] == [
        "wrZ0",
        "wrZ1",
        "wrZ2",
    ]
    assert rest["next_cursor"] == ""
    inherited = await api.post("externalcontact/groupchat/list", {"limit": 10, "status_filter": 1})
    assert inherited["group_chat_list"] == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"limit": 0},
        {"limit": 1001},
        {"limit": 10, "status_filter": 4},
        {"limit": 10, "owner_filter": {"userid_list": ["u"] * 101}},
    ],
)
async def test_list_validation(api: SandboxApi, body: dict[str, Any]) -> None:
    assert (await api.post("externalcontact/groupchat/list", body))["errcode"] == 40058


async def test_list_bad_cursor(api: SandboxApi) -> None:
    body = {"limit": 10, "cursor": "not-ours"}
    assert (await api.post("externalcontact/groupchat/list", body))["errcode"] == 50100


TEMPLATE = "externalcontact/group_welcome_template/"


async def test_welcome_template_add_edit_get_del(api: SandboxApi) -> None:
    added = await api.post(TEMPLATE + "add", {"text": {"content": "欢迎 %NICKNAME% 入群"}})
    assert added["errcode"] == 0
    template_id = added["template_id"]
    link = {"title": "群公告", "url": "https://camp.example/notice"}
    edited = await api.post(TEMPLATE + "edit", {"template_id": template_id, "link": link})
    assert edited["errcode"] == 0
    got = await api.post(TEMPLATE + "get", {"template_id": template_id})
    assert (got["text"], got["link"]) == ({"content": "欢迎 %NICKNAME% 入群"}, link)
    assert (await api.post(TEMPLATE + "del", {"template_id": template_id}))["errcode"] == 0
    assert (await api.post(TEMPLATE + "get", {"template_id": template_id}))["errcode"] == 40058


@pytest.mark.parametrize(
    ("body", "errcode"), [({}, 44004), ({"text": {"content": "a" * 3001}}, 45002)]
)
async def test_welcome_template_validation(
    api: SandboxApi, state: SandboxState, body: dict[str, Any], errcode: int
) -> None:
    assert (await api.post(TEMPLATE + "add", body))["errcode"] == errcode
    assert state.welcome_templates == {}


async def test_at_most_100_welcome_templates(api: SandboxApi, state: SandboxState) -> None:
    for n in range(100):
        assert (await api.post(TEMPLATE + "add", {"text": {"content": f"#{n}"}}))["errcode"] == 0
    assert (await api.post(TEMPLATE + "add", {"text": {"content": "one too many"}}))[
        "errcode"
    ] == 41055
    assert len(state.welcome_templates) == 100


async def test_edit_unknown_template(api: SandboxApi) -> None:
    body = {"template_id": "msgNope", "text": {"content": "x"}}
    assert (await api.post(TEMPLATE + "edit", body))["errcode"] == 40058
