"""Routing at firing time: the pack's rhythm in a customer group spends at most the quota in
群发 and goes out as 群SOP otherwise, each push exactly once; reminders to external students
are one merged 群发 per staff member and evening, never one per student."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.clock import ManualClock
from app.models import OutboxMessage
from app.settings import QuotaMode, Settings
from bots.checkin import service as checkin
from bots.checkin.models import EntryKind
from bots.sop import service
from bots.sop.notices import notify_due
from bots.stats.sop_figures import sop_out
from schedules.calendar import calendar
from schedules.models import Firing, Schedule
from schedules.runner import fire_due
from tests.bots.checkin.camp import local
from tests.bots.sop.camp import (
    CHAT,
    END,
    TZ,
    add_schedule,
    customer_camp,
    extensions,
    member,
    pack_timetable,
    planned_until,
)

MASS = "customer_group"
SHANGHAI = ZoneInfo(TZ)
DAY_0 = date(2026, 3, 2)  # the camp's 开营 day in Shanghai


async def _play_camp(
    sessions,
    clock: ManualClock,
    settings: Settings,
    mode: QuotaMode,
    *,
    extra: tuple[tuple[str, dict], ...] = (),
):
    """The pack's timetable (plus `extra` (script key, trigger) schedules) fired to END."""
    camp = await customer_camp(sessions)
    await pack_timetable(sessions, camp.cohort_id)
    async with sessions.begin() as session:
        for key, trigger in extra:
            await add_schedule(session, camp.cohort_id, key, trigger)
    wired = extensions(settings, mode)
    for due in await planned_until(sessions, END):
        clock.set(due + timedelta(seconds=1))
        report = await fire_due(sessions=sessions, clock=clock, default_tz=TZ, extensions=wired)
        assert (report.failed, report.missed) == (0, 0)
    async with sessions() as session:
        rows = list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        firings = list(await session.scalars(select(Firing).where(Firing.due_at <= END)))
    return camp, rows, firings


WORTHY = {"opening_ceremony", "closing_ceremony", "weekly_summary"}  # the pack's mass_send


async def _scripts_of(sessions) -> dict[int, str]:
    async with sessions() as session:
        return dict((await session.execute(select(Schedule.id, Schedule.script_key))).all())


@pytest.mark.parametrize("mode", [QuotaMode.MONTH_DAYS, QuotaMode.WEEK_7, QuotaMode.DAY_1])
async def test_the_packs_seven_day_rhythm_in_a_customer_group(
    sessions, clock: ManualClock, settings: Settings, mode: QuotaMode
) -> None:
    _, rows, firings = await _play_camp(sessions, clock, settings, mode)
    scripts = await _scripts_of(sessions)
    # Every firing reached the group exactly once: one row each, as a 群发 or as 群SOP.
    assert all(f.status == "fired" for f in firings)
    assert len(rows) == len({r.key for r in rows}) == sum(f.enqueued for f in firings)
    assert {(r.channel, r.target) for r in rows} <= {(MASS, CHAT), ("staff", CHAT)}
    mass = [r for r in rows if r.channel == MASS]
    sop = [r for r in rows if r.channel == "staff"]
    # Only what the pack marks worth a slot is a 群发 (开营, 结营, the weekly summary)…
    assert {scripts[int(r.key.split(":")[1])] for r in mass} <= WORTHY
    # …and never more than the quota: per window on the camp's calendar.
    worthy = [f for f in firings if f.enqueued and scripts[f.schedule_id] in WORTHY]
    if mode == QuotaMode.DAY_1:  # one a day: the first worthy push of each day
        days = Counter(r.created_at.astimezone(SHANGHAI).date() for r in mass)
        assert set(days) == {f.due_at.astimezone(SHANGHAI).date() for f in worthy}
        assert set(days.values()) == {1}
    else:  # a month's days and 7 a week both have room for all of them
        assert len(mass) == sum(f.enqueued for f in worthy)
    # Everything else — the daily rhythm — is 群SOP for the group's assistant.
    assert len(sop) == len(rows) - len(mass) >= 30
    assert {r.payload["sender"] for r in sop} == {"lisi"}
    assert {r.payload["chat"] for r in sop} == {"group"}
    assert {r.payload["sender"] for r in mass} == {"zhangsan"}  # the owner confirms a 群发
    titles = Counter(str(r.payload["title"]) for r in sop)
    tips = sum(f.enqueued for f in firings if scripts[f.schedule_id] == "daily_tip")
    assert (titles["第 1 天 今日任务"], titles["每日干货"]) == (1, tips)
    assert tips >= 8  # 12:30 every day of the camp


