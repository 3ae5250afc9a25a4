"""喜报 in the console: recorded for a student named by name, sent to the cohort's groups,
its progress polling until nothing is pending; a student's own report approved; an
unknown or ambiguous student is named beside the field."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import ManualClock
from app.console.models import Role
from bots.xibao.models import Achievement
from scripts_library.loader import seed_default_pack
from tests.console.support import (
    Console,
    make_account,
    make_cohort,
    make_member,
    make_robot_group,
    member_token,
    only_id,
)
from tests.support import AppHarness


async def _camp(sessions: async_sessionmaker[AsyncSession], clock: ManualClock) -> int:
    cohort = await make_cohort(sessions, clock)
    async with sessions.begin() as session:
        await seed_default_pack(session=session, now=clock.now())
    await make_robot_group(sessions, clock, cohort)
    return cohort


async def test_a_xibao_goes_to_the_cohorts_groups_and_its_progress_polls(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    cohort = await _camp(sessions, clock)
    await make_member(sessions, clock, cohort, "小林")
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    async with Console(console_app.app) as browser:
        await browser.sign_in("xiaolu")
        unknown = await browser.post("/console/xibao", {"member": "没这个人", "title": "出单啦"})
        assert unknown.status_code == 422
        assert 'id="member-error"' in unknown.text
        assert "没有找到学员「没这个人」" in unknown.text
        for odd in ("²", "9" * 5000):  # str.isdigit takes both; int() refused one, 500
            data = {"member": "没这个人", "title": "出单啦", "cohort_id": odd}
            assert (await browser.post("/console/xibao", data)).status_code == 422
        empty = await browser.post("/console/xibao", {"member": "小林", "title": " "})
        assert empty.status_code == 422
        assert 'id="title-error"' in empty.text
        sent = await browser.post(
            "/console/xibao", {"member": "小林", "title": "出单啦", "detail": "第一单 89 美元"}
        )
        assert sent.status_code == 303, sent.text
        page = await browser.get(sent.headers["location"])
        assert "发送中" in page.text
        assert 'hx-trigger="every 2s"' in page.text
        assert "6期1群" in page.text
        fragment = await browser.get(sent.headers["location"] + "/progress")
        assert fragment.text.lstrip().startswith('<div id="progress"')  # no layout around it


async def test_a_students_own_report_is_approved_from_the_console(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    cohort = await _camp(sessions, clock)
    member = await make_member(sessions, clock, cohort, "Amy")
    token = await member_token(sessions, clock, member)
    reported = await console_app.client.post(
        f"/h5/m/{token}/achievements", data={"title": "上岸了", "detail": "拿到 offer"}
    )
    assert reported.status_code == 303
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    async with Console(console_app.app) as browser:
        await browser.sign_in("xiaolu")
        assert "待审核的喜报" in (await browser.get("/console/")).text
        listing = await browser.get("/console/xibao")
        assert "上岸了" in listing.text
        achievement = await only_id(sessions, Achievement.id)
        approved = await browser.post(f"/console/xibao/{achievement}/approve")
        assert approved.status_code == 303
        again = await browser.post(f"/console/xibao/{achievement}/approve")
        assert again.status_code == 409
        assert "不会重复发送" in again.text
    async with sessions() as session:
        stored = await session.get(Achievement, achievement)
    assert stored is not None
    assert stored.approved_by == "xiaolu"
