"""Mass sends are followed after WeCom accepts them: results per group, one reminder."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.channels.deliver import ChannelDeliverer
from app.channels.mass_send import sync_mass_sends
from app.channels.messages import OutMessage
from app.channels.reach import Channel, Destination, enqueue_message
from app.models import MassSendResult
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
