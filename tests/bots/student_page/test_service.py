"""The personal page's content: the member's check-ins and today's task, rendered for them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bots.student_page import service
from tests.bots.checkin.camp import local, make_cohort, make_member

Sessions = async_sessionmaker[AsyncSession]


async def test_the_page_shows_the_days_task_rendered_for_the_member(sessions: Sessions) -> None:
    from scripts_library.loader import DEFAULT_PACK, import_pack

    async with sessions() as session:
        await import_pack(
            session=session, paths=[DEFAULT_PACK / "10_daily.yaml"], author="test", now=local(0)
        )
        cohort = await make_cohort(session)
        member = await make_member(session, cohort, "小林")
        page = await service.member_page(session=session, member_id=member.id, now=local(1, 9))
        assert page.today_task is not None
        # day1_todolist, with this cohort's camp, day, date and weekday (2026-03-03 is a Tuesday).
        assert page.today_task.startswith("☀️ 早上好！今天是跨境电商实战营第 1 天（3月3日 周二）")
        assert (page.member_name, page.leave_left, page.makeup_days) == ("小林", 2, (0,))
        before = await service.member_page(session=session, member_id=member.id, now=local(-1))
        assert before.today_task is None
        assert before.camp_day.day is None
