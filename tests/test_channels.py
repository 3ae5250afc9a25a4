"""Channels end to end: group or member → the API that reaches it, through the outbox,
against the sandbox; content limits refused before anything is written."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import outbox
from app.channels.deliver import ChannelDeliverer
from app.channels.messages import Article, OutMessage
from app.channels.reach import Channel, Destination, enqueue_message, reach_group, reach_member
from app.clock import ManualClock
from app.models import Group, Member, OutboxMessage
from app.sender import Sender
from app.wecom.client import WeComClient
from app.wecom.errors import UndeliverableError
from app.wecom_sandbox.state import SandboxState
from tests.support import T0

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture(autouse=True)
def _corp(sandbox: SandboxState) -> None:
    sandbox.add_robot("robot-1")
    sandbox.add_appchat("staffchat", ["zhangsan", "lisi"])
    sandbox.add_external_contact("wmStudent1", name="小王", follow_userid="zhangsan")
    sandbox.add_customer_group("wrGroup1", owner="zhangsan", members=["wmStudent1"])


@pytest.fixture
def sender(
    wecom_client: WeComClient, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> Sender:
    return Sender(sessions=sessions, deliver=ChannelDeliverer(wecom_client), clock=clock)


def _group(channel: str, **fields: str) -> Group:
    return Group(id=1, name="7期1群", channel=channel, **fields)


async def _send(sessions, clock, sender, key: str, route: Destination, message: OutMessage) -> str:
    async with sessions.begin() as session:
        row_id = await enqueue_message(
            session=session, key=key, destination=route, message=message, now=clock.now()
        )
    assert row_id is not None
    return await sender.deliver_now(row_id)


async def test_each_group_kind_gets_its_api(sessions, clock, sender, sandbox) -> None:
    text = OutMessage("text", content="第1天任务：完成打卡", mentions=("zhangsan",))
    routes = {
        "robot": reach_group(_group("robot", robot_key="robot-1")),
        "appchat": reach_group(_group("appchat", chat_id="staffchat")),
        "customer": reach_group(_group("customer", chat_id="wrGroup1", owner_userid="zhangsan")),
    }
    for name, route in routes.items():
        assert await _send(sessions, clock, sender, f"day1:{name}", route, text) == "sent"

    [robot] = sandbox.delivered("webhook")
    assert robot.target == "robot-1"
    assert robot.body["text"] == {"content": "第1天任务：完成打卡", "mentioned_list": ["zhangsan"]}
    [appchat] = sandbox.delivered("appchat")
    assert appchat.body["chatid"] == "staffchat"
    # The mass send is accepted but waits for the owner's confirmation in WeCom.
    [task] = sandbox.calls_to("/cgi-bin/externalcontact/add_msg_template")
    assert task.json["chat_type"] == "group"
    assert task.json["sender"] == "zhangsan"
    assert task.json["chat_id_list"] == ["wrGroup1"]
    assert sandbox.delivered("msg_template") == []


async def test_members_get_app_message_or_single_mass_send(
    sessions, clock, sender, sandbox
) -> None:
    sandbox.add_user("lisi")
    internal = reach_member(Member(id=1, userid="lisi"))
    external = reach_member(Member(id=2, external_userid="wmStudent1", staff_userid="zhangsan"))
    assert (internal.channel, external.channel) == (Channel.APP_MESSAGE, Channel.CUSTOMER_SINGLE)
    reminder = OutMessage("text", content="今天还没打卡哦")
    assert await _send(sessions, clock, sender, "remind:lisi", internal, reminder) == "sent"
    assert await _send(sessions, clock, sender, "remind:wm1", external, reminder) == "sent"
    [message] = sandbox.delivered("message")
    assert message.recipients == ("lisi",)
    [task] = sandbox.calls_to("/cgi-bin/externalcontact/add_msg_template")
    assert (task.json["chat_type"], task.json["external_userid"]) == ("single", ["wmStudent1"])


async def test_images_go_as_base64_to_robots_and_as_media_elsewhere(
    sessions, clock, sender, sandbox
) -> None:
    poster = OutMessage("image", image=PNG)
    await _send(
        sessions,
        clock,
        sender,
        "xibao:1:robot",
        reach_group(_group("robot", robot_key="robot-1")),
        poster,
    )
    await _send(
        sessions,
        clock,
        sender,
        "xibao:1:appchat",
        reach_group(_group("appchat", chat_id="staffchat")),
        poster,
    )
    [robot] = sandbox.delivered("webhook")
    assert robot.body["image"] == {
        "base64": base64.b64encode(PNG).decode(),
        "md5": hashlib.md5(PNG).hexdigest(),
    }
    [appchat] = sandbox.delivered("appchat")
    assert appchat.body["image"]["media_id"]
    assert len(sandbox.calls_to("/cgi-bin/media/upload")) == 1


@pytest.mark.parametrize(
    ("route", "message", "words"),
    [
        (Destination(Channel.ROBOT, "robot-1"), OutMessage("text", content="打" * 683), "2048"),
        (
            Destination(Channel.ROBOT, "robot-1"),
            OutMessage("markdown", content="a" * 4097),
            "4096",
        ),
        (
            Destination(Channel.ROBOT, "robot-1"),
            OutMessage("image", image=PNG + b"0" * 2 * 1024 * 1024),
            "图片",
        ),
        (Destination(Channel.ROBOT, "robot-1"), OutMessage("image", image=b"GIF89a..."), "PNG"),
        (
            Destination(Channel.CUSTOMER_GROUP, "wrGroup1", "zhangsan"),
            OutMessage("markdown", content="x"),
            "markdown",
        ),
        (
            Destination(Channel.APPCHAT, "staffchat"),
            OutMessage("news", articles=tuple(Article(f"t{n}", "https://x") for n in range(9))),
            "8",
        ),
        (Destination(Channel.APPCHAT, "staffchat"), OutMessage("text", content="  "), "为空"),
    ],
)
async def test_content_over_the_limit_is_refused_before_anything_is_written(
    sessions, clock, route: Destination, message: OutMessage, words: str
) -> None:
    async with sessions.begin() as session:
        with pytest.raises(UndeliverableError, match=words):
            await enqueue_message(
                session=session, key="too-big", destination=route, message=message, now=clock.now()
            )
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_a_group_without_its_channel_details_is_refused_clearly() -> None:
    with pytest.raises(UndeliverableError, match="机器人 key"):
        reach_group(_group("robot"))
    with pytest.raises(UndeliverableError, match="群主"):
        reach_group(_group("customer", chat_id="wrGroup1"))
    with pytest.raises(UndeliverableError, match="跟进员工"):
        reach_member(Member(id=3, external_userid="wmNoStaff"))


async def _row(sessions, key: str) -> OutboxMessage:
    async with sessions() as session:
        return (
            await session.execute(select(OutboxMessage).where(OutboxMessage.key == key))
        ).scalar_one()


async def test_removed_robot_is_dead_with_a_hint(sessions, clock, sender, sandbox) -> None:
    sandbox.remove_robot("robot-1")
    route = reach_group(_group("robot", robot_key="robot-1"))
    assert (
        await _send(sessions, clock, sender, "k", route, OutMessage("text", content="hi"))
        == "dead"
    )
    row = await _row(sessions, "k")
    assert row.last_errcode == 93000
    assert "重新添加机器人" in (row.last_error or "")


async def test_welcome_code_used_twice_is_dead_not_retried(
    sessions, clock, sender, sandbox
) -> None:
    code = sandbox.issue_welcome_code("zhangsan", "wmStudent1")
    for key in ("welcome:a", "welcome:b"):
        async with sessions.begin() as session:
            row_id = await outbox.enqueue(
                session=session,
                key=key,
                channel=Channel.WELCOME,
                target=code,
                payload={"text": "欢迎加入训练营！"},
                now=clock.now(),
            )
        assert row_id is not None
        await sender.deliver_now(row_id)
    assert (await _row(sessions, "welcome:a")).status == "sent"
    dead = await _row(sessions, "welcome:b")
    assert (dead.status, dead.last_errcode, dead.attempts) == ("dead", 41051, 1)
    clock.advance(timedelta(minutes=10))
    await sender.run_once()
    assert len(sandbox.delivered("welcome")) == 1


async def test_wecom_refusing_content_is_dead_at_once(sessions, clock, sender, sandbox) -> None:
    sandbox.fail_next("/cgi-bin/webhook/send", 45002)
    route = reach_group(_group("robot", robot_key="robot-1"))
    assert (
        await _send(sessions, clock, sender, "k", route, OutMessage("text", content="x")) == "dead"
    )
    assert (await _row(sessions, "k")).last_errcode == 45002


async def test_lost_answer_means_at_most_one_duplicate_recorded(
    sessions, clock, sender, sandbox
) -> None:
    sandbox.add_user("lisi")
    sandbox.accept_then_drop("/cgi-bin/webhook/send")
    sandbox.accept_then_drop("/cgi-bin/message/send")
    robot = reach_group(_group("robot", robot_key="robot-1"))
    member = reach_member(Member(id=1, userid="lisi"))
    message = OutMessage("text", content="今晚 8 点直播")
    assert await _send(sessions, clock, sender, "robot", robot, message) == "pending"
    assert await _send(sessions, clock, sender, "member", member, message) == "pending"
    clock.advance(timedelta(minutes=1))
    await sender.run_once()
    for key in ("robot", "member"):
        row = await _row(sessions, key)
        assert (row.status, row.in_doubt) == ("sent", 1)
    assert len(sandbox.delivered("webhook")) == 2  # the one documented duplicate
    assert len(sandbox.delivered("message")) == 1  # WeCom's duplicate check dropped it


async def test_a_hundred_messages_to_one_robot_never_hit_45009(
    sessions, clock, sender, sandbox
) -> None:
    route = reach_group(_group("robot", robot_key="robot-1"))
    for n in range(100):
        async with sessions.begin() as session:
            await enqueue_message(
                session=session,
                key=f"m{n}",
                destination=route,
                message=OutMessage("text", content=f"第{n}条"),
                now=clock.now(),
            )
    for _ in range(2000):
        if not await sender.run_once():
            due = await sender.next_due()
            if due is None:
                break
            clock.set(max(due, clock.now()))
    calls = sandbox.calls_to("/cgi-bin/webhook/send")
    assert len(calls) == 100
    assert {c.errcode for c in calls} == {0}
    times = [d.at for d in sandbox.delivered("webhook")]
    assert all(
        later - earlier > timedelta(seconds=60)
        for earlier, later in zip(times, times[20:], strict=False)
    )
    assert times[-1] - T0 <= timedelta(seconds=99 * 3 * 1.1)
