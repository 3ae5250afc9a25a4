"""The 群发 quota (app.quota): windows on the camp's calendar in the three modes, slots spent
once per task and never twice across instances, corrected from WeCom's results."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import quota
from app.admin.outbox.service import get_outbox
from app.channels.deliver import ChannelDeliverer
from app.channels.mass_send import sync_mass_sends
from app.channels.messages import OutMessage
from app.channels.reach import Channel, Destination, enqueue_message
from app.channels.routing import Routing
from app.db import create_engine, create_sessionmaker
from app.models import MassSendQuotaSlot, OutboxMessage
from app.quota import QuotaMode
from app.sender import Sender
from app.wecom_sandbox.state import SandboxState
from tests.conftest import postgres_url

SHANGHAI = "Asia/Shanghai"
CHAT = "wrQuotaGroup"


async def _spend(
    sessions: async_sessionmaker[AsyncSession],
    key: str,
    *,
    at: datetime,
    mode: QuotaMode = QuotaMode.MONTH_DAYS,
    tz: str = SHANGHAI,
    target: str = CHAT,
) -> bool:
    async with sessions.begin() as session:
        return await quota.spend(
            session=session, target=target, mode=mode, tz=tz, now=at, outbox_key=key
        )


def test_windows_of_the_three_modes() -> None:
    assert quota.window_of(QuotaMode.MONTH_DAYS, date(2026, 2, 14)).limit == 28
    assert quota.window_of(QuotaMode.MONTH_DAYS, date(2026, 3, 31)).start == date(2026, 3, 1)
    week = quota.window_of(QuotaMode.WEEK_7, date(2026, 3, 5))  # a Thursday
    assert (week.start, week.end, week.limit) == (date(2026, 3, 2), date(2026, 3, 9), 7)
    day = quota.window_of(QuotaMode.DAY_1, date(2026, 3, 5))
    assert (day.start, day.end, day.limit) == (date(2026, 3, 5), date(2026, 3, 6), 1)


async def test_the_month_turns_on_the_camps_clock_not_utc(sessions) -> None:
    # 2026-03-31 23:00 in Shanghai: the 31 March slots are spent, the 32nd is refused.
    late_march = datetime(2026, 3, 31, 15, 0, tzinfo=UTC)
    assert all([await _spend(sessions, f"t{n}", at=late_march) for n in range(31)])
    assert not await _spend(sessions, "t31", at=late_march)
    # 90 minutes later it is 1 April in Shanghai — still 31 March in UTC.
    april = late_march + timedelta(minutes=90)
    assert april.date() == date(2026, 3, 31)
    assert await _spend(sessions, "t31", at=april)
    async with sessions() as session:
        left = await quota.quota_left(
            session=session, targets=[CHAT], mode=QuotaMode.MONTH_DAYS, tz=SHANGHAI, now=april
        )
    assert (left[CHAT].window.limit, left[CHAT].used, left[CHAT].left) == (30, 1, 29)


async def test_a_utc_camp_still_in_march_is_full(sessions) -> None:
    late_march = datetime(2026, 3, 31, 15, 0, tzinfo=UTC)
    for n in range(31):
        assert await _spend(sessions, f"t{n}", at=late_march, tz="UTC")
    assert not await _spend(sessions, "next", at=late_march + timedelta(minutes=90), tz="UTC")


async def test_one_a_day(sessions) -> None:
    morning = datetime(2026, 3, 5, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
    assert await _spend(sessions, "a", at=morning, mode=QuotaMode.DAY_1)
    assert not await _spend(sessions, "b", at=morning + timedelta(hours=10), mode=QuotaMode.DAY_1)
    assert await _spend(sessions, "b", at=morning + timedelta(hours=16), mode=QuotaMode.DAY_1)


async def test_seven_a_week_from_monday(sessions) -> None:
    thursday = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)
    for n in range(7):
        assert await _spend(sessions, f"w{n}", at=thursday, mode=QuotaMode.WEEK_7)
    sunday = thursday + timedelta(days=3)
    assert not await _spend(sessions, "w7", at=sunday, mode=QuotaMode.WEEK_7)
    assert await _spend(sessions, "w7", at=sunday + timedelta(days=1), mode=QuotaMode.WEEK_7)


async def test_a_task_spends_once_and_gets_its_slot_back(sessions) -> None:
    at = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)
    assert await _spend(sessions, "same", at=at, mode=QuotaMode.DAY_1)
    assert await _spend(sessions, "same", at=at, mode=QuotaMode.DAY_1)  # the same task again
    assert not await _spend(sessions, "other", at=at, mode=QuotaMode.DAY_1)
    async with sessions.begin() as session:
        assert await quota.release(session=session, outbox_key="same") == 1
    assert await _spend(sessions, "other", at=at, mode=QuotaMode.DAY_1)


@asynccontextmanager
async def two_instances() -> AsyncIterator[list[async_sessionmaker[AsyncSession]]]:
    """Two engines on the test PostgreSQL, as two instances have, over an empty quota table."""
    url = postgres_url()
    assert url is not None
    engines = [create_engine(url) for _ in range(2)]
    try:
        async with engines[0].begin() as conn:
            await conn.run_sync(MassSendQuotaSlot.__table__.drop, checkfirst=True)
            await conn.run_sync(MassSendQuotaSlot.__table__.create)
        yield [create_sessionmaker(e) for e in engines]
    finally:
        for engine in engines:
            await engine.dispose()


@pytest.mark.postgres
async def test_two_instances_on_postgresql_never_spend_one_slot_twice() -> None:
    async with two_instances() as makers:
        at = datetime(2026, 2, 10, 4, 0, tzinfo=UTC)  # February: 28 slots
        spends = [_spend(makers[n % 2], f"task{n}", at=at, target="wrRace") for n in range(40)]
        outcomes = await asyncio.gather(*spends)
        assert sum(outcomes) == 28
        async with makers[0]() as session:
            slots = list(
                await session.scalars(
                    select(MassSendQuotaSlot.n).where(MassSendQuotaSlot.target == "wrRace")
                )
            )
        assert sorted(slots) == list(range(1, 29))  # every slot once, none twice
        day = [
            _spend(makers[n % 2], f"day{n}", at=at, target="wrDay", mode=QuotaMode.DAY_1)
            for n in range(10)
        ]
        assert sum(await asyncio.gather(*day)) == 1


async def test_over_quota_from_wecom_is_shown_with_a_chinese_hint(
    sessions, clock, wecom_client, sandbox: SandboxState
) -> None:
    sandbox.add_customer_group(CHAT, owner="zhangsan", members=[])
    sandbox.msg_template_monthly_quota = 1
    sandbox.deliveries.clear()
    sender = Sender(sessions=sessions, deliver=ChannelDeliverer(wecom_client), clock=clock)
    for n in range(2):  # the first one spends WeCom's only slot, as a staff member's own would
        async with sessions.begin() as session:
            await enqueue_message(
                session=session,
                key=f"push:{n}",
                destination=Destination(Channel.CUSTOMER_GROUP, CHAT, sender="zhangsan"),
                message=OutMessage("text", content=f"第 {n} 条"),
                now=clock.now(),
            )
        await sender.run_once()
        msgid = sandbox.calls_to("externalcontact/add_msg_template")[-1].response["msgid"]
        sandbox.confirm_msg_template(msgid)
    rule = Routing(QuotaMode.MONTH_DAYS, SHANGHAI)
    await sync_mass_sends(sessions=sessions, client=wecom_client, clock=clock, rule=rule)

    async with sessions() as session:
        left = await quota.quota_left(
            session=session,
            targets=[CHAT],
            mode=QuotaMode.MONTH_DAYS,
            tz=SHANGHAI,
            now=clock.now(),
        )
        row_id = await session.scalar(
            select(OutboxMessage.id).where(OutboxMessage.key == "push:1")
        )
        fillers = await session.scalar(
            select(func.count()).where(MassSendQuotaSlot.source == quota.FULL)
        )
    assert left[CHAT].left == 0
    assert left[CHAT].full
    assert fillers == 31
    async with sessions() as session:
        view = await get_outbox(session=session, outbox_id=row_id)
    assert view.row.last_error is not None
    assert "群发次数已用完" in view.row.last_error
    assert view.hint is not None
    assert "群SOP" in view.hint


async def test_the_slots_of_a_send_wecom_refused_are_given_back(
    sessions, clock, wecom_client, sandbox: SandboxState
) -> None:
    # wrGone is not zhangsan's group: WeCom refuses the task and the row dies.
    sandbox.add_customer_group(CHAT, owner="zhangsan", members=[])
    at = clock.now()
    for key, target in (("push:refused", "wrGone"), ("push:kept", CHAT)):
        assert await _spend(sessions, key, at=at, target=target)
        async with sessions.begin() as session:
            await enqueue_message(
                session=session,
                key=key,
                destination=Destination(Channel.CUSTOMER_GROUP, target, sender="zhangsan"),
                message=OutMessage("text", content="今晚八点直播"),
                now=at,
            )
    await Sender(sessions=sessions, deliver=ChannelDeliverer(wecom_client), clock=clock).run_once()
    await sync_mass_sends(sessions=sessions, client=wecom_client, clock=clock)

    async with sessions() as session:
        statuses = dict(
            (await session.execute(select(OutboxMessage.key, OutboxMessage.status))).all()
        )
        slots = list(await session.scalars(select(MassSendQuotaSlot.outbox_key)))
    assert statuses == {"push:refused": "dead", "push:kept": "sent"}
    assert slots == ["push:kept"]
