"""Planning and firing: once per target, restarts and double firings harmless,
misfires recorded, a moved cohort re-planned without re-sending."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.models import Cohort
from app.clock import ManualClock
from app.db import create_engine, create_sessionmaker
from app.models import OutboxMessage
from schedules.calendar import calendar
from schedules.models import Firing, Schedule
from schedules.planner import plan_cohort, plan_schedule
from schedules.runner import fire_due
from tests.schedules.camp import DAY1_0800, START, TZ, camp


async def _outbox(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, str]]:
    async with sessions() as session:
        rows = (await session.execute(select(OutboxMessage).order_by(OutboxMessage.key))).scalars()
        return [(row.key, row.payload["message"]["content"]) for row in rows]  # type: ignore[index]


async def _firings(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, str, datetime]]:
    async with sessions() as session:
        rows = (await session.execute(select(Firing).order_by(Firing.id))).scalars()
        return [(f.occurrence, f.status, f.due_at) for f in rows]


async def test_day_n_fires_once_per_target(sessions, clock: ManualClock) -> None:
    await camp(sessions, clock)
    assert await _firings(sessions) == [("day1", "planned", DAY1_0800)]

    clock.set(DAY1_0800 - timedelta(seconds=1))
    assert (await fire_due(sessions=sessions, clock=clock, default_tz=TZ)).fired == 0
    clock.set(DAY1_0800 + timedelta(seconds=5))
    report = await fire_due(sessions=sessions, clock=clock, default_tz=TZ)
    assert (report.fired, report.enqueued) == (1, 2)
    assert await _outbox(sessions) == [
        ("schedule:1:robot:robot-1:20260303T000000Z", "6期1群的同学们早！今天是第 1 天。"),
        ("schedule:1:robot:robot-2:20260303T000000Z", "6期2群的同学们早！今天是第 1 天。"),
    ]
    # Later ticks, a restart: nothing more.
    clock.advance(timedelta(minutes=1))
    await fire_due(sessions=sessions, clock=clock, default_tz=TZ)
    assert len(await _outbox(sessions)) == 2


async def test_two_schedulers_firing_at_once_send_once(
    sessions, clock: ManualClock, engine
) -> None:
    await camp(sessions, clock)
    clock.set(DAY1_0800)
    # A second "process": its own engine and pool on the same database.
    other = create_engine(engine.url.render_as_string(hide_password=False))
    try:
        reports = await asyncio.gather(
            fire_due(sessions=sessions, clock=clock, default_tz=TZ),
            fire_due(sessions=create_sessionmaker(other), clock=clock, default_tz=TZ),
        )
    finally:
        await other.dispose()
    assert sum(r.fired for r in reports) == 1
    assert len(await _outbox(sessions)) == 2


async def test_misfire_within_grace_is_sent_late_beyond_is_recorded(
    sessions, clock: ManualClock
) -> None:
    await camp(sessions, clock)
    clock.set(DAY1_0800 + timedelta(minutes=9))  # the server was down for a while
    await fire_due(sessions=sessions, clock=clock, default_tz=TZ)
    assert len(await _outbox(sessions)) == 2


async def test_misfire_beyond_grace_is_missed_not_dropped(sessions, clock: ManualClock) -> None:
    await camp(sessions, clock)
    clock.set(DAY1_0800 + timedelta(hours=3))
    report = await fire_due(sessions=sessions, clock=clock, default_tz=TZ)
    assert (report.fired, report.missed) == (0, 1)
    assert await _outbox(sessions) == []
    async with sessions() as session:
        firing = (await session.execute(select(Firing))).scalar_one()
    assert firing.status == "missed"
    assert "错过" in (firing.note or "")


async def test_moving_the_start_replans_pending_and_never_resends(
    sessions, clock: ManualClock
) -> None:
    schedule_id = await camp(sessions, clock)
    async with sessions.begin() as session:
        session.add(
            Schedule(
                script_key="day1_tasks",
                cohort_id=1,
                target={"type": "cohort_groups"},
                trigger={"type": "cohort_day", "day": 2, "time": "08:00"},
                enabled=True,
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
        await session.flush()
        await plan_cohort(session=session, cohort_id=1, now=clock.now(), default_tz=TZ)
    clock.set(DAY1_0800)
    await fire_due(sessions=sessions, clock=clock, default_tz=TZ)  # day 1 goes out
    async with sessions.begin() as session:
        cohort = await session.get(Cohort, 1)
        assert cohort is not None
        cohort.start_date = START + timedelta(days=1)  # the camp slips a day
        await plan_cohort(session=session, cohort_id=1, now=clock.now(), default_tz=TZ)
    firings = await _firings(sessions)
    assert ("day1", "fired", DAY1_0800) in firings  # sent: untouched
    assert ("day2", "planned", DAY1_0800 + timedelta(days=2)) in firings  # moved a day later
    clock.set(DAY1_0800 + timedelta(days=1, minutes=1))  # the old day-2 time: nothing due
    assert (await fire_due(sessions=sessions, clock=clock, default_tz=TZ)).fired == 0
    assert schedule_id == 1
    assert len(await _outbox(sessions)) == 2


async def test_calendar_shows_what_goes_to_whom_when(sessions, clock: ManualClock) -> None:
    await camp(sessions, clock)
    clock.set(DAY1_0800 - timedelta(hours=10))
    async with sessions() as session:
        soon = await calendar(session=session, now=clock.now(), hours=12, default_tz=TZ)
        later = await calendar(session=session, now=clock.now(), hours=6, default_tz=TZ)
    assert later == []
    [entry] = soon
    assert entry.script_key == "day1_tasks"
    assert entry.local_time == "2026-03-03 08:00 (Asia/Shanghai)"
    assert entry.targets == ("robot:robot-1", "robot:robot-2")


async def test_a_schedule_created_after_its_time_is_not_a_missed_firing(
    sessions, clock: ManualClock
) -> None:
    clock.set(DAY1_0800 + timedelta(days=2))
    await camp(sessions, clock)
    assert await _firings(sessions) == []


async def test_disabling_cancels_pending_firings(sessions, clock: ManualClock) -> None:
    await camp(sessions, clock)
    async with sessions.begin() as session:
        schedule = await session.get(Schedule, 1)
        assert schedule is not None
        schedule.enabled = False
        await plan_schedule(session=session, schedule=schedule, now=clock.now(), default_tz=TZ)
    assert [status for _, status, _ in await _firings(sessions)] == ["cancelled"]
    clock.set(DAY1_0800)
    await fire_due(sessions=sessions, clock=clock, default_tz=TZ)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
