"""A 群SOP item's life: its staff member told once (items due together in one message),
reminded once, escalated to the cohort's operators when overdue; posted once however often
tapped, or skipped; the completion figure per staff member."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.admin.errors import Conflict
from app.channels.messages import OutMessage
from app.channels.reach import Channel, Destination, enqueue_message
from app.clock import ManualClock
from app.models import OutboxMessage
from bots.sop import service
from tests.bots.checkin.camp import local
from tests.bots.sop.camp import ASSISTANT, CHAT, OWNER, customer_camp


async def _item(sessions, key: str, title: str, due) -> int:
    async with sessions.begin() as session:
        row_id = await enqueue_message(
            session=session,
            key=key,
            destination=Destination(Channel.STAFF, CHAT, sender=ASSISTANT, chat="group"),
            message=OutMessage("text", content=f"{title}的内容"),
            now=due - timedelta(hours=1),
            not_before=due,
            title=title,
        )
        assert row_id is not None
        return row_id


async def _told(sessions) -> list[OutboxMessage]:
    async with sessions() as session:
        rows = await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.channel == "app_message")
            .order_by(OutboxMessage.id)
        )
        return list(rows)


async def test_told_together_reminded_once_escalated_once(sessions, clock: ManualClock) -> None:
    camp = await customer_camp(sessions)
    async with sessions.begin() as session:
        await service.put_settings(
            session=session,
            cohort_id=camp.cohort_id,
            now=clock.now(),
            remind_after_minutes=None,
            escalate_after_minutes=None,
            operator_userids=["boss"],
        )
    at8 = local(1, 8)
    first = await _item(sessions, "a", "第 1 天 今日任务", at8)
    second = await _item(sessions, "b", "每日干货", at8)
    clock.set(at8 - timedelta(minutes=1))
    assert await service.sop_round(sessions=sessions, clock=clock) == 0  # not due yet

    clock.set(at8 + timedelta(seconds=3))
    await service.sop_round(sessions=sessions, clock=clock)
    await service.sop_round(sessions=sessions, clock=clock)  # another instance's round
    [notice] = await _told(sessions)
    assert notice.target == ASSISTANT  # the assistant runs the group, not the owner
    text = str(notice.payload["message"]["content"])  # type: ignore[index]
    assert "有 2 条内容待你发送" in text
    assert "6期学员群 · 第 1 天 今日任务（08:00）" in text
    assert "聊天工具栏" in text

    async with sessions.begin() as session:
        done = await service.record_sent(session=session, item_id=first, by=ASSISTANT, now=at8)
    assert done.recorded
    clock.set(at8 + timedelta(minutes=16))
    await service.sop_round(sessions=sessions, clock=clock)
    reminder = (await _told(sessions))[-1]
    assert reminder.target == ASSISTANT
    assert "还有 1 条没有发送" in str(reminder.payload)
    clock.set(at8 + timedelta(minutes=31))
    await service.sop_round(sessions=sessions, clock=clock)
    await service.sop_round(sessions=sessions, clock=clock)
    told = await _told(sessions)
    assert [r.target for r in told] == [ASSISTANT, ASSISTANT, "boss"]
    assert "超时未发送" in str(told[-1].payload)
    assert "每日干货" in str(told[-1].payload)

    async with sessions.begin() as session:
        late = await service.record_sent(
            session=session, item_id=second, by=ASSISTANT, now=clock.now()
        )
        figures = await service.completion_by_staff(session=session, cohort_id=camp.cohort_id)
    assert late.recorded
    [figure] = figures
    assert (figure.staff_userid, figure.on_time, figure.late, figure.open) == (ASSISTANT, 1, 1, 0)


async def test_a_double_tap_records_once_and_a_skip_is_counted(
    sessions, clock: ManualClock
) -> None:
    camp = await customer_camp(sessions)
    due = local(2, 12, 30)
    item = await _item(sessions, "c", "每日干货", due)
    other = await _item(sessions, "d", "上课提醒", due)
    async with sessions.begin() as session:
        with pytest.raises(Conflict):  # not due yet: nothing to post
            await service.record_sent(
                session=session, item_id=item, by=ASSISTANT, now=due - timedelta(minutes=5)
            )
    taps = []
    for n in range(2):
        async with sessions.begin() as session:
            taps.append(
                await service.record_sent(
                    session=session, item_id=item, by=ASSISTANT, now=due + timedelta(seconds=n)
                )
            )
    assert [t.recorded for t in taps] == [True, False]
    assert taps[0].item.done_at == taps[1].item.done_at == due
    async with sessions.begin() as session:
        await service.skip(session=session, item_id=other, by=OWNER, now=due)
        with pytest.raises(Conflict):
            await service.record_sent(session=session, item_id=other, by=ASSISTANT, now=due)
        figures = await service.completion_by_staff(session=session, cohort_id=camp.cohort_id)
        rows = {r.id: r.status for r in await session.scalars(select(OutboxMessage))}
    assert rows == {item: "sent", other: "skipped"}
    assert [(f.on_time, f.late, f.skipped) for f in figures] == [(1, 0, 1)]


async def test_my_items_are_the_staff_members_own_oldest_first_and_bounded(
    sessions, clock: ManualClock
) -> None:
    await customer_camp(sessions)
    due = local(1, 9)
    mine = [
        await _item(sessions, f"m{n}", f"第 {n} 条", due + timedelta(minutes=n)) for n in range(3)
    ]
    async with sessions.begin() as session:
        await enqueue_message(  # someone else's item in the same chat
            session=session,
            key="other",
            destination=Destination(Channel.STAFF, CHAT, sender=OWNER, chat="group"),
            message=OutMessage("text", content="群主的"),
            now=due,
            not_before=due,
            title="群主的",
        )
    async with sessions() as session:
        now = due + timedelta(hours=1)
        every = await service.my_items(session=session, staff_userid=ASSISTANT, now=now)
        two = await service.my_items(session=session, staff_userid=ASSISTANT, now=now, limit=2)
    assert [i.id for i in every] == mine
    assert [i.id for i in two] == mine[:2]
