"""The words the sidebar shows for a push's state — in a group's timetable and in a refusal to
post an item twice — are the console's (`app.console.labels`), with the one the sidebar has
always said in full: a dead row is 发送失败."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from app.clock import ManualClock
from app.models import OutboxMessage
from app.settings import QuotaMode, Settings
from app.wecom_sandbox.state import SandboxState
from schedules.runner import fire_due
from tests.bots.checkin.camp import local
from tests.bots.sop.camp import ASSISTANT, CHAT, TZ, add_schedule, customer_camp, extensions
from tests.bots.sop.test_sidebar_api import app, sign_in
from tests.support import AppHarness

__all__ = ["app"]  # the sidebar API's app fixture, shared

TIMES = ("08:00", "09:00", "10:00", "11:00", "12:00")


async def test_timetable_and_refusals_say_the_consoles_words(
    app: AppHarness, sandbox: SandboxState, clock: ManualClock, sessions, settings: Settings
) -> None:
    camp = await customer_camp(sessions)
    async with sessions.begin() as session:
        for at in TIMES:  # the day's tip five times on day 1: 群SOP items for the assistant
            await add_schedule(
                session, camp.cohort_id, "daily_tip", {"type": "cohort_day", "day": 1, "time": at}
            )
    wired = extensions(settings, QuotaMode.MONTH_DAYS)
    for hour in (8, 9, 10, 11):
        clock.set(local(1, hour) + timedelta(seconds=1))
        report = await fire_due(sessions=sessions, clock=clock, default_tz=TZ, extensions=wired)
        assert (report.failed, report.missed) == (0, 0)
    async with sessions.begin() as session:
        rows = list(
            await session.scalars(select(OutboxMessage).order_by(OutboxMessage.not_before))
        )
        assert [r.channel for r in rows] == ["staff"] * 4
        for row, status in zip(rows, ("sent", "dead"), strict=False):
            await session.execute(
                update(OutboxMessage).where(OutboxMessage.id == row.id).values(status=status)
            )
    clock.set(local(1, 11, 30))
    await sign_in(app, sandbox, clock, ASSISTANT)
    skipped = await app.client.post(f"/sidebar/api/tasks/{rows[2].id}/skip")
    assert skipped.status_code == 200, skipped.text

    card = (await app.client.get(f"/sidebar/api/groups/{CHAT}")).json()
    assert [(s["time"], s["how"], s["state"]) for s in card["timetable"]] == [
        ("08:00", "群SOP", "已发送"),
        ("09:00", "群SOP", "发送失败"),
        ("10:00", "群SOP", "已跳过"),
        ("11:00", "群SOP", "待员工发送"),
        ("12:00", "群SOP", "计划中"),
    ]
    for row, word in ((rows[2], "已跳过"), (rows[1], "发送失败")):
        again = await app.client.post(f"/sidebar/api/tasks/{row.id}/sent")
        assert (again.status_code, again.json()["detail"]) == (409, f"这条群SOP已是「{word}」。")
