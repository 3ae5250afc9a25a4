"""The check-in scripts the scheduler fires as jobs (`schedules.jobs`): the reminder reaches
each person not checked in by their own channel with their own link, and the leaderboard
carries the day's ranks. Installed once at startup (main.py), with the URL H5 links use, together
with the variables check-ins lend every scheduled script (bots.checkin.context)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bots.checkin.context import install_context
from bots.checkin.reminders import post_leaderboards, send_checkin_reminders
from schedules.jobs import script_job

REMINDER_SCRIPT = "checkin_reminder"
LEADERBOARD_SCRIPT = "leaderboard"


def install_jobs(*, public_base_url: str) -> None:
    install_context(public_base_url=public_base_url)

    @script_job(REMINDER_SCRIPT)
    async def remind(session: AsyncSession, cohort_id: int, now: datetime) -> int:
        report = await send_checkin_reminders(
            session=session, cohort_id=cohort_id, now=now, public_base_url=public_base_url
        )
        return len(report.mentioned) + len(report.personal)

    @script_job(LEADERBOARD_SCRIPT)
    async def leaderboard(session: AsyncSession, cohort_id: int, now: datetime) -> int:
        return await post_leaderboards(session=session, cohort_id=cohort_id, now=now)
