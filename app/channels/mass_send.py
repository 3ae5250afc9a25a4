"""Following mass sends (群发) after WeCom accepted them.

`add_msg_template` only creates a task: nothing reaches the group until its
owner taps 发送. This job records, per target, whether that happened
(`get_groupmsg_send_result`), and nudges the owner once (`remind_groupmsg_send`,
through the outbox) when a task is still unsent after `remind_after`.

It also corrects the quota (`app.quota`): a target WeCom says never got the task (status 2:
not a friend, not in the group any more) gets its slot back, as do the targets of a task
WeCom refused (a dead row) and those it left out of a task it accepted (its `fail_list`,
which its results never list: they are not followed); a target over quota (status 3) keeps
it and its window is marked full, and the row says so to operators in Chinese
(`OVER_QUOTA_NOTE`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy import and_, exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import outbox, quota
from app.background import every
from app.channels.deliver import recipients, refused_recipients
from app.channels.messages import OutMessage
from app.channels.reach import Channel, enqueue_message, staff_of_group, staff_of_member
from app.channels.routing import DEFAULT_ROUTING, Routing
from app.clock import Clock
from app.models import (
    Group,
    MassSendResult,
    MassSendStatus,
    Member,
    OutboxMessage,
    OutboxStatus,
)
from app.wecom.client import WeComClient
from app.wecom.errors import UndeliverableError, WeComError
from app.wecom.types import GroupMsgSendItem

logger = logging.getLogger(__name__)

REMIND_AFTER = timedelta(hours=2)
MASS_CHANNELS = (Channel.CUSTOMER_GROUP, Channel.CUSTOMER_SINGLE)
# get_groupmsg_send_result: 0 unsent, 1 sent, 2 not a friend / left the group, 3 over quota.
_UNSENT, _SENT, _GONE, _OVER_QUOTA = 0, 1, 2, 3
OVER_QUOTA_NOTE = "群发未送达：企业微信答复该{what}本周期的群发次数已用完（状态 3）。"
OVER_QUOTA_HINT = (
    "客户群和客户每月（或按群发助手的设置每周、每天）能收到的群发有上限，"
    "员工自己发的群发也算在内。CampBot 已把这个周期记为用完，之后的推送改为群SOP，"
    "由员工在聊天工具栏一键发送。"
)


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
        refused = refused_recipients(row)
        if refused:  # never reached: WeCom's results will not list them either
            await quota.release(session=session, outbox_key=row.key, targets=refused)
        for target in [t for t in recipients(row) if t not in refused]:
            session.add(
                MassSendResult(
                    outbox_id=row.id,
                    msgid=row.wecom_msgid,
                    sender=str(row.payload.get("sender", "")),
                    target=target,
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


def _apply(result: MassSendResult, item: GroupMsgSendItem | None, now: datetime) -> bool:
    """Record one target's result; True when it settled just now."""
    result.checked_at = now
    if item is None or item.status == _UNSENT:
        return False
    settled = result.status == MassSendStatus.AWAITING
    result.wecom_status = item.status
    if item.status == _SENT:
        result.status = MassSendStatus.SENT
        result.sent_at = datetime.fromtimestamp(item.send_time, UTC) if item.send_time else now
    else:
        result.status = MassSendStatus.FAILED
    return settled


def over_quota(last_error: str | None) -> bool:
    """The row's note says WeCom refused a target over quota (status 3)."""
    return bool(last_error) and str(last_error).startswith(OVER_QUOTA_NOTE[:6])


async def _correct_quota(
    session: AsyncSession,
    result: MassSendResult,
    row: OutboxMessage,
    rule: Routing,
    now: datetime,
) -> None:
    """Settle the quota of one target whose result just came in (see the module docstring)."""
    if result.wecom_status == _GONE:
        await quota.release(session=session, outbox_key=row.key, targets=[result.target])
    elif result.wecom_status == _OVER_QUOTA:
        tz = await quota.camp_timezone(
            session=session, target=result.target, default_tz=rule.default_tz
        )
        await quota.mark_full(
            session=session, target=result.target, mode=rule.mode, tz=tz, now=now
        )
        what = "客户群" if row.channel == Channel.CUSTOMER_GROUP else "客户"
        row.last_error = OVER_QUOTA_NOTE.format(what=what)
        await _post_by_staff(session, row, result.target, now)


async def _post_by_staff(
    session: AsyncSession, row: OutboxMessage, target: str, now: datetime
) -> None:
    """What WeCom refused over quota still reaches its chat: as a 群SOP item."""
    try:
        if row.channel == Channel.CUSTOMER_GROUP:
            group = await session.scalar(select(Group).where(Group.chat_id == target))
            destination = staff_of_group(group) if group else None
        else:
            member = await session.scalar(select(Member).where(Member.external_userid == target))
            destination = staff_of_member(member) if member else None
        if destination is None:
            return
        await enqueue_message(
            session=session,
            key=f"sop_fallback:{row.id}:{target}",
            destination=destination,
            message=OutMessage.from_json(row.payload["message"]),  # type: ignore[arg-type]
            now=now,
            title=str(row.payload.get("title") or "群发未送达的内容"),
        )
    except UndeliverableError:
        logger.warning("mass send %s over quota for %s: no staff to post it", row.key, target)


async def release_refused(*, session: AsyncSession) -> int:
    """Give back the slots of mass sends that never became a task (dead or cancelled)."""
    refused = select(OutboxMessage.key).where(
        OutboxMessage.channel.in_(MASS_CHANNELS),
        OutboxMessage.status.in_((OutboxStatus.DEAD, OutboxStatus.CANCELLED)),
    )
    return await quota.release_tasks(session=session, outbox_keys=refused)


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
    rule: Routing = DEFAULT_ROUTING,
) -> None:
    """One pass: track new tasks, record results (correcting the quota), remind owners of
    overdue ones."""
    async with sessions.begin() as session:
        await track_new(session=session, now=clock.now())
        await release_refused(session=session)
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
                if _apply(merged, found.get(result.target), now):
                    row = await session.get(OutboxMessage, merged.outbox_id)
                    if row is not None:
                        await _correct_quota(session, merged, row, rule, now)
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
    rule: Routing = DEFAULT_ROUTING,
) -> None:
    """Follow mass sends until `stop` is set; started by the app's lifespan."""
    await every(
        stop,
        interval,
        partial(sync_mass_sends, sessions=sessions, client=client, clock=clock, rule=rule),
        name="mass-send sync",
    )
