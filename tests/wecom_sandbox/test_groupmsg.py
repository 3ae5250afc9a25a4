"""企业群发: nothing is delivered until the member confirms; results, statuses, reminders."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.clock import ManualClock
from app.wecom_sandbox.state import SandboxState
from tests.wecom_sandbox.support import SandboxApi

A, B, C = (f"wmStudent{n}xxxxxxxxxxxxxxxxxxx" for n in "ABC")


@pytest.fixture(autouse=True)
def customers(state: SandboxState) -> None:
    state.token_lifetime = 100 * 86400  # these tests span days; token expiry is tested elsewhere
    state.add_external_contact(A, "甲", "zhangsan")
    state.add_external_contact(B, "乙", "zhangsan")
    state.add_external_contact(C, "丙", "lisi")
    state.add_customer_group("wrGroup1", "zhangsan", [A, B], name="42期1群")
    state.add_customer_group("wrGroup2", "zhangsan", [A])
    state.add_customer_group("wrGroup3", "lisi", [C])


def template(**extra: Any) -> dict[str, Any]:
    return {"text": {"content": "喜报：本周打卡率 98%"}, **extra}


async def results(api: SandboxApi, msgid: str, userid: str, **extra: Any) -> dict[str, Any]:
    body = {"msgid": msgid, "userid": userid, **extra}
    return await api.post("externalcontact/get_groupmsg_send_result", body)


async def test_single_is_not_delivered_until_confirmed(
    api: SandboxApi, state: SandboxState
) -> None:
    created = await api.post(
        "externalcontact/add_msg_template",
        template(
            chat_type="single",
            external_userid=[A, B, "wmNobody0000000000000000"],
            sender="zhangsan",
        ),
    )
    assert created["errcode"] == 0
    assert created["fail_list"] == ["wmNobody0000000000000000"]
    msgid = created["msgid"]
    assert state.delivered() == []
    pending = await results(api, msgid, "zhangsan")
    assert [(e["external_userid"], e["status"]) for e in pending["send_list"]] == [(A, 0), (B, 0)]
    assert "send_time" not in pending["send_list"][0]

    settled = state.confirm_msg_template(msgid, A)
    assert [t.target for t in settled] == [A]
    assert [d.target for d in state.delivered("msg_template")] == [A]
    state.confirm_msg_template(msgid)
    sent = await results(api, msgid, "zhangsan")
    assert [e["status"] for e in sent["send_list"]] == [1, 1]
    assert sent["send_list"][0]["send_time"] == int(state.clock.now().timestamp())
    assert len(state.delivered("msg_template")) == 2


async def test_single_without_sender_goes_through_each_customers_member(
    api: SandboxApi, state: SandboxState
) -> None:
    created = await api.post("externalcontact/add_msg_template", template())
    by_sender = {t.target: t.sender for t in state.group_msgs[created["msgid"]].targets}
    assert by_sender == {A: "zhangsan", B: "zhangsan", C: "lisi"}
    assert [
        e["external_userid"] for e in (await results(api, created["msgid"], "lisi"))["send_list"]
    ] == [C]


async def test_tag_filter_narrows_the_audience(api: SandboxApi, state: SandboxState) -> None:
    paid = state.add_corp_tag("学员状态", "已付费")
    state.external_contacts[B].follow["zhangsan"].tag_ids.append(paid)
    body = template(tag_filter={"group_list": [{"tag_list": [paid]}]})
    created = await api.post("externalcontact/add_msg_template", body)
    assert [t.target for t in state.group_msgs[created["msgid"]].targets] == [B]


async def test_group_targets_the_senders_groups(api: SandboxApi, state: SandboxState) -> None:
    created = await api.post(
        "externalcontact/add_msg_template",
        template(chat_type="group", sender="zhangsan", chat_id_list=["wrGroup1", "wrGroup3"]),
    )
    assert created["fail_list"] == ["wrGroup3"]  # lisi's group
    state.confirm_msg_template(created["msgid"])
    listing = await results(api, created["msgid"], "zhangsan")
    assert listing["send_list"] == [
        {
            "chat_id": "wrGroup1",
            "userid": "zhangsan",
            "status": 1,
            "send_time": int(state.clock.now().timestamp()),
        }
    ]
    everything = await api.post(
        "externalcontact/add_msg_template", template(chat_type="group", sender="zhangsan")
    )
    assert [t.target for t in state.group_msgs[everything["msgid"]].targets] == [
        "wrGroup1",
        "wrGroup2",
    ]


async def test_status_2_when_no_longer_friends(api: SandboxApi, state: SandboxState) -> None:
    created = await api.post("externalcontact/add_msg_template", template(external_userid=[A, B]))
    state.remove_follow_user(B, "zhangsan")
    state.confirm_msg_template(created["msgid"])
    statuses = {
        e["external_userid"]: e["status"]
        for e in (await results(api, created["msgid"], "zhangsan"))["send_list"]
    }
    assert statuses == {A: 1, B: 2}


async def test_status_3_past_the_monthly_quota(
    api: SandboxApi, state: SandboxState, clock: ManualClock
) -> None:
    state.msg_template_monthly_quota = 2
    msgids = []
    for _ in range(3):
        created = await api.post("externalcontact/add_msg_template", template(external_userid=[A]))
        msgids.append(created["msgid"])
        state.confirm_msg_template(created["msgid"])
    statuses = [(await results(api, m, "zhangsan"))["send_list"][0]["status"] for m in msgids]
    assert statuses == [1, 1, 3]
    clock.advance(timedelta(days=31))  # 2026-03-01 + 31 days: a new month
    created = await api.post("externalcontact/add_msg_template", template(external_userid=[A]))
    state.confirm_msg_template(created["msgid"])
    assert (await results(api, created["msgid"], "zhangsan"))["send_list"][0]["status"] == 1


async def test_default_quota_is_the_days_in_the_month(state: SandboxState) -> None:
    assert state.msg_template_quota() == 31  # March: the default rule, no override


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        (template(chat_type="broadcast"), 86214),
        (template(chat_type="group"), 40058),  # group needs a sender
        (template(chat_type="group", sender="zhangsan", chat_id_list=["wr"] * 2001), 40058),
        ({"external_userid": [A]}, 44004),
        (template(external_userid=[A], text={"content": "a" * 4001}), 45002),
        (
            template(attachments=[{"msgtype": "link", "link": {"title": "t", "url": "u"}}] * 10),
            41064,
        ),
        (template(external_userid=["wmNobody0000000000000000"]), 41048),
        (template(chat_type="group", sender="wangwu"), 41048),
    ],
)
async def test_add_validation(
    api: SandboxApi, state: SandboxState, body: dict[str, Any], errcode: int
) -> None:
    assert (await api.post("externalcontact/add_msg_template", body))["errcode"] == errcode
    assert state.group_msgs == {}


async def test_send_result_validation_and_paging(api: SandboxApi) -> None:
    msgid = (await api.post("externalcontact/add_msg_template", template(external_userid=[A, B])))[
        "msgid"
    ]
    assert (await api.post("externalcontact/get_groupmsg_send_result", {"userid": "zhangsan"}))[
        "errcode"
    ] == 41046
    assert (await results(api, "msgNoSuch", "zhangsan"))["errcode"] == 41047
    assert (await api.post("externalcontact/get_groupmsg_send_result", {"msgid": msgid}))[
        "errcode"
    ] == 41009
    assert (await results(api, msgid, "zhangsan", limit=1001))["errcode"] == 40058
    assert (await results(api, msgid, "zhangsan", cursor="garbage"))["errcode"] == 50100
    first = await results(api, msgid, "zhangsan", limit=1)
    second = await results(api, msgid, "zhangsan", limit=1, cursor=first["next_cursor"])
    assert [e["external_userid"] for e in first["send_list"] + second["send_list"]] == [A, B]
    assert second["next_cursor"] == ""


async def test_remind_at_most_3_times_in_24_hours(api: SandboxApi, clock: ManualClock) -> None:
    msgid = (await api.post("externalcontact/add_msg_template", template(external_userid=[A])))[
        "msgid"
    ]
    codes = []
    for _ in range(4):
        codes.append(
            (await api.post("externalcontact/remind_groupmsg_send", {"msgid": msgid}))["errcode"]
        )
        clock.advance(timedelta(hours=1))
    assert codes == [0, 0, 0, 41094]
    clock.advance(timedelta(hours=20))  # the first reminder is now 24 h old
    assert (await api.post("externalcontact/remind_groupmsg_send", {"msgid": msgid}))[
        "errcode"
    ] == 0
    assert (await api.post("externalcontact/remind_groupmsg_send", {"msgid": msgid}))[
        "errcode"
    ] == 41094
    assert (await api.post("externalcontact/remind_groupmsg_send", {}))["errcode"] == 41046
    assert (await api.post("externalcontact/remind_groupmsg_send", {"msgid": "msgX"}))[
        "errcode"
    ] == 41047


async def test_confirm_unknown_msgid_raises(state: SandboxState) -> None:
    with pytest.raises(KeyError, match="msgNope"):
        state.confirm_msg_template("msgNope")
