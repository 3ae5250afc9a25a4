"""A cohort's timetable as the console shows it: its `cohort_day` schedules by camp day and
time, the rest (member days, cron, one-offs) beside them, each with its next planned firing.
Three queries whatever the number of schedules."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Cohort
from schedules.models import Firing, FiringStatus, Schedule
from scripts_library.models import Script


@dataclass(frozen=True, slots=True)
class Slot:
    schedule: Schedule
    script_title: str
    next_due_at: datetime | None

    @property
    def time(self) -> str:
        return str(self.schedule.trigger.get("time", ""))


@dataclass(frozen=True, slots=True)
class Timetable:
    cohort: Cohort
    days: list[tuple[int, list[Slot]]]  # camp day → its slots by time, every day 0..days
    other: list[Slot]  # triggers not tied to a camp day


def _camp_day(schedule: Schedule) -> int | None:
    trigger = schedule.trigger
    day = trigger.get("day")
    if trigger.get("type") != "cohort_day" or not isinstance(day, int) or isinstance(day, bool):
        return None
    return day


async def next_due_by_schedule(session: AsyncSession, ids: Collection[int]) -> dict[int, datetime]:
    """Each schedule's earliest planned firing (those with none are left out): one query."""
    if not ids:
        return {}
    rows = await session.execute(
        select(Firing.schedule_id, func.min(Firing.due_at))
        .where(Firing.schedule_id.in_(ids), Firing.status == FiringStatus.PLANNED)
        .group_by(Firing.schedule_id)
    )
    return dict(rows.all())


async def timetable(*, session: AsyncSession, cohort: Cohort) -> Timetable:
    schedules = list(
        await session.scalars(
            select(Schedule).where(Schedule.cohort_id == cohort.id).order_by(Schedule.id)
        )
    )
    next_due = await next_due_by_schedule(session, [s.id for s in schedules])
    keys = {s.script_key for s in schedules}
    titles = dict(
        (await session.execute(select(Script.key, Script.title).where(Script.key.in_(keys)))).all()
    )
    by_day: dict[int, list[Slot]] = defaultdict(list)
    other: list[Slot] = []
    for schedule in schedules:
        slot = Slot(
            schedule,
            titles.get(schedule.script_key, schedule.script_key),
            next_due.get(schedule.id),
        )
        day = _camp_day(schedule)
        (by_day[day] if day is not None else other).append(slot)
    first = min([0, *by_day])
    last = max([cohort.days, *by_day])
    days = [(d, sorted(by_day.get(d, []), key=lambda s: s.time)) for d in range(first, last + 1)]
    return Timetable(cohort, days, other)
