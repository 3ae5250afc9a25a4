"""One firing: claimed (planned → fired), then its script rendered per target and enqueued
under `schedule:{id}:{target}:{due_at}` in the caller's transaction, or its script job
called (`app.capability.ScriptJob`). Found later than the misfire grace, it is recorded
`missed`, not sent late. The keys and the variables a target sees are shared with the
firing of many at once (`schedules.batch`, `schedules.runner`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Cohort
from app.capability import NO_EXTENSIONS, Extensions
from app.channels.routes import enqueue_message
from schedules.context import provided_variables
from schedules.models import Firing, FiringStatus, Schedule
from schedules.planner import schedule_timezone
from schedules.targets import Target, resolve
from scripts_library.models import Script
from scripts_library.render import render, variables_used
from scripts_library.variables import RenderContext, zh_date, zh_weekday

MISFIRE_GRACE = timedelta(minutes=10)
_NOTE_LIMIT = 2000


def due_label(due_at: datetime) -> str:
    return due_at.strftime("%Y%m%dT%H%M%SZ")


def key_of(schedule_id: int, label: str, due: str) -> str:
    return f"schedule:{schedule_id}:{label}:{due}"


def outbox_key(schedule_id: int, target: Target, due_at: datetime) -> str:
    return key_of(schedule_id, target.label, due_label(due_at))


def context_for(*, cohort: Cohort | None, target: Target, local_now: datetime) -> RenderContext:
    """The variables a scheduled script sees for one target."""
    fields: dict[str, object] = {
        "date": zh_date(local_now.date()),
        "weekday": zh_weekday(local_now.date()),
    }
    if cohort is not None:
        fields.update(
            cohort_name=cohort.name,
            camp_name=cohort.camp,
            total_days=cohort.days,
            day=(local_now.date() - cohort.start_date).days,
        )
    if target.group is not None:
        fields["group_name"] = target.group.name or ""
    if target.member is not None:
        fields["student_name"] = target.member.name or "同学"
    return RenderContext(**fields)  # type: ignore[arg-type]


def with_values(context: RenderContext, values: dict[str, object] | None) -> RenderContext:
    """`context` with a provider's values (schedules.context) laid over it."""
    return replace(context, **values) if values else context  # type: ignore[arg-type]


def missed_note(now: datetime, due_at: datetime) -> str:
    return f"错过发送时间（晚了 {now - due_at}）"


def failure_note(exc: Exception) -> str:
    return f"发送失败：{type(exc).__name__}: {exc}"[:_NOTE_LIMIT]


async def _claim(session: AsyncSession, firing_id: int, now: datetime) -> bool:
    claimed = await session.execute(
        update(Firing)
        .where(Firing.id == firing_id, Firing.status == FiringStatus.PLANNED)
        .values(status=FiringStatus.FIRED, fired_at=now)
    )
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


async def fire(
    *,
    session: AsyncSession,
    firing: Firing,
    now: datetime,
    default_tz: str,
    grace: timedelta = MISFIRE_GRACE,
    extensions: Extensions = NO_EXTENSIONS,
) -> str:
    """Fire one firing in the caller's transaction; its resulting status."""
    if not await _claim(session, firing.id, now):
        return "taken"  # another scheduler fired it
    if now - firing.due_at > grace:
        firing.status, firing.note = FiringStatus.MISSED, missed_note(now, firing.due_at)
        return FiringStatus.MISSED
    schedule = await session.get(Schedule, firing.schedule_id)
    assert schedule is not None  # the firing's foreign key
    script = (
        await session.execute(select(Script).where(Script.key == schedule.script_key))
    ).scalar_one_or_none()
    if script is None:
        firing.status, firing.note = FiringStatus.MISSED, f"话术不存在：{schedule.script_key}"
        return FiringStatus.MISSED
    job = extensions.job_for(schedule.script_key, schedule.cohort_id)
    if job is not None and schedule.cohort_id is not None:
        firing.enqueued = await job(session, schedule.cohort_id, now)
        return FiringStatus.FIRED
    tz, cohort = await schedule_timezone(session=session, schedule=schedule, default_tz=default_tz)
    targets = await resolve(
        session=session,
        target=schedule.target,
        cohort_id=schedule.cohort_id,
        member_id=firing.member_id,
        now=now,
        filters=extensions.member_filters,
    )
    extra = await provided_variables(
        session=session,
        cohort=cohort,
        targets=targets,
        names=variables_used(script),
        now=now,
        providers=extensions.context_providers.values(),
    )
    for target in targets:
        context = context_for(cohort=cohort, target=target, local_now=now.astimezone(tz))
        message = render(script, with_values(context, extra.get(target.label)))
        await enqueue_message(
            session=session,
            key=outbox_key(schedule.id, target, firing.due_at),
            route=target.route,
            message=message,
            now=now,
        )
    firing.enqueued = len(targets)
    return FiringStatus.FIRED
