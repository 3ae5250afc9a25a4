"""Following mass sends (群发) after WeCom accepted them.

`add_msg_template` only creates a task: nothing reaches the group until its
owner taps 发送. This job records, per target, whether that happened
(`get_groupmsg_send_result`), and nudges the owner once (`remind_groupmsg_send`,
through the outbox) when a task is still unsent after `remind_after`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy import and_, exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import outbox
from app.background import every
from app.channels.reach import Channel
from app.clock import Clock
from app.models import MassSendResult, MassSendStatus, OutboxMessage, OutboxStatus
from app.wecom.client import WeComClient
from app.wecom.errors import WeComError
from app.wecom.types import GroupMsgSendItem

logger = logging.getLogger(__name__)

REMIND_AFTER = timedelta(hours=2)
MASS_CHANNELS = (Channel.CUSTOMER_GROUP, Channel.CUSTOMER_SINGLE)
# get_groupmsg_send_result: 0 unsent, 1 sent, 2 not a friend / left the group, 3 over quota.
_UNSENT, _SENT = 0, 1


async def track_new(*, session: AsyncSession, now: datetime) -> int:
    """Start a result row for every mass-send task created since the last run."""
    untracked = (
        (
            await session.execute(
                select(OutboxMessage).where(
                    OutboxMessage.channel.in_(MASS_CHANNELS),
                    OutboxMessage.status == OutboxStatus.SENT,
                    OutboxMessage.wecom_msgid.is_not(None),
                    ~exists().where(MassSendResult.outbox_id == OutboxMessage.id),
                )
            )
        )
        .scalars()
        .all()
    )
    for row in untracked:
        session.add(
            MassSendResult(
                outbox_id=row.id,
                msgid=row.wecom_msgid,
                sender=str(row.payload.get("sender", "")),
                target=row.target,
                status=MassSendStatus.AWAITING,
                created_at=row.sent_at or now,
            )
        )
    return len(untracked)


async def _fetch(client: WeComClient, msgid: str, sender: str) -> dict[str, GroupMsgSendItem]:
    """Every target's result of one task, by chat id or external userid."""
    found: dict[str, GroupMsgSendItem] = {}
    cursor = ""
    while True:
        page = await client.get_groupmsg_send_result(msgid=msgid, userid=sender, cursor=cursor)
        for item in page.send_list:
            found[item.chat_id or item.external_userid] = item
        if not page.next_cursor:
            return found
        cursor = page.next_cursor


def _apply(result: MassSendResult, item: GroupMsgSendItem | None, now: datetime) -> None:
    result.checked_at = now
    if item is None or item.status == _UNSENT:
        return
    result.wecom_status = item.status
    if item.status == _SENT:
        result.status = MassSendStatus.SENT
        result.sent_at = datetime.fromtimestamp(item.send_time, UTC) if item.send_time else now
    else:
        result.status = MassSendStatus.FAILED


async def _remind_overdue(
    session: AsyncSession,
    results: list[MassSendResult],
    *,
    now: datetime,
    remind_after: timedelta,
) -> None:
    overdue = [
        r
        for r in results
        if r.status == MassSendStatus.AWAITING
        and r.reminded_at is None
        and now - r.created_at >= remind_after
    ]
    if not overdue:
        return
    # WeCom allows 3 reminders a day per task; one, keyed by the task, is enough.
    await outbox.enqueue(
        session=session,
        key=f"remind:{overdue[0].msgid}",
        channel=Channel.REMIND,
        target=overdue[0].msgid,
        payload={},
        now=now,
    )
    for result in overdue:
        result.reminded_at = now


async def sync_mass_sends(
    *,
    sessions: async_sessionmaker[AsyncSession],
    client: WeComClient,
    clock: Clock,
    remind_after: timedelta = REMIND_AFTER,
) -> None:
    """One pass: track new tasks, record results, remind owners of overdue ones."""
    async with sessions.begin() as session:
        await track_new(session=session, now=clock.now())
        awaiting = (
            (
                await session.execute(
                    select(MassSendResult).where(MassSendResult.status == MassSendStatus.AWAITING)
                )
            )
            .scalars()
            .all()
        )
    tasks: dict[tuple[str, str], list[MassSendResult]] = defaultdict(list)
    for result in awaiting:
        tasks[(result.msgid, result.sender)].append(result)
    for (msgid, sender), results in tasks.items():
        try:
            found = await _fetch(client, msgid, sender)
        except WeComError:
            logger.warning("mass send %s: result not available yet", msgid, exc_info=True)
            continue
        async with sessions.begin() as session:
            now = clock.now()
            for result in results:
                merged = await session.merge(result)
                _apply(merged, found.get(result.target), now)
            fresh = (
                await session.execute(
                    select(MassSendResult).where(
                        and_(MassSendResult.msgid == msgid, MassSendResult.sender == sender)
                    )
                )
            ).scalars()
            await _remind_overdue(session, list(fresh), now=now, remind_after=remind_after)


SYNC_EVERY_S = 300.0


async def run_mass_send_sync(
    stop: asyncio.Event,
    *,
    sessions: async_sessionmaker[AsyncSession],
    client: WeComClient,
    clock: Clock,
    interval: float = SYNC_EVERY_S,
) -> None:
    """Follow mass sends until `stop` is set; started by the app's lifespan."""
    await every(
        stop,
        interval,
        partial(sync_mass_sends, sessions=sessions, client=client, clock=clock),
        name="mass-send sync",
    )
