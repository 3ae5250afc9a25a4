"""Planning: turning a schedule into firing rows, and re-planning when things move.

Re-planning is safe to repeat: a pending firing keeps its row and gets its new
due time; a firing that already went out (or was missed) is never touched, so
moving a cohort's start date never re-sends a day that already happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.cohorts.service import CohortChange
from app.admin.models import Cohort, CohortMember
from app.settings import Settings
from schedules import wake
from schedules.models import Firing, FiringStatus, Schedule
from schedules.triggers import At, CohortDay, Cron, MemberDay, TriggerError, parse_trigger

# Cron firings are planned this far ahead; a periodic re-plan extends the window.
CRON_HORIZON = timedelta(days=14)
# A new occurrence already this far in the past is not planned: the schedule was created
# (or the member joined) after its time, which is no missed firing.
STALE = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Wanted:
    due_at: datetime
    member_id: int | None = None


def cohort_zone(cohort: Cohort | None, default_tz: str) -> ZoneInfo:
    """The clock a schedule keeps: its cohort's, else the default."""
    return ZoneInfo(cohort.timezone if cohort else default_tz)


async def schedule_timezone(
    *, session: AsyncSession, schedule: Schedule, default_tz: str
) -> tuple[ZoneInfo, Cohort | None]:
    cohort = await session.get(Cohort, schedule.cohort_id) if schedule.cohort_id else None
    return cohort_zone(cohort, default_tz), cohort


async def _wanted(
    session: AsyncSession, schedule: Schedule, *, default_tz: str, now: datetime
) -> dict[str, Wanted]:
    tz, cohort = await schedule_timezone(session=session, schedule=schedule, default_tz=default_tz)
    trigger = parse_trigger(schedule.trigger, tz=tz)
    if isinstance(trigger, CohortDay):
        if cohort is None:
            raise TriggerError("cohort_day 触发需要指定 cohort_id")
        return {
            o.name: Wanted(o.due_at)
            for o in trigger.occurrences(start_date=cohort.start_date, tz=tz)
        }
    if isinstance(trigger, MemberDay):
        if cohort is None:
            raise TriggerError("member_day 触发需要指定 cohort_id")
        rows = await session.execute(
            select(CohortMember.member_id, CohortMember.joined_at).where(
                CohortMember.cohort_id == cohort.id
            )
        )
        return {
            f"member{member_id}": Wanted(trigger.due_for(joined_at=joined, tz=tz), member_id)
            for member_id, joined in rows.all()
        }
    if isinstance(trigger, Cron):
        return {
            o.name: Wanted(o.due_at)
            for o in trigger.occurrences(tz=tz, start=now - STALE, end=now + CRON_HORIZON)
        }
    assert isinstance(trigger, At)
    return {o.name: Wanted(o.due_at) for o in trigger.occurrences()}


async def plan_schedule(
    *, session: AsyncSession, schedule: Schedule, now: datetime, default_tz: str
) -> None:
    """Bring the schedule's planned firings in line with its trigger, target and cohort."""
    wanted = (
        await _wanted(session, schedule, default_tz=default_tz, now=now)
        if schedule.enabled
        else {}
    )
    existing = {
        f.occurrence: f
        for f in (
            await session.execute(select(Firing).where(Firing.schedule_id == schedule.id))
        ).scalars()
    }
    for name, want in wanted.items():
        firing = existing.get(name)
        if firing is None:
            if want.due_at >= now - STALE:
                session.add(
                    Firing(
                        schedule_id=schedule.id,
                        occurrence=name,
                        member_id=want.member_id,
                        due_at=want.due_at,
                        status=FiringStatus.PLANNED,
                        enqueued=0,
                    )
                )
        elif firing.status in (FiringStatus.PLANNED, FiringStatus.CANCELLED):
            firing.due_at, firing.status = want.due_at, FiringStatus.PLANNED
    for name, firing in existing.items():
        if (
            name not in wanted
            and firing.status == FiringStatus.PLANNED
            and not name.startswith("manual-")
        ):
            firing.status = FiringStatus.CANCELLED
            firing.note = "计划已变更"
    await session.flush()
    wake.after_commit(session)  # the scheduler re-reads its next due time


async def plan_cohort(
    *, session: AsyncSession, cohort_id: int, now: datetime, default_tz: str
) -> int:
    """Re-plan every schedule of a cohort (its start date moved, a member joined)."""
    schedules = (
        (await session.execute(select(Schedule).where(Schedule.cohort_id == cohort_id)))
        .scalars()
        .all()
    )
    for schedule in schedules:
        await plan_schedule(session=session, schedule=schedule, now=now, default_tz=default_tz)
    return len(schedules)


async def replan_on_change(
    change: CohortChange, *, session: AsyncSession, settings: Settings
) -> None:
    """The cohort hook (`app.capability.CohortListener`): a cohort edited (its start date may
    have moved) or a member joined (member-day firings count from the join) re-plans."""
    if change.action in ("update", "member_joined"):
        await plan_cohort(
            session=session,
            cohort_id=change.cohort_id,
            now=change.at,
            default_tz=settings.campbot_timezone,
        )


async def plan_all(*, session: AsyncSession, now: datetime, default_tz: str) -> int:
    """Re-plan every enabled schedule: extends cron horizons, adds new members' firings."""
    schedules = (
        (await session.execute(select(Schedule).where(Schedule.enabled.is_(True)))).scalars().all()
    )
    for schedule in schedules:
        try:
            await plan_schedule(session=session, schedule=schedule, now=now, default_tz=default_tz)
        except TriggerError:
            continue  # refused at save time; a cohort deleted since leaves nothing to plan
    return len(schedules)
