"""A 喜报 to 30 groups of mixed channels, end to end: the admin API writes the outbox, a
Sender on the test clock drains it into the sandbox, and the progress counts follow."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import logging
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import outbox
from app.channels.deliver import ChannelDeliverer
from app.channels.mass_send import sync_mass_sends
from app.clock import ManualClock
from app.models import Group, OutboxMessage, OutboxStatus
from app.sender import SEND_CHUNK, Sender
from app.wecom.client import WeComClient
from app.wecom_sandbox.state import SandboxState
from tests.bots.xibao.conftest import (
    OWNER,
    STUDENT_NAME,
    Admin,
    appchat_id,
    customer_chat,
    drain,
    robot_key,
    seed_camp,
)

ADD_MSG_TEMPLATE = "/cgi-bin/externalcontact/add_msg_template"


async def _achieve(admin: Admin, member_id: int, **extra: Any) -> dict[str, Any]:
    body = {"member_id": member_id, "title": "出单啦", "detail": "上架第 3 天出了第一单"}
    response = await admin.post("/achievements", json=body | extra)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert created["status"] == "approved"
    assert created["broadcast_id"]
    return created


async def _progress(admin: Admin, broadcast_id: int) -> dict[str, Any]:
    response = await admin.get(f"/broadcasts/{broadcast_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    counts = [body[k] for k in ("sent", "failed", "pending", "awaiting_confirmation")]
    assert sum(counts) == body["total"] == len(body["groups"])
    return body


def _counts(progress: dict[str, Any]) -> tuple[int, int, int, int, int]:
    keys = ("total", "sent", "failed", "pending", "awaiting_confirmation")
    return tuple(progress[k] for k in keys)


def _webhooks(sandbox: SandboxState) -> Counter[tuple[str, str]]:
    return Counter((d.target, d.body["msgtype"]) for d in sandbox.delivered("webhook"))


def _appchats(sandbox: SandboxState) -> Counter[tuple[str, str]]:
    return Counter((d.body["chatid"], d.body["msgtype"]) for d in sandbox.delivered("appchat"))


def _assert_one_xibao_per_group(sandbox: SandboxState) -> None:
    """Exactly one send per group: each robot and app chat the poster as an image message,
    each customer group one mass-send task with the text and the poster — nothing else."""
    assert _webhooks(sandbox) == Counter({(robot_key(n), "image"): 1 for n in range(10)})
    assert _appchats(sandbox) == Counter({(appchat_id(n), "image"): 1 for n in range(10)})
    tasks = [c.json for c in sandbox.calls_to(ADD_MSG_TEMPLATE) if c.errcode == 0]
    assert sorted(t["chat_id_list"][0] for t in tasks) == sorted(
        customer_chat(n) for n in range(10)
    )
    for task in tasks:
        assert (task["chat_type"], task["sender"], len(task["chat_id_list"])) == (
            "group",
            OWNER,
            1,
        )
        assert STUDENT_NAME in task["text"]["content"]
        [attachment] = task["attachments"]
        assert attachment["msgtype"] == "image"
        assert attachment["image"]["media_id"]


async def test_thirty_groups_get_one_xibao_each_by_their_own_api(
    admin: Admin,
    sessions: async_sessionmaker[AsyncSession],
    sandbox: SandboxState,
    clock: ManualClock,
    sender: Sender,
) -> None:
    camp = await seed_camp(sessions, sandbox, clock)
    created = await _achieve(admin, camp.member_id)
    before = await _progress(admin, created["broadcast_id"])
    assert _counts(before) == (30, 0, 0, 30, 0)
    assert sandbox.calls == []  # the API only wrote the outbox

    await drain(sender, clock)

    _assert_one_xibao_per_group(sandbox)
    tasks = [c.json for c in sandbox.calls_to(ADD_MSG_TEMPLATE) if c.errcode == 0]
    texts = [task["text"]["content"] for task in tasks]
    assert texts
    assert all(
        f"恭喜 {STUDENT_NAME} 出单啦" in t and "跨境电商实战营的第 2 天" in t for t in texts
    )
    # The robots' image is the poster itself, base64 + md5 as the webhook takes it.
    image = next(d.body["image"] for d in sandbox.delivered("webhook") if "image" in d.body)
    png = base64.b64decode(image["base64"])
    assert hashlib.md5(png).hexdigest() == image["md5"]
    assert Image.open(io.BytesIO(png)).size == (1080, 1440)
    poster = await admin.get(f"/broadcasts/{created['broadcast_id']}/poster.png")
    assert poster.content == png
    assert poster.headers["content-type"] == "image/png"
    # App chats and customer groups share the poster's upload (the media cache), not one
    # per group: the sender's 4 workers may race to the first upload, no more.
    assert 1 <= len(sandbox.calls_to("/cgi-bin/media/upload")) <= 4

    after = await _progress(admin, created["broadcast_id"])
    assert _counts(after) == (30, 20, 0, 0, 10)
    customer = {g["group_id"] for g in after["groups"] if g["channel"] == "customer_group"}
    assert customer == set(camp.groups["customer"])
    assert {g["status"] for g in after["groups"] if g["group_id"] in customer} == {
        "awaiting_confirmation"
    }


async def test_owner_confirmations_turn_awaiting_into_sent(
    admin: Admin,
    sessions: async_sessionmaker[AsyncSession],
    sandbox: SandboxState,
    clock: ManualClock,
    sender: Sender,
    wecom_client: WeComClient,
) -> None:
    camp = await seed_camp(sessions, sandbox, clock, per_channel=3)
    created = await _achieve(admin, camp.member_id)
    await drain(sender, clock)
    tasks = [c for c in sandbox.calls_to(ADD_MSG_TEMPLATE) if c.errcode == 0]
    for call in tasks[:2]:  # two owners tap 发送; the third has not yet
        assert call.response is not None
        sandbox.confirm_msg_template(call.response["msgid"])
    await sync_mass_sends(sessions=sessions, client=wecom_client, clock=clock)
    progress = await _progress(admin, created["broadcast_id"])
    assert _counts(progress) == (9, 8, 0, 0, 1)
    assert len(sandbox.delivered("msg_template")) == 2


async def test_failures_are_counted_with_their_reason(
    admin: Admin,
    sessions: async_sessionmaker[AsyncSession],
    sandbox: SandboxState,
    clock: ManualClock,
    sender: Sender,
) -> None:
    camp = await seed_camp(sessions, sandbox, clock, per_channel=2)
    # One robot was removed from its group; another group lost its robot key.
    sandbox.remove_robot(robot_key(0))
    async with sessions.begin() as session:
        await session.execute(
            update(Group).where(Group.id == camp.groups["robot"][1]).values(robot_key=None)
        )
    created = await _achieve(admin, camp.member_id)
    before = await _progress(admin, created["broadcast_id"])
    assert _counts(before) == (6, 0, 1, 5, 0)
    [keyless] = [g for g in before["groups"] if g["status"] == "failed"]
    assert "机器人 key" in keyless["error"]

    await drain(sender, clock)
    after = await _progress(admin, created["broadcast_id"])
    assert _counts(after) == (6, 2, 2, 0, 2)
    removed = next(g for g in after["groups"] if g["group_id"] == camp.groups["robot"][0])
    assert removed["status"] == "failed"
    assert removed["error"]


class KilledAfter:
    """Delivers through the channels until `limit` sends, then dies as a killed process
    does: the request in hand never reaches WeCom, and nothing more is done."""

    def __init__(self, deliver: ChannelDeliverer, limit: int) -> None:
        self.deliver, self.limit, self.sent = deliver, limit, 0

    async def __call__(self, row: OutboxMessage) -> str | None:
        if self.sent >= self.limit:
            raise asyncio.CancelledError  # killed mid-broadcast
        self.sent += 1
        return await self.deliver(row)


async def test_a_sender_killed_mid_broadcast_and_restarted_sends_once_per_group(
    admin: Admin,
    sessions: async_sessionmaker[AsyncSession],
    sandbox: SandboxState,
    clock: ManualClock,
    wecom_client: WeComClient,
) -> None:
    camp = await seed_camp(sessions, sandbox, clock)
    created = await _achieve(admin, camp.member_id)
    doomed = Sender(
        sessions=sessions,
        deliver=KilledAfter(ChannelDeliverer(wecom_client), limit=17),
        clock=clock,
        batch=10,
        concurrency=1,
    )
    killed = False
    for _ in range(100):
        try:
            await doomed.run_once()
        except asyncio.CancelledError:
            killed = True
            break
        clock.advance(timedelta(seconds=4))
    assert killed
    await asyncio.sleep(0.1)  # the dead chunk's other sends land (or not) at the fake
    async with sessions() as session:
        at_kill = {
            r.key: r.status for r in (await session.execute(select(OutboxMessage))).scalars()
        }
    statuses = Counter(at_kill.values())
    # The first batch (10 rows) went out and was recorded; of the second, the first chunk
    # was on its way (app.sender_steps) when the sender died on its 18th send.
    assert statuses[OutboxStatus.SENT] == 10
    assert statuses[OutboxStatus.SENDING] == SEND_CHUNK  # the chunk in the dead one's hand
    in_flight = {key for key, status in at_kill.items() if status == OutboxStatus.SENDING}
    middle = await _progress(admin, created["broadcast_id"])
    assert 0 < middle["sent"] + middle["awaiting_confirmation"] < 30
    assert middle["pending"] > 0

    # A new sender takes over once the dead one's lease has run out.
    clock.advance(outbox.LEASE + timedelta(seconds=1))
    fresh = Sender(sessions=sessions, deliver=ChannelDeliverer(wecom_client), clock=clock)
    await drain(fresh, clock)

    assert _counts(await _progress(admin, created["broadcast_id"])) == (30, 20, 0, 0, 10)
    async with sessions() as session:
        rows = list((await session.execute(select(OutboxMessage))).scalars())
    # Each group's 喜报 reached WeCom once, but for the chunk on its way at the kill: those
    # were sent again, each counted in_doubt (the ones that had arrived, twice).
    assert {r.key for r in rows if r.in_doubt} == in_flight
    assert all(r.in_doubt == 1 for r in rows if r.in_doubt)
    reached = _webhooks(sandbox) + _appchats(sandbox)
    for row in rows:
        expected = (1, 2) if row.key in in_flight else (1,)
        if row.channel != "customer_group":
            assert reached[(row.target, "image")] in expected, row.key
    repeated = sum(n - 1 for n in reached.values())
    assert repeated <= len(in_flight)


async def test_chosen_groups_only(
    admin: Admin,
    sessions: async_sessionmaker[AsyncSession],
    sandbox: SandboxState,
    clock: ManualClock,
    sender: Sender,
) -> None:
    camp = await seed_camp(sessions, sandbox, clock, per_channel=2)
    chosen = [camp.groups["robot"][1], camp.groups["customer"][0]]
    created = await _achieve(admin, camp.member_id, group_ids=chosen)
    await drain(sender, clock)
    assert _webhooks(sandbox) == Counter({(robot_key(1), "image"): 1})
    assert len(sandbox.calls_to(ADD_MSG_TEMPLATE)) == 1
    progress = await _progress(admin, created["broadcast_id"])
    assert sorted(g["group_id"] for g in progress["groups"]) == sorted(chosen)
    async with sessions() as session:
        keys = set((await session.execute(select(OutboxMessage.key))).scalars())
    aid = created["id"]
    assert keys == {
        f"xibao:{aid}:{chosen[0]}",
        f"xibao:{aid}:{chosen[1]}",
    }


async def test_without_a_cjk_font_the_xibao_goes_out_as_text_and_operators_see_why(
    admin: Admin,
    sessions: async_sessionmaker[AsyncSession],
    sandbox: SandboxState,
    clock: ManualClock,
    sender: Sender,
    no_cjk_font: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    camp = await seed_camp(sessions, sandbox, clock)

    with caplog.at_level(logging.WARNING, logger="bots.xibao.service"):
        created = await _achieve(admin, camp.member_id)

    missing = created["poster_missing"]
    assert missing.startswith("未安装中文字体（fonts-wqy-microhei）")
    assert "apt-get install -y fonts-wqy-microhei" in missing
    [warning] = [r for r in caplog.records if r.name == "bots.xibao.service"]
    assert warning.levelno == logging.WARNING
    assert "text only" in warning.getMessage()
    assert "fonts-wqy-microhei" in warning.getMessage()
    before = await _progress(admin, created["broadcast_id"])
    assert before["poster_missing"] == missing
    assert _counts(before) == (30, 0, 0, 30, 0)

    await drain(sender, clock)

    # Robots and app chats: the script's text instead of the poster, once each.
    assert _webhooks(sandbox) == Counter({(robot_key(n), "text"): 1 for n in range(10)})
    assert _appchats(sandbox) == Counter({(appchat_id(n), "text"): 1 for n in range(10)})
    texts = [d.body["text"]["content"] for d in sandbox.delivered("webhook")]
    texts += [d.body["text"]["content"] for d in sandbox.delivered("appchat")]
    assert all(f"恭喜 {STUDENT_NAME} 出单啦" in t for t in texts)
    # Customer groups: the text, without an attachment.
    tasks = [c.json for c in sandbox.calls_to(ADD_MSG_TEMPLATE) if c.errcode == 0]
    assert sorted(t["chat_id_list"][0] for t in tasks) == sorted(
        customer_chat(n) for n in range(10)
    )
    for task in tasks:
        assert f"恭喜 {STUDENT_NAME} 出单啦" in task["text"]["content"]
        assert not task.get("attachments")
    after = await _progress(admin, created["broadcast_id"])
    assert _counts(after) == (30, 20, 0, 0, 10)
    listed = (await admin.get(f"/achievements/{created['id']}")).json()
    assert listed["poster_missing"] == missing
    no_poster = await admin.get(f"/broadcasts/{created['broadcast_id']}/poster.png")
    assert no_poster.status_code == 404
    assert "fonts-wqy-microhei" in no_poster.json()["detail"]
