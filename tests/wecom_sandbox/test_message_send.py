"""message/send and appchat/send: validation, partial failure, dedupe, silent drops."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.clock import ManualClock
from app.wecom_sandbox.state import SandboxState
from tests.wecom_sandbox.support import AGENT, PNG, SandboxApi, text


async def test_happy_path_answers_msgid_and_delivers(api: SandboxApi, state: SandboxState) -> None:
    body = await api.post("message/send", text("早上好", to="zhangsan|lisi"))
    assert body["errcode"] == 0
    assert body["errmsg"] == "ok"
    assert (body["invaliduser"], body["invalidparty"], body["invalidtag"]) == ("", "", "")
    assert isinstance(body["msgid"], str)
    assert body["msgid"]
    [delivery] = state.delivered("message")
    assert delivery.recipients == ("zhangsan", "lisi")
    assert delivery.msgid == body["msgid"]
    assert state.sent_messages() == [text("早上好", to="zhangsan|lisi")]


async def test_unknown_users_are_reported_and_skipped(
    api: SandboxApi, state: SandboxState
) -> None:
    body = await api.post("message/send", text("hi", to="zhangsan|ghost|nobody"))
    assert (body["errcode"], body["invaliduser"]) == (0, "ghost|nobody")
    assert state.delivered("message")[0].recipients == ("zhangsan",)


async def test_all_recipients_invalid_is_81013(api: SandboxApi, state: SandboxState) -> None:
    body = await api.post("message/send", {**text("hi", to="ghost"), "toparty": "7"})
    assert body["errcode"] == 81013
    assert (body["invaliduser"], body["invalidparty"]) == ("ghost", "7")
    assert state.deliveries == []


async def test_at_all_reaches_every_member(api: SandboxApi, state: SandboxState) -> None:
    await api.post("message/send", text("全员", to="@all"))
    assert set(state.delivered("message")[0].recipients) == {"zhangsan", "lisi", "wangwu"}


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"touser": "zhangsan", "msgtype": "text", "text": {"content": "x"}}, 41011),
        (text("x", agent=999), 40056),
        ({**text("x"), "agentid": "1000002"}, 40056),
        ({**text("x"), "touser": ""}, 82001),
        ({**text("x"), "touser": ["zhangsan"]}, 40058),
        (text(""), 44004),
        (text("字" * 683), 45002),  # 2049 bytes
        ({**text("x"), "msgtype": "telegram"}, 40008),
        ({"touser": "zhangsan", "agentid": AGENT, "msgtype": "image", "image": {}}, 41006),
        (
            {
                "touser": "zhangsan",
                "agentid": AGENT,
                "msgtype": "image",
                "image": {"media_id": "x"},
            },
            40007,
        ),
        (
            {"touser": "zhangsan", "agentid": AGENT, "msgtype": "textcard", "textcard": {}},
            41016,
        ),
        (
            {"touser": "zhangsan", "agentid": AGENT, "msgtype": "news", "news": {"articles": []}},
            45008,
        ),
    ],
)
async def test_validation(
    api: SandboxApi, state: SandboxState, body: dict[str, Any], errcode: int
) -> None:
    assert (await api.post("message/send", body))["errcode"] == errcode
    assert state.deliveries == []


async def test_text_limit_is_2048_bytes(api: SandboxApi) -> None:
    assert (await api.post("message/send", text("a" * 2048)))["errcode"] == 0


async def test_a_get_where_a_post_body_is_needed_is_40058(api: SandboxApi) -> None:
    assert (await api.get("message/send"))["errcode"] == 40058


async def test_image_with_uploaded_media(api: SandboxApi, state: SandboxState) -> None:
    media_id = (await api.upload("media/upload", PNG, type="image"))["media_id"]
    body = {
        "touser": "lisi",
        "agentid": AGENT,
        "msgtype": "image",
        "image": {"media_id": media_id},
    }
    assert (await api.post("message/send", body))["errcode"] == 0
    assert state.delivered("message")[0].body["image"] == {"media_id": media_id}


async def test_duplicate_check_accepts_but_does_not_deliver_again(
    api: SandboxApi, state: SandboxState, clock: ManualClock
) -> None:
    message = text("打卡提醒", enable_duplicate_check=1, duplicate_check_interval=600)
    first = await api.post("message/send", message)
    clock.advance(timedelta(seconds=599))
    repeat = await api.post("message/send", message)
    assert (first["errcode"], repeat["errcode"]) == (0, 0)
    assert [d.status for d in state.deliveries] == ["delivered", "duplicate"]
    clock.advance(timedelta(seconds=1))
    await api.post("message/send", message)
    assert [d.status for d in state.deliveries][-1] == "delivered"


async def test_duplicate_check_is_per_content_and_opt_in(
    api: SandboxApi, state: SandboxState
) -> None:
    await api.post("message/send", text("a", enable_duplicate_check=1))
    await api.post("message/send", text("b", enable_duplicate_check=1))
    await api.post("message/send", text("a"))  # no check asked: delivered again
    assert [d.status for d in state.deliveries] == ["delivered"] * 3


async def test_over_30_a_minute_per_member_is_silently_dropped(
    api: SandboxApi, state: SandboxState, clock: ManualClock
) -> None:
    for n in range(30):
        await api.post("message/send", text(f"#{n}", to="zhangsan"))
    mixed = await api.post("message/send", text("#30", to="zhangsan|lisi"))
    alone = await api.post("message/send", text("#31", to="zhangsan"))
    assert (mixed["errcode"], alone["errcode"]) == (0, 0)
    assert (state.deliveries[30].recipients, state.deliveries[30].dropped) == (
        ("lisi",),
        ("zhangsan",),
    )
    assert state.deliveries[31].status == "dropped"
    clock.advance(timedelta(seconds=60))
    await api.post("message/send", text("next minute", to="zhangsan"))
    assert state.deliveries[-1].status == "delivered"
    assert len(state.sent_messages()) == 33


async def test_appchat_send(api: SandboxApi, state: SandboxState) -> None:
    state.add_appchat("campchat42", ["zhangsan", "lisi"])
    body = {"chatid": "campchat42", "msgtype": "markdown", "markdown": {"content": "**今日任务**"}}
    answer = await api.post("appchat/send", body)
    assert (answer["errcode"], answer["errmsg"]) == (0, "ok")
    [delivery] = state.delivered("appchat")
    assert (delivery.target, delivery.recipients) == ("campchat42", ("zhangsan", "lisi"))


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"msgtype": "text", "text": {"content": "x"}}, 86201),
        ({"chatid": "nochat", "msgtype": "text", "text": {"content": "x"}}, 86003),
        ({"chatid": "campchat42", "msgtype": "textcard_v9", "text": {}}, 40008),
        ({"chatid": "campchat42", "msgtype": "text", "text": {"content": ""}}, 44004),
    ],
)
async def test_appchat_validation(
    api: SandboxApi, state: SandboxState, body: dict[str, Any], errcode: int
) -> None:
    state.add_appchat("campchat42", ["zhangsan", "lisi"])
    assert (await api.post("appchat/send", body))["errcode"] == errcode
    assert state.deliveries == []
