"""数据 in the console: the cohort's figures, chart, CSV and 活动参与率 through the stats
service; an assistant sees their own cohort's and no other's."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import ManualClock
from app.console.models import Role
from tests.console.support import Console, make_account, make_cohort, make_member, member_token
from tests.support import AppHarness


async def test_the_numbers_page_chart_csv_and_participation(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    mine = await make_cohort(sessions, clock, start="2026-02-28", state="camp6")
    theirs = await make_cohort(sessions, clock, name="7 期", state="camp7")
    first, _ = [
        await make_member(sessions, clock, mine, name, staff_userid="lisi")
        for name in ("小林", "Amy")
    ]
    token = await member_token(sessions, clock, first)
    checked_in = await console_app.client.post(f"/h5/m/{token}/checkin", data={"text": "打卡"})
    assert checked_in.status_code == 303, checked_in.text
    await make_account(
        sessions,
        clock,
        "lisi",
        Role.ASSISTANT,
        cohort_ids=[mine],
        wecom_userid="lisi",
        display_name="李助教",
    )
    async with Console(console_app.app) as browser:
        await browser.sign_in("lisi")
        page = await browser.get(f"/console/stats?cohort_id={mine}")
        assert page.status_code == 200
        days = page.text.split('id="days"')[1]
        assert "50.0%" in days  # day 1: 1 of 2
        assert f'hx-get="/console/stats/{mine}/slices"' in page.text
        slices = await browser.get(f"/console/stats/{mine}/slices")
        assert "李助教" in slices.text.split('id="by-assistant"')[1]
        shape = await browser.get(f"/console/stats/{mine}/shape")
        assert "连续打卡" in shape.text
        chart = await browser.get(f"/console/stats/{mine}/chart.svg")
        assert chart.headers["content-type"].startswith("image/svg+xml")
        csv = await browser.get(f"/console/stats/{mine}.csv")
        assert csv.content.startswith("\ufeff天,日期".encode())
        joined = await browser.get(f"/console/stats/{mine}/participation?day=1&kind=checkin")
        assert "第 1 天打卡" in joined.text
        for path in (
            f"/console/stats?cohort_id={theirs}",
            f"/console/stats/{theirs}.csv",
            f"/console/stats/{theirs}/chart.svg",
            f"/console/stats/{theirs}/slices",
            f"/console/stats/{theirs}/shape",
        ):
            assert (await browser.get(path)).status_code == 403, path
