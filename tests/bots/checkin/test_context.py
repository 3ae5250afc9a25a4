"""Scheduled pack scripts see what check-ins know: a member's assistant, streak, points and
personal link; a group's counts and leaderboard (bots.checkin.jobs via schedules.context)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import ManualClock
from schedules.runner import fire_due
from scripts_library.loader import DEFAULT_PACK, import_pack
from tests.bots.checkin.camp import T_START
from tests.bots.checkin.test_jobs import _schedule
from tests.bots.checkin.test_reminders import DAY1_2100, EXTENSIONS, TZ, _rows, _seed

Sessions = async_sessionmaker[AsyncSession]


async def test_pack_scripts_render_with_check_in_variables(
    sessions: Sessions, clock: ManualClock
) -> None:
    camp = await _seed(sessions)
    async with sessions.begin() as session:
        await import_pack(session=session, paths=[DEFAULT_PACK], author="test", now=T_START)
    # A personal touch (assistant_name) to everyone, the closing words (checkin_count) to groups.
    await _schedule(sessions, camp.cohort_id, "touch_day1", {"type": "members", "filter": "all"})
    await _schedule(sessions, camp.cohort_id, "closing_ceremony", {"type": "cohort_groups"})
    clock.set(DAY1_2100 + timedelta(seconds=5))

    report = await fire_due(sessions=sessions, clock=clock, default_tz=TZ, extensions=EXTENSIONS)

    assert (report.fired, report.failed, report.missed) == (2, 0, 0)
    rows = await _rows(sessions)
    # A personal touch is a 1:1 群SOP item for the student's staff member, not a 群发 task.
    touches = {r.target: str(r.payload) for r in rows if r.channel == "staff"}
    assert not [r for r in rows if r.channel == "customer_single"]
    # 小林 and 阿杰 are followed by 张老师 (zhangsan has a member row with that name).
    assert "我是张老师" in touches["wm小林1"]
    assert "我是助教老师" in touches["wmAmy1"]  # lisi has no name on record
    closing = [str(r.payload) for r in rows if ":robot:" in r.key]
    # Day 1: 小林 and 赵六 checked in (the seed), so the closing words say 2.
    assert len(closing) == 1
    assert "今天还有 2 位同学" in closing[0]
