"""The student's check-in reminder in the sidebar says what the scheduled reminder says: the
same variables from the same code, on the student's cohort's clock and camp day (a cohort in
Los Angeles near midnight is not on Shanghai's date), the service's zone only for a student
of no cohort; pushed and shown, the same script, student and clock give the same text."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.clock import ManualClock
from app.models import OutboxMessage
from app.settings import QuotaMode, Settings
from app.wecom_sandbox.server import sandbox_transport
from app.wecom_sandbox.state import SandboxState
from bots.checkin import service as checkin
from bots.checkin.models import EntryKind
from scripts_library.loader import DEFAULT_PACK, import_pack
from scripts_library.models import Script
from scripts_library.service import update_script
from tests.bots.checkin.camp import T_START, make_cohort, make_member
from tests.bots.sop.camp import OWNER, extensions
from tests.bots.sop.test_sidebar_api import sign_in
from tests.support import AppHarness, running_app

SERVICE_TZ = "Pacific/Honolulu"  # the service's zone: neither the cohort's nor Shanghai's
COHORT_TZ = "America/Los_Angeles"
BODY = (
    "{{ student_name }}：{{ date }}{{ weekday }}，第 {{ day }} 天，连续 {{ streak }} 天，"
    "积分 {{ points }}，第 {{ rank }} 名。{{ assistant_name }} 提醒你：{{ h5_url }}"
)
UNDATED = "{{ student_name }}：{{ date }}{{ weekday }}，连续 {{ streak }} 天。"
# Day 0 is 2026-03-02 in Los Angeles (UTC-8 until 8 March).
LA_DAY1_2330 = datetime(2026, 3, 4, 7, 30, tzinfo=UTC)  # Shanghai: 3/4 15:30; Honolulu: 3/3
LA_DAY2_0430 = datetime(2026, 3, 4, 12, 30, tzinfo=UTC)  # Honolulu: 3/4 02:30, still 3/3
LA_DAY1_0130 = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)  # 3/4 01:30: before the 04:00 boundary


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"campbot_timezone": SERVICE_TZ})


@pytest.fixture
async def app(
    settings: Settings, clock: ManualClock, engine: AsyncEngine, sandbox: SandboxState
) -> AsyncIterator[AppHarness]:
    sandbox.add_user(OWNER)
    async with running_app(
        settings=settings, clock=clock, engine=engine, wecom_transport=sandbox_transport(sandbox)
    ) as running:
        yield running


async def _student(session: AsyncSession, *, in_cohort: bool) -> tuple[int, str]:
    """小林, followed by the owner, in a Los Angeles cohort (checked in on day 0) or in none."""
    cohort = await make_cohort(session) if in_cohort else None
    if cohort is not None:
        cohort.timezone = COHORT_TZ
    member = await make_member(session, cohort, "小林")
    member.staff_userid = OWNER
    if cohort is not None:
        await checkin.submit(
            session=session,
            member_id=member.id,
            kind=EntryKind.CHECKIN,
            text="打卡",
            images=(),
            now=datetime(2026, 3, 2, 20, 0, tzinfo=UTC),  # 12:00 on day 0 in Los Angeles
        )
    return (cohort.id if cohort else 0), str(member.external_userid)


async def _pack(session: AsyncSession) -> None:
    """The pack with a reminder that says every variable; no same-for-everyone reminder, so
    the pushed one to a student is their personal one (a 1:1 群SOP item)."""
    await import_pack(session=session, paths=[DEFAULT_PACK], author="test", now=T_START)
    await update_script(
        session=session, key="checkin_reminder", author="test", body=BODY, now=T_START
    )
    await session.execute(delete(Script).where(Script.key == "checkin_reminder_mass"))


async def _shown(app: AppHarness, external_userid: str) -> str:
    card = await app.client.get(f"/sidebar/api/students/{external_userid}")
    assert card.status_code == 200, card.text
    reminder = card.json()["reminder"]
    assert isinstance(reminder, str)
    return reminder


async def test_the_reminder_is_on_the_cohorts_clock_else_the_services(
    app: AppHarness, sandbox: SandboxState, clock: ManualClock, sessions
) -> None:
    async with sessions.begin() as session:
        _, student = await _student(session, in_cohort=True)
        await _pack(session)
    clock.set(LA_DAY1_2330)
    await sign_in(app, sandbox, clock, OWNER)
    # 23:30 on Tuesday 3 March in Los Angeles: Shanghai is already on Wednesday.
    late = await _shown(app, student)
    assert "3月3日周二，第 1 天，连续 1 天" in late
    # 04:30 on Wednesday in Los Angeles: day 2 there, while the service's zone is on Tuesday.
    clock.set(LA_DAY2_0430)
    assert "3月4日周三，第 2 天" in await _shown(app, student)

    # A student of no cohort has no camp day: the service's clock gives the date.
    async with sessions.begin() as session:
        _, homeless = await _student(session, in_cohort=False)
        await update_script(
            session=session, key="checkin_reminder", author="test", body=UNDATED, now=T_START
        )
    clock.set(LA_DAY1_2330)  # 21:30 on Tuesday in Honolulu
    assert await _shown(app, homeless) == "小林：3月3日周二，连续 0 天。"


async def test_the_sidebar_shows_the_reminder_the_schedule_pushes(
    app: AppHarness, sandbox: SandboxState, clock: ManualClock, sessions, settings: Settings
) -> None:
    async with sessions.begin() as session:
        cohort_id, student = await _student(session, in_cohort=True)
        await _pack(session)
    job = extensions(settings, QuotaMode.MONTH_DAYS).job_for("checkin_reminder", cohort_id)
    assert job is not None
    for now in (LA_DAY1_0130, LA_DAY1_2330):
        clock.set(now)
        async with sessions.begin() as session:
            await session.execute(delete(OutboxMessage))
            await job(session, cohort_id, now)
        async with sessions() as session:
            pushed = await session.scalar(
                select(OutboxMessage).where(
                    OutboxMessage.channel == "staff", OutboxMessage.target == student
                )
            )
        assert pushed is not None
        await sign_in(app, sandbox, clock, OWNER)
        shown = await _shown(app, student)
        assert shown == pushed.payload["message"]["content"]
        assert "3月3日周二，第 1 天" in shown  # before 04:00 it is still day 1 there
