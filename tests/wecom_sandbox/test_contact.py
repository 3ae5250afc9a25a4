"""客户联系: externalcontact/get, send_welcome_msg, mark_tag, get_corp_tag_list."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.clock import ManualClock
from app.wecom_sandbox.state import SandboxState
from tests.wecom_sandbox.support import PNG, SandboxApi

STUDENT = "wmCampStudent0001xxxxxxxxxxxx"


def welcome(code: str, **extra: Any) -> dict[str, Any]:
    return {"welcome_code": code, "text": {"content": "欢迎加入训练营"}, **extra}


async def test_get_returns_contact_and_follow_users(api: SandboxApi, state: SandboxState) -> None:
    state.add_external_contact(STUDENT, "小明", "zhangsan", state="camp42")
    body = await api.get("externalcontact/get", external_userid=STUDENT)
    assert body["errcode"] == 0
    assert body["external_contact"]["external_userid"] == STUDENT
    assert body["external_contact"]["name"] == "小明"
    [follow] = body["follow_user"]
    assert (follow["userid"], follow["state"], follow["tags"]) == ("zhangsan", "camp42", [])
    assert body["next_cursor"] == ""


@pytest.mark.parametrize(
    ("external_userid", "errcode"),
    [("", 41035), ("not-an-id", 40096), ("wmUnknownStudent000000000000", 84061)],
)
async def test_get_errors_carry_an_empty_follow_user(
    api: SandboxApi, external_userid: str, errcode: int
) -> None:
    body = await api.get("externalcontact/get", external_userid=external_userid)
    assert (body["errcode"], body["follow_user"]) == (errcode, [])


async def test_a_deleted_relation_is_84061(api: SandboxApi, state: SandboxState) -> None:
    state.add_external_contact(STUDENT, "小明", "zhangsan")
    state.remove_follow_user(STUDENT, "zhangsan")
    assert (await api.get("externalcontact/get", external_userid=STUDENT))["errcode"] == 84061


async def test_welcome_code_is_single_use(api: SandboxApi, state: SandboxState) -> None:
    code = state.issue_welcome_code("zhangsan", STUDENT)
    assert (await api.post("externalcontact/send_welcome_msg", welcome(code)))["errcode"] == 0
    again = await api.post("externalcontact/send_welcome_msg", welcome(code))
    assert again["errcode"] == 41051
    [delivery] = state.delivered("welcome")
    assert (delivery.target, delivery.sender) == (STUDENT, "zhangsan")


async def test_welcome_code_lives_20_seconds(
    api: SandboxApi, state: SandboxState, clock: ManualClock
) -> None:
    on_time = state.issue_welcome_code("zhangsan", STUDENT)
    late = state.issue_welcome_code("zhangsan", "wmOtherStudent00000000000000")
    clock.advance(timedelta(seconds=20))
    assert (await api.post("externalcontact/send_welcome_msg", welcome(on_time)))["errcode"] == 0
    clock.advance(timedelta(seconds=1))
    assert (await api.post("externalcontact/send_welcome_msg", welcome(late)))["errcode"] == 41050
    assert len(state.delivered("welcome")) == 1


async def test_welcome_with_attachments(api: SandboxApi, state: SandboxState) -> None:
    media_id = (await api.upload("media/upload", PNG, type="image"))["media_id"]
    attachments = [
        {"msgtype": "image", "image": {"media_id": media_id}},
        {"msgtype": "link", "link": {"title": "课表", "url": "https://camp.example/t"}},
    ]
    code = state.issue_welcome_code("zhangsan", STUDENT)
    body = welcome(code, attachments=attachments)
    assert (await api.post("externalcontact/send_welcome_msg", body))["errcode"] == 0


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"text": {"content": "hi"}}, 41049),
        ({"welcome_code": "made-up", "text": {"content": "hi"}}, 41050),
        ({"welcome_code": "CODE"}, 44004),
        ({"welcome_code": "CODE", "text": {"content": "a" * 4001}}, 45002),
        (
            welcome(
                "CODE", attachments=[{"msgtype": "link", "link": {"title": "t", "url": "u"}}] * 10
            ),
            41064,
        ),
        (welcome("CODE", attachments=[{"msgtype": "voice", "voice": {}}]), 41065),
        (welcome("CODE", attachments=[{"msgtype": "image", "image": {"media_id": "x"}}]), 40007),
    ],
)
async def test_welcome_validation_does_not_burn_the_code(
    api: SandboxApi, state: SandboxState, body: dict[str, Any], errcode: int
) -> None:
    code = state.issue_welcome_code("zhangsan", STUDENT)
    if body.get("welcome_code") == "CODE":
        body = {**body, "welcome_code": code}
    assert (await api.post("externalcontact/send_welcome_msg", body))["errcode"] == errcode
    assert (await api.post("externalcontact/send_welcome_msg", welcome(code)))["errcode"] == 0


async def test_mark_tag_and_see_it_on_the_contact(api: SandboxApi, state: SandboxState) -> None:
    state.add_external_contact(STUDENT, "小明", "zhangsan")
    paid = state.add_corp_tag("学员状态", "已付费")
    trial = state.add_corp_tag("学员状态", "试听")
    body = {"userid": "zhangsan", "external_userid": STUDENT, "add_tag": [trial, paid]}
    assert (await api.post("externalcontact/mark_tag", body))["errcode"] == 0
    body = {"userid": "zhangsan", "external_userid": STUDENT, "remove_tag": [trial]}
    assert (await api.post("externalcontact/mark_tag", body))["errcode"] == 0
    contact = await api.get("externalcontact/get", external_userid=STUDENT)
    assert contact["follow_user"][0]["tags"] == [
        {"group_name": "学员状态", "tag_name": "已付费", "tag_id": paid, "type": 1}
    ]


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"external_userid": STUDENT, "add_tag": ["TAG"]}, 41009),
        ({"userid": "zhangsan", "add_tag": ["TAG"]}, 41035),
        ({"userid": "zhangsan", "external_userid": STUDENT}, 40058),
        (
            {"userid": "zhangsan", "external_userid": STUDENT, "add_tag": [], "remove_tag": []},
            40058,
        ),
        ({"userid": "zhangsan", "external_userid": STUDENT, "add_tag": ["etNoSuchTag"]}, 40068),
        ({"userid": "lisi", "external_userid": STUDENT, "add_tag": ["TAG"]}, 84061),
    ],
)
async def test_mark_tag_validation(
    api: SandboxApi, state: SandboxState, body: dict[str, Any], errcode: int
) -> None:
    state.add_external_contact(STUDENT, "小明", "zhangsan")
    tag = state.add_corp_tag("学员状态", "已付费")
    body = {
        k: [tag if t == "TAG" else t for t in v] if k.endswith("_tag") else v
        for k, v in body.items()
    }
    assert (await api.post("externalcontact/mark_tag", body))["errcode"] == errcode
    assert state.external_contacts[STUDENT].follow["zhangsan"].tag_ids == []


async def test_get_corp_tag_list_filters(api: SandboxApi, state: SandboxState) -> None:
    paid = state.add_corp_tag("学员状态", "已付费")
    trial = state.add_corp_tag("学员状态", "试听")
    camp = state.add_corp_tag("营期", "第42期")
    everything = await api.post("externalcontact/get_corp_tag_list", {})
    assert [[t["id"] for t in g["tag"]] for g in everything["tag_group"]] == [
        [paid, trial],
        [camp],
    ]
    group_id = everything["tag_group"][1]["group_id"]
    by_group = await api.post("externalcontact/get_corp_tag_list", {"group_id": [group_id]})
    assert [g["group_name"] for g in by_group["tag_group"]] == ["营期"]
    by_tag = await api.post("externalcontact/get_corp_tag_list", {"tag_id": [trial]})
    assert [[t["name"] for t in g["tag"]] for g in by_tag["tag_group"]] == [["试听"]]
    assert everything["tag_group"][0]["deleted"] is False
