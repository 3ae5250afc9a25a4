"""打卡与作业 in the console: a homework handed in on the student's page, with an image, is
reviewed from the queue (the image served to the reviewer, the score saved in place, audited
under the reviewer's name, told to the student); bad scores get the API's reasons; the
rules form; assistants review only their own cohorts; 今日 counts check-ins."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.models import AuditEntry
from app.clock import ManualClock
from app.console.models import Role
from app.models import OutboxMessage
from bots.checkin.models import CheckinEntry, CheckinRule
from tests.console.support import (
    Console,
    make_account,
    make_cohort,
    make_member,
    member_token,
)
from tests.images import png_bytes
from tests.support import AppHarness


async def _homework(
    app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock, cohort: int
) -> int:
    member = await make_member(sessions, clock, cohort, "小林", userid="xiaolin")
    token = await member_token(sessions, clock, member)
    handed_in = await app.client.post(
        f"/h5/m/{token}/checkin",
        data={"kind": "homework", "text": "选品表做好了"},
        files={"images": ("hw.png", png_bytes(), "image/png")},
    )
    assert handed_in.status_code == 303, handed_in.text
    async with sessions() as session:
        entry = await session.scalar(select(CheckinEntry.id))
        assert entry is not None
        return entry


async def test_a_homework_with_an_image_is_reviewed_from_the_queue(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    cohort = await make_cohort(sessions, clock, start="2026-02-28")
    await make_account(sessions, clock, "lisi", Role.ASSISTANT, cohort_ids=[cohort])
    entry = await _homework(console_app, sessions, clock, cohort)
    async with Console(console_app.app) as browser:
        await browser.sign_in("lisi")
        queue = await browser.get("/console/checkins")
        assert "小林 · 第 1 天作业" in queue.text
        assert "选品表做好了" in queue.text
        shown = await browser.get(f"/console/checkins/{entry}/images/0")
        assert shown.status_code == 200
        assert shown.content == png_bytes()
        bad = await browser.hx_post(f"/console/checkins/{entry}/review", {"score": "120"})
        assert bad.status_code == 422
        assert "不能大于 100" in bad.text
        saved = await browser.hx_post(
            f"/console/checkins/{entry}/review", {"score": "92", "comment": "思路清晰"}
        )
        assert saved.status_code == 200
        assert "92 分" in saved.text
        assert "已保存" in saved.text
        assert "小林" not in (await browser.get("/console/checkins")).text  # left the queue
        assert "92 分" in (await browser.get("/console/checkins?status=reviewed")).text
    async with sessions() as session:
        audit = await session.scalar(select(AuditEntry).where(AuditEntry.action == "review"))
        notice = await session.scalar(
            select(OutboxMessage).where(OutboxMessage.key.like("review:%"))
        )
    assert audit is not None
    assert audit.actor == "lisi"
    assert notice is not None
    assert "思路清晰" in str(notice.payload)


async def test_an_assistant_cannot_open_another_cohorts_submissions(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    mine = await make_cohort(sessions, clock, name="6 期", state="camp6")
    theirs = await make_cohort(sessions, clock, name="7 期", state="camp7", start="2026-02-28")
    await make_account(sessions, clock, "lisi", Role.ASSISTANT, cohort_ids=[mine])
    entry = await _homework(console_app, sessions, clock, theirs)
    async with Console(console_app.app) as browser:
        await browser.sign_in("lisi")
        assert "小林" not in (await browser.get("/console/checkins")).text
        assert (await browser.get(f"/console/checkins?cohort_id={theirs}")).status_code == 403
        image = await browser.get(f"/console/checkins/{entry}/images/0")
        assert image.status_code == 403
        review = await browser.hx_post(f"/console/checkins/{entry}/review", {"score": "90"})
        assert review.status_code == 403
        assert (await browser.get(f"/console/checkins/rules/{mine}")).status_code == 403


async def test_the_rules_form_saves_through_the_service(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    cohort = await make_cohort(sessions, clock)
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    form = {
        "day_boundary": "05:00",
        "makeup_days": "1",
        "makeup_cost": "5",
        "leave_limit": "2",
        "checkin_points": "10",
        "homework_points": "20",
        "full_attendance_points": "100",
    }
    async with Console(console_app.app) as browser:
        await browser.sign_in("xiaolu")
        bad = await browser.post(
            f"/console/checkins/rules/{cohort}", {**form, "milestones": "七天"}
        )
        assert bad.status_code == 422
        assert "应写成 天数:积分" in bad.text
        late = await browser.post(
            f"/console/checkins/rules/{cohort}", {**form, "day_boundary": "25:00"}
        )
        assert late.status_code == 422
        assert "时间格式应为 HH:MM" in late.text
        saved = await browser.post(
            f"/console/checkins/rules/{cohort}", {**form, "milestones": "3:20，7：50"}
        )
        assert saved.status_code == 303, saved.text
    async with sessions() as session:
        rule = await session.get(CheckinRule, cohort)
    assert rule is not None
    assert rule.milestones == {"3": 20, "7": 50}
    assert rule.makeup_days == 1


async def test_today_shows_check_ins_so_far_and_homework_waiting(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    cohort = await make_cohort(sessions, clock, start="2026-02-28")
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    await _homework(console_app, sessions, clock, cohort)
    other = await make_member(sessions, clock, cohort, "Amy")
    token = await member_token(sessions, clock, other)
    await console_app.client.post(f"/h5/m/{token}/checkin", data={"text": "打卡"})
    async with Console(console_app.app) as browser:
        await browser.sign_in("xiaolu")
        home = await browser.get("/console/")
    panel = home.text.split('id="panel-checkin"')[1]
    assert "第 1 天：今天已打卡 1/2（50.0%），昨天 0" in panel
    assert "1 份作业待批改" in panel
