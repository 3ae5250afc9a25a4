"""Check-in rules on both backends: camp days and the 04:00 boundary, same-day edits, 补卡,
请假, streaks, milestones, 全勤, ranks and who has not checked in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import MemberStatus
from bots.checkin import service
from bots.checkin.models import CheckinEntry, EntryKind, EntryStatus
from bots.checkin.service import CheckinError, SubmitResult
from tests.bots.checkin.camp import local, make_cohort, make_member

Sessions = async_sessionmaker[AsyncSession]
CHECKIN, HOMEWORK = EntryKind.CHECKIN, EntryKind.HOMEWORK
MILESTONES = {"3": 20, "7": 50}


async def _checkin(
    session: AsyncSession,
    member_id: int,
    when: datetime,
    *,
    kind: EntryKind = CHECKIN,
    text: str = "今天读完第三章",
    images: Sequence[str] = (),
    day: int | None = None,
) -> SubmitResult:
    return await service.submit(
        session=session,
        member_id=member_id,
        kind=kind,
        text=text,
        images=images,
        now=when,
        day=day,
    )


async def test_the_day_turns_at_four_in_the_cohort_time_zone(sessions: Sessions) -> None:
    async with sessions() as session:
        cohort = await make_cohort(session)
        # The clock is UTC; the cohort lives in Shanghai (UTC+8).
        before = await service.camp_day(session=session, cohort_id=cohort.id, now=local(1, 3, 59))
        at = await service.camp_day(session=session, cohort_id=cohort.id, now=local(1, 4, 0))
        assert (before.day, at.day) == (0, 1)
        assert at.date is not None
        assert at.date.isoformat() == "2026-03-03"
        early = await service.camp_day(session=session, cohort_id=cohort.id, now=local(0, 3, 59))
        late = await service.camp_day(session=session, cohort_id=cohort.id, now=local(8, 4, 0))
        last = await service.camp_day(session=session, cohort_id=cohort.id, now=local(8, 3, 59))
        assert (early.day, early.date, late.day, last.day) == (None, None, None, 7)
        assert at.total_days == 7

        member = await make_member(session, cohort, "小林")
        result = await _checkin(session, member.id, local(2, 1, 30))  # 01:30 → still day 1
        assert result.entry.day == 1
        assert result.entry.status == EntryStatus.ON_TIME


async def test_the_day_boundary_is_a_cohort_rule(sessions: Sessions) -> None:
    from datetime import time

    async with sessions() as session:
        cohort = await make_cohort(session, day_boundary=time(0, 0))
        day = await service.camp_day(session=session, cohort_id=cohort.id, now=local(2, 1, 30))
        assert day.day == 2


async def test_a_scripted_week_matches_hand_computed_streaks_and_points(
    sessions: Sessions,
) -> None:
    async with sessions() as session:
        cohort = await make_cohort(session, milestones=MILESTONES)
        member = await make_member(session, cohort, "小林")
        m = member.id

        # Day 1: check-in 10 + homework 20 = 30; streak 1.
        r = await _checkin(session, m, local(1, 20))
        r = await _checkin(session, m, local(1, 21), kind=HOMEWORK, text="作业：目标是出单")
        assert (r.standing.points, r.standing.streak) == (30, 1)
        # Day 2: +10 = 40; streak 2.
        r = await _checkin(session, m, local(2, 9))
        assert (r.standing.points, r.standing.streak) == (40, 2)
        # Day 3: +10 and streak 3 reaches milestone "3" (+20) = 70; resubmitting edits (no +10).
        r = await _checkin(session, m, local(3, 9))
        assert r.milestone_bonus == 20
        r = await _checkin(session, m, local(3, 22), text="补充：读书笔记")
        assert r.created is False
        assert r.milestone_bonus == 0
        assert (r.standing.points, r.standing.streak) == (70, 3)
        # Day 4: 请假 — 0 points, the streak pauses at 3.
        r = await service.take_leave(session=session, member_id=m, now=local(4, 10))
        assert r.entry.status == EntryStatus.LEAVE
        assert (r.standing.points, r.standing.streak) == (70, 3)
        # Day 5, checked in at 01:30 of the next calendar day (before 04:00): +10 = 80,
        # streak 4 (days 1, 2, 3, [leave], 5).
        r = await _checkin(session, m, local(6, 1, 30))
        assert r.entry.day == 5
        assert (r.standing.points, r.standing.streak) == (80, 4)
        # Day 6 at noon, nothing yet: the streak still counts through yesterday.
        page = await service.member_page(session=session, member_id=m, now=local(6, 12))
        assert page.camp_day.day == 6
        assert page.standing.streak == 4
        # Day 7: day 6 was missed, so the streak restarts at 1; +10 = 90; best so far 4.
        page = await service.member_page(session=session, member_id=m, now=local(7, 9))
        assert page.standing.streak == 0
        assert page.makeup_days == (6,)
        r = await _checkin(session, m, local(7, 10))
        assert (r.standing.points, r.standing.streak, r.standing.best_streak) == (90, 1, 4)
        # 补卡 day 6: 10 - 5 = +5 = 95; days 1–3, [leave 4], 5, 6, 7 → streak 6 (no "7" bonus).
        r = await _checkin(session, m, local(7, 11), day=6)
        assert r.entry.status == EntryStatus.MAKEUP
        assert r.entry.points == 5
        assert (r.standing.points, r.standing.streak, r.standing.best_streak) == (95, 6, 6)
        # No 全勤: day 4 was a leave, not attendance. Sum: 10+20+10+10+0+10+10+5 + 20 = 95.
        assert (r.standing.checked_days, r.standing.homework_days) == (6, 1)
        page = await service.member_page(session=session, member_id=m, now=local(8, 12))
        assert page.camp_day.day is None
        assert page.standing.points == 95
        assert page.history == {
            1: EntryStatus.ON_TIME,
            2: EntryStatus.ON_TIME,
            3: EntryStatus.ON_TIME,
            4: EntryStatus.LEAVE,
            5: EntryStatus.ON_TIME,
            6: EntryStatus.MAKEUP,
            7: EntryStatus.ON_TIME,
        }
        assert page.standing.streak == 6  # the camp is over; day 7 was done
        assert page.leave_left == 1


async def test_same_day_resubmission_edits_one_row(sessions: Sessions) -> None:
    async with sessions() as session:
        cohort = await make_cohort(session)
        member = await make_member(session, cohort, "小林")
        first = await _checkin(session, member.id, local(1, 9), images=["a.jpg"])
        again = await _checkin(session, member.id, local(1, 23), text="改一下", images=["b.jpg"])
        assert first.created is True
        assert again.created is False
        assert again.entry.text == "改一下"
        assert again.entry.images == ("b.jpg",)
        assert again.standing.points == 10
        rows = await session.scalar(select(func.count()).select_from(CheckinEntry))
        assert rows == 1


async def test_refused_submissions_say_why_in_chinese(sessions: Sessions) -> None:
    async with sessions() as session:
        cohort = await make_cohort(session)
        member = await make_member(session, cohort, "小林")
        with pytest.raises(CheckinError, match="请写点内容"):
            await _checkin(session, member.id, local(1), text="  ")
        with pytest.raises(CheckinError, match="最多上传 9 张"):
            await _checkin(session, member.id, local(1), images=[f"{i}.jpg" for i in range(10)])
        with pytest.raises(CheckinError, match="开营后再来"):
            await _checkin(session, member.id, local(-1))
        with pytest.raises(CheckinError, match="已经结束"):
            await _checkin(session, member.id, local(8, 12))
        outsider = await make_member(session, None, "路人")
        with pytest.raises(CheckinError, match="还没有加入训练营"):
            await _checkin(session, outsider.id, local(1))
        assert await session.scalar(select(func.count()).select_from(CheckinEntry)) == 0


async def test_makeup_inside_and_outside_the_window(sessions: Sessions) -> None:
    async with sessions() as session:
        cohort = await make_cohort(session, makeup_days=2, makeup_cost=5)
        member = await make_member(session, cohort, "小林")
        now = local(5, 12)
        page = await service.member_page(session=session, member_id=member.id, now=now)
        assert page.makeup_days == (3, 4)
        r = await _checkin(session, member.id, now, day=3)
        assert (r.entry.status, r.entry.points, r.created) == (EntryStatus.MAKEUP, 5, True)
        r = await _checkin(session, member.id, now, day=4, kind=HOMEWORK)
        assert (r.entry.status, r.entry.points) == (EntryStatus.MAKEUP, 20)
        with pytest.raises(CheckinError, match=r"只能补最近 2 天的卡（现在可补第 3–4 天）"):
            await _checkin(session, member.id, now, day=2)
        with pytest.raises(CheckinError, match="还没到"):
            await _checkin(session, member.id, now, day=6)
        with pytest.raises(CheckinError, match="不在本期训练营里"):
            await _checkin(session, member.id, now, day=-1)
        # The last day may still be made up after the camp ended, within the window.
        r = await _checkin(session, member.id, local(8, 12), day=7)
        assert r.entry.status == EntryStatus.MAKEUP


async def test_no_makeup_when_the_window_is_zero_and_cost_never_goes_negative(
    sessions: Sessions,
) -> None:
    async with sessions() as session:
        closed = await make_cohort(session, state="closed", makeup_days=0)
        a = await make_member(session, closed, "甲")
        with pytest.raises(CheckinError, match="不支持补卡"):
            await _checkin(session, a.id, local(3), day=2)
        dear = await make_cohort(session, state="dear", makeup_cost=50)
        b = await make_member(session, dear, "乙")
        r = await _checkin(session, b.id, local(3), day=2)
        assert r.entry.points == 0


async def test_leave_pauses_the_streak_and_is_limited(sessions: Sessions) -> None:
    async with sessions() as session:
        cohort = await make_cohort(session, leave_limit=2)
        member = await make_member(session, cohort, "小林")
        m = member.id
        await _checkin(session, m, local(1))
        await service.take_leave(session=session, member_id=m, now=local(2))
        again = await service.take_leave(session=session, member_id=m, now=local(2, 21))
        assert again.created is False
        r = await _checkin(session, m, local(3))
        assert r.standing.streak == 2
        with pytest.raises(CheckinError, match="已经打过卡"):
            await service.take_leave(session=session, member_id=m, now=local(3, 22))
        await service.take_leave(session=session, member_id=m, now=local(4))
        with pytest.raises(CheckinError, match="最多请假 2 天"):
            await service.take_leave(session=session, member_id=m, now=local(5))
        # A check-in later on a leave day replaces the leave (and frees it).
        r = await _checkin(session, m, local(4, 23))
        assert r.created
        assert r.entry.status == EntryStatus.ON_TIME
        page = await service.member_page(session=session, member_id=m, now=local(5))
        assert page.leave_left == 1
        assert page.standing.streak == 3


async def test_a_milestone_pays_once_and_full_attendance_at_the_end(sessions: Sessions) -> None:
    async with sessions() as session:
        cohort = await make_cohort(session, milestones=MILESTONES, full_attendance_points=100)
        once = await make_member(session, cohort, "甲")
        full = await make_member(session, cohort, "乙")
        # 甲: days 1–3 (streak 3: +20), misses 4, days 5–7 (streak 3 again: no second +20).
        for day in (1, 2, 3, 5, 6, 7):
            r = await _checkin(session, once.id, local(day))
        assert r.standing.points == 6 * 10 + 20
        # 乙: days 1–7 → 70 + "3" 20 + "7" 50 + 全勤 100 = 240 (day 0 is not required).
        for day in range(1, 8):
            r = await _checkin(session, full.id, local(day))
        assert r.milestone_bonus == 50
        assert r.standing.points == 240
        assert r.standing.best_streak == 7
        # Editing the last day changes nothing.
        r = await _checkin(session, full.id, local(7, 23), text="再改一次")
        assert r.standing.points == 240


async def test_ranks_share_ties_and_the_leaderboard_orders_by_points(sessions: Sessions) -> None:
    async with sessions() as session:
        cohort = await make_cohort(session)
        a, b, c = [await make_member(session, cohort, n) for n in ("甲", "乙", "丙")]
        for member in (a, b):
            await _checkin(session, member.id, local(1))
            await _checkin(session, member.id, local(1), kind=HOMEWORK)
        r = await _checkin(session, c.id, local(1))
        assert (r.standing.rank, r.standing.cohort_size) == (3, 3)
        board = await service.leaderboard(session=session, cohort_id=cohort.id)
        assert [(row.rank, row.name, row.points) for row in board] == [
            (1, "甲", 30),
            (1, "乙", 30),
            (3, "丙", 10),
        ]
        top = await service.leaderboard(session=session, cohort_id=cohort.id, limit=1)
        assert [row.member_id for row in top] == [a.id]
        # Streaks as of a given moment: on day 3 every day-1 streak is broken.
        later = await service.leaderboard(session=session, cohort_id=cohort.id, now=local(3))
        assert [row.streak for row in later] == [0, 0, 0]


async def test_not_checked_in_lists_active_members_without_checkin_or_leave(
    sessions: Sessions,
) -> None:
    async with sessions() as session:
        cohort = await make_cohort(session)
        done = await make_member(session, cohort, "甲")
        away = await make_member(session, cohort, "乙")
        todo = await make_member(session, cohort, "丙")
        await make_member(session, cohort, "丁", status=MemberStatus.LOST)
        await _checkin(session, done.id, local(2))
        await _checkin(session, away.id, local(1))  # yesterday's does not count today
        await service.take_leave(session=session, member_id=away.id, now=local(2))
        now = local(2, 21)
        assert await service.not_checked_in(session=session, cohort_id=cohort.id, now=now) == [
            todo.id
        ]
        before = local(-1)
        assert await service.not_checked_in(session=session, cohort_id=cohort.id, now=before) == []
        assert await service.member_cohort(session=session, member_id=todo.id) == cohort.id
