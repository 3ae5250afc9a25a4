"""Mass sends are followed after WeCom accepts them: results per group, one reminder."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import outbox, quota
from app.channels.deliver import ChannelDeliverer
from app.channels.mass_send import sync_mass_sends
from app.channels.messages import OutMessage
from app.channels.reach import Channel, Destination, enqueue_message, message_payload
from app.models import MassSendQuotaSlot, MassSendResult
from app.quota import QuotaMode
from app.sender import Sender
from app.wecom_sandbox.state import SandboxState

REMIND = "/cgi-bin/externalcontact/remind_groupmsg_send"


@pytest.fixture(autouse=True)
def _corp(sandbox: SandboxState) -> None:
    for chat in ("wrA", "wrB"):
        sandbox.add_customer_group(chat, owner="zhangsan", members=[])


async def _results(sessions: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with sessions() as session:
        rows = (await session.execute(select(MassSendResult))).scalars()
        return {r.target: r.status for r in rows}


async def test_results_recorded_and_the_owner_reminded_once(
    sessions, clock, wecom_client, sandbox
) -> None:
    sender = Sender(sessions=sessions, deliver=ChannelDeliverer(wecom_client), clock=clock)
    for chat in ("wrA", "wrB"):
        async with sessions.begin() as session:
            await enqueue_message(
                session=session,
                key=f"xibao:1:{chat}",
                destination=Destination(Channel.CUSTOMER_GROUP, chat, sender="zhangsan"),
                message=OutMessage("text", content="喜报：小王上岸了！"),
                now=clock.now(),
            )
    await sender.run_once()
    sync = {
        "sessions": sessions,
        "client": wecom_client,
        "clock": clock,
        "remind_after": timedelta(hours=2),
    }

    await sync_mass_sends(**sync)
    assert await _results(sessions) == {"wrA": "awaiting", "wrB": "awaiting"}

    clock.advance(timedelta(hours=1))
    [task_a] = [
        c.response["msgid"]
        for c in sandbox.calls_to("/cgi-bin/externalcontact/add_msg_template")
        if c.json["chat_id_list"] == ["wrA"]
    ]
    sandbox.confirm_msg_template(task_a)  # the owner taps 发送 for group A only
    await sync_mass_sends(**sync)
    await sender.run_once()
    assert await _results(sessions) == {"wrA": "sent", "wrB": "awaiting"}
    assert sandbox.calls_to(REMIND) == []  # not overdue yet

    clock.advance(timedelta(hours=1, minutes=1))
    await sync_mass_sends(**sync)
    await sender.run_once()
    assert len(sandbox.calls_to(REMIND)) == 1

    clock.advance(timedelta(hours=5))
    await sync_mass_sends(**sync)
    await sender.run_once()
    assert len(sandbox.calls_to(REMIND)) == 1  # once, not every pass
    assert await _results(sessions) == {"wrA": "sent", "wrB": "awaiting"}


async def test_targets_wecom_refused_in_a_merged_send_get_their_slot_back(
    sessions, clock, wecom_client, sandbox
) -> None:
    # wmOut deleted zhangsan: WeCom accepts the merged task for wmIn only (fail_list).
    sandbox.add_external_contact("wmIn", "小王", follow_userid="zhangsan")
    sandbox.add_external_contact("wmOut", "小李", follow_userid="lisi")
    key = "push:merged"
    async with sessions.begin() as session:
        for student in ("wmIn", "wmOut"):
            assert await quota.spend(
                session=session,
                target=student,
                mode=QuotaMode.MONTH_DAYS,
                tz="Asia/Shanghai",
                now=clock.now(),
                outbox_key=key,
            )
        await outbox.enqueue(
            session=session,
            key=key,
            channel=Channel.CUSTOMER_SINGLE,
            target="zhangsan",
            payload={
                **message_payload(
                    Destination(Channel.CUSTOMER_SINGLE, "zhangsan", sender="zhangsan"),
                    OutMessage("text", content="今晚八点直播"),
                ),
                "external_userids": ["wmIn", "wmOut"],
            },
            now=clock.now(),
        )
    await Sender(sessions=sessions, deliver=ChannelDeliverer(wecom_client), clock=clock).run_once()
    [call] = sandbox.calls_to("/cgi-bin/externalcontact/add_msg_template")
    assert call.response["fail_list"] == ["wmOut"]

    await sync_mass_sends(sessions=sessions, client=wecom_client, clock=clock)
    # Only the target WeCom took is followed: get_groupmsg_send_result never lists wmOut.
    assert await _results(sessions) == {"wmIn": "awaiting"}
    async with sessions() as session:
        slots = await session.scalars(
            select(MassSendQuotaSlot.target).where(MassSendQuotaSlot.outbox_key == key)
        )
        assert list(slots) == ["wmIn"]

    sandbox.confirm_msg_template(call.response["msgid"])
    await sync_mass_sends(sessions=sessions, client=wecom_client, clock=clock)
    assert await _results(sessions) == {"wmIn": "sent"}  # nothing left awaiting forever