async def test_one_a_day_sends_the_second_worthy_push_of_a_day_to_sop(
    sessions, clock: ManualClock, settings: Settings
) -> None:
    # 开营 day: 开营仪式 at 20:00 spends the day's one slot, so a weekly summary at 21:00 the
    # same day is SOP. Day 7: 结营仪式 at 21:00 is the day's first worthy push: a 群发.
    late = {"type": "cohort_day", "day": 0, "time": "21:00"}
    _, rows, _ = await _play_camp(
        sessions, clock, settings, QuotaMode.DAY_1, extra=(("weekly_summary", late),)
    )
    scripts = await _scripts_of(sessions)
    opening_day = [
        (scripts[int(r.key.split(":")[1])], r.channel)
        for r in rows
        if r.key.startswith("schedule:") and r.created_at.astimezone(SHANGHAI).date() == DAY_0
    ]
    assert ("opening_ceremony", MASS) in opening_day
    assert ("weekly_summary", "staff") in opening_day
    by_script = {
        scripts[int(r.key.split(":")[1])]: r.channel for r in rows if r.key.startswith("schedule:")
    }
    assert by_script["closing_ceremony"] == MASS
    mass_days = Counter(
        r.created_at.astimezone(SHANGHAI).date() for r in rows if r.channel == MASS
    )
    assert set(mass_days.values()) == {1}


async def test_reminders_to_students_are_one_task_per_staff_member_per_round(
    sessions, clock: ManualClock, settings: Settings
) -> None:
    camp = await customer_camp(sessions, students=("小林", "Amy", "阿杰", "木子"))
    async with sessions.begin() as session:
        await checkin.submit(
            session=session,
            member_id=camp.students["小林"],
            kind=EntryKind.CHECKIN,
            text="打卡",
            images=(),
            now=local(1, 12),
        )
        for other in (camp.students["Amy"], camp.students["木子"]):
            (await member(session, other)).staff_userid = "lisi"
    wired = extensions(settings, QuotaMode.MONTH_DAYS)
    job = wired.job_for("checkin_reminder", camp.cohort_id)
    assert job is not None
    for day in (1, 2):
        async with sessions.begin() as session:
            await job(session, camp.cohort_id, local(day, 21))
    async with sessions() as session:
        rows = list(
            await session.scalars(
                select(OutboxMessage).where(OutboxMessage.key.like("checkin_reminder:%"))
            )
        )
    tasks = [r for r in rows if r.channel == "customer_single"]
    # Two staff members × two evenings: four tasks for seven reminders, none per student.
    assert sorted((r.target, len(r.payload["external_userids"])) for r in tasks) == [
        ("lisi", 2),
        ("lisi", 2),
        ("zhangsan", 1),  # day 1: 小林 checked in, 阿杰 did not
        ("zhangsan", 2),
    ]
    assert len({str(r.payload["message"]) for r in tasks}) == 1  # the same text for all
    assert [r for r in rows if r.channel == "staff"] == []


async def test_the_calendar_shows_each_decision_and_the_quota_left(
    sessions, clock: ManualClock, settings: Settings
) -> None:
    camp = await customer_camp(sessions)
    await pack_timetable(sessions, camp.cohort_id)
    wired = extensions(settings, QuotaMode.DAY_1)
    clock.set(local(0, 0))
    async with sessions() as session:
        entries = await calendar(
            session=session, now=clock.now(), hours=24, default_tz=TZ, extensions=wired
        )
    by_key = {e.script_key: e for e in entries}
    rules, opening = by_key["group_rules"], by_key["opening_ceremony"]
    assert (rules.channels, rules.quota_left) == (("群SOP",), {CHAT: 1})
    assert (opening.channels, opening.quota_left) == (("群发",), {CHAT: 0})
    assert by_key["leaderboard"].channels == ("群SOP",)


async def test_the_stats_show_sop_completion_per_staff_member(
    sessions, clock: ManualClock, settings: Settings
) -> None:
    camp, rows, _ = await _play_camp(sessions, clock, settings, QuotaMode.MONTH_DAYS)
    sop = [r for r in rows if r.channel == "staff"]
    async with sessions.begin() as session:
        await notify_due(session=session, now=clock.now())
        for row in sop[:3]:
            await service.record_sent(session=session, item_id=row.id, by="lisi", now=clock.now())
        await service.skip(session=session, item_id=sop[3].id, by="lisi", now=clock.now())
        figures = sop_out(
            await service.completion_by_staff(session=session, cohort_id=camp.cohort_id)
        )
    [lisi] = figures
    assert (lisi.staff_userid, lisi.late, lisi.skipped, lisi.on_time) == ("lisi", 3, 1, 0)
    assert lisi.open == len(sop) - 4
    assert lisi.on_time_rate == 0
