"""Schedules as operators edit them: checked, saved, planned at once, and audited.

Keyword-only, flush-only (the request owns the transaction), like every service. The admin
API passes its `actor`: each change is written to the audit log under that name (callers
without one, such as tests driving the planner, write no entry).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.audit import AuditTrail
from app.admin.common import Actor, Page, get_or_404, page_of, snapshot
from app.admin.models import Cohort
from app.capability import NO_EXTENSIONS, Extensions
from schedules.models import Firing, FiringStatus, Schedule
from schedules.planner import plan_schedule
from schedules.runner import fire
from schedules.targets import check_target
from schedules.timetable import next_due_by_schedule
from schedules.triggers import TriggerError, parse_trigger
from scripts_library.models import Script

AUDIT = AuditTrail("schedules")
WHAT = "定时发送"


@dataclass(frozen=True, slots=True)
class ScheduleProblem(Exception):
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class ScheduleView:
    schedule: Schedule
    next_due_at: datetime | None  # the earliest firing still planned


async def view_of(schedule: Schedule, *, session: AsyncSession) -> ScheduleView:
    next_due = await next_due_by_schedule(session, [schedule.id])
    return ScheduleView(schedule, next_due.get(schedule.id))


async def get_schedule(*, session: AsyncSession, schedule_id: int, lock: bool = False) -> Schedule:
    return await get_or_404(Schedule, schedule_id, session=session, what=WHAT, lock=lock)


async def list_schedules(
    *, session: AsyncSession, cohort_id: int | None, limit: int, offset: int
) -> Page[ScheduleView]:
    query = select(Schedule).order_by(Schedule.id)
    if cohort_id is not None:
        query = query.where(Schedule.cohort_id == cohort_id)
    page = await page_of(query, session=session, limit=limit, offset=offset)
    next_due = await next_due_by_schedule(session, [s.id for s in page.items])
    return Page([ScheduleView(s, next_due.get(s.id)) for s in page.items], page.total)


async def list_firings(
    *, session: AsyncSession, schedule_id: int, limit: int | None = None
) -> list[Firing]:
    """The schedule's planned and fired occurrences, by due time (404 for an unknown one);
    with `limit`, the latest `limit` of them (still by due time)."""
    await get_schedule(session=session, schedule_id=schedule_id)
    query = select(Firing).where(Firing.schedule_id == schedule_id)
    if limit is None:
        return list(await session.scalars(query.order_by(Firing.due_at)))
    latest = query.order_by(Firing.due_at.desc()).limit(limit)
    return list(reversed(list(await session.scalars(latest))))


async def _check(
    session: AsyncSession,
    *,
    script_key: str,
    cohort_id: int | None,
    trigger: dict[str, Any],
    target: dict[str, Any],
    default_tz: str,
    extensions: Extensions,
) -> None:
    if (await session.execute(select(Script.id).where(Script.key == script_key))).first() is None:
        raise ScheduleProblem("script_key", f"话术不存在：{script_key}")
    cohort = await session.get(Cohort, cohort_id) if cohort_id is not None else None
    if cohort_id is not None and cohort is None:
        raise ScheduleProblem("cohort_id", f"期次不存在：{cohort_id}")
    try:
        parse_trigger(trigger, tz=ZoneInfo(cohort.timezone if cohort else default_tz))
    except TriggerError as exc:
        raise ScheduleProblem("trigger", str(exc)) from exc
    if trigger.get("type") in ("cohort_day", "member_day") and cohort is None:
        raise ScheduleProblem("cohort_id", f"{trigger['type']} 触发需要指定期次（cohort_id）")
    try:
        check_target(target, filters=extensions.member_filters)
    except TriggerError as exc:
        raise ScheduleProblem("target", str(exc)) from exc
    if target.get("type") in ("cohort_groups", "members") and cohort is None:
        raise ScheduleProblem("cohort_id", f"{target['type']} 目标需要指定期次（cohort_id）")


async def create_schedule(
    *,
    session: AsyncSession,
    script_key: str,
    cohort_id: int | None,
    trigger: dict[str, Any],
    target: dict[str, Any],
    now: datetime,
    default_tz: str,
    enabled: bool = True,
    actor: Actor | None = None,
    extensions: Extensions = NO_EXTENSIONS,
) -> Schedule:
    """`extensions`: the capabilities' member filters a target may name."""
    await _check(
        session,
        script_key=script_key,
        cohort_id=cohort_id,
        trigger=trigger,
        target=target,
        default_tz=default_tz,
        extensions=extensions,
    )
    schedule = Schedule(
        script_key=script_key,
        cohort_id=cohort_id,
        trigger=trigger,
        target=target,
        enabled=enabled,
        created_at=now,
        updated_at=now,
    )
    session.add(schedule)
    await session.flush()
    await plan_schedule(session=session, schedule=schedule, now=now, default_tz=default_tz)
    if actor is not None:
        after = snapshot(schedule)
        await AUDIT.record(
            "create", schedule.id, session=session, actor=actor, now=now, after=after
        )
    return schedule


async def update_schedule(
    *,
    session: AsyncSession,
    schedule: Schedule,
    changes: dict[str, Any],
    now: datetime,
    default_tz: str,
    actor: Actor | None = None,
    extensions: Extensions = NO_EXTENSIONS,
) -> Schedule:
    """Apply `changes` (any of script_key, cohort_id, trigger, target, enabled) and re-plan:
    pending firings move, sent ones stay sent. `schedule` is locked by the caller."""
    before = snapshot(schedule)
    merged = {
        name: changes.get(name, getattr(schedule, name))
        for name in ("script_key", "cohort_id", "trigger", "target", "enabled")
    }
    await _check(
        session,
        script_key=merged["script_key"],
        cohort_id=merged["cohort_id"],
        trigger=merged["trigger"],
        target=merged["target"],
        default_tz=default_tz,
        extensions=extensions,
    )
    for name, value in merged.items():
        setattr(schedule, name, value)
    schedule.updated_at = now
    await session.flush()
    await plan_schedule(session=session, schedule=schedule, now=now, default_tz=default_tz)
    if actor is None:
        return schedule
    after = snapshot(schedule)
    await AUDIT.record(
        "update", schedule.id, session=session, actor=actor, now=now, before=before, after=after
    )
    return schedule


async def delete_schedule(
    *, session: AsyncSession, schedule_id: int, actor: Actor, now: datetime
) -> None:
    """The schedule goes, its firings with it (ON DELETE CASCADE)."""
    schedule = await get_schedule(session=session, schedule_id=schedule_id)
    before = snapshot(schedule)
    await AUDIT.record("delete", schedule.id, session=session, actor=actor, now=now, before=before)
    await session.delete(schedule)


async def run_now(
    *,
    session: AsyncSession,
    schedule: Schedule,
    now: datetime,
    default_tz: str,
    actor: Actor | None = None,
    extensions: Extensions = NO_EXTENSIONS,
) -> Firing:
    """Fire the schedule once, now, besides its plan (an operator's 立即发送)."""
    firing = Firing(
        schedule_id=schedule.id,
        occurrence=f"manual-{now:%Y%m%dT%H%M%S%f}",
        due_at=now,
        status=FiringStatus.PLANNED,
        enqueued=0,
    )
    session.add(firing)
    await session.flush()
    await fire(
        session=session, firing=firing, now=now, default_tz=default_tz, extensions=extensions
    )
    if actor is not None:
        after = {"firing": firing.occurrence, "enqueued": firing.enqueued}
        await AUDIT.record("run", schedule.id, session=session, actor=actor, now=now, after=after)
    return firing
