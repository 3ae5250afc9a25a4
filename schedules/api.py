"""`/admin/api/schedules`: the camp's timetable, its calendar, and 立即发送."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.admin.errors import Conflict, InvalidInput
from app.api.admin.deps import ActorDep, AdminSessionDep, admin_resource_router
from app.api.admin.fields import (
    PRINTABLE,
    CohortQuery,
    CohortRef,
    IdPath,
    Limit,
    Offset,
    not_null,
)
from app.api.admin.schemas import ERRORS_404, ERRORS_409, ERRORS_422, ItemsPage
from app.deps import RuntimeDep
from app.wecom.errors import UndeliverableError
from schedules import service
from schedules.calendar import calendar
from schedules.models import Firing
from scripts_library.errors import RenderError

router = admin_resource_router("/schedules", "schedules")


class ScheduleIn(BaseModel):
    # A misspelt field (say "enable": false) must be a 422, not a schedule that sends anyway.
    model_config = ConfigDict(extra="forbid")

    # Printable: PostgreSQL refuses a NUL outright (a 500, not a 422).
    script_key: str = Field(
        min_length=1, max_length=100, pattern=PRINTABLE, examples=["day1_tasks"]
    )
    # Bounded like every admin id: a huge one is a 422, not PostgreSQL's int32 error (500).
    cohort_id: CohortRef | None = Field(default=None, examples=[1])
    trigger: dict[str, Any] = Field(
        examples=[{"type": "cohort_day", "day": 1, "time": "08:00"}],
        description='{"type":"cohort_day"|"member_day","day":N,"time":"HH:MM"} | '
        '{"type":"cron","cron":"0 21 * * *"} | {"type":"at","at":ISO-8601}',
    )
    target: dict[str, Any] = Field(
        examples=[{"type": "cohort_groups"}],
        description='{"type":"cohort_groups"} | {"type":"groups","group_ids":[…]} | '
        '{"type":"members","filter":"all"|…} | {"type":"staff","userids":[…]}',
    )
    enabled: bool = True


class SchedulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    script_key: str | None = Field(default=None, min_length=1, max_length=100, pattern=PRINTABLE)
    cohort_id: CohortRef | None = None
    trigger: dict[str, Any] | None = None
    target: dict[str, Any] | None = None
    enabled: bool | None = None

    # Only cohort_id may be cleared; null elsewhere would store a schedule that cannot plan.
    _present_means_set = field_validator(
        "script_key", "trigger", "target", "enabled", mode="before"
    )(not_null)


class FiringOut(BaseModel):
    id: int
    occurrence: str
    due_at: datetime
    status: str
    enqueued: int
    note: str | None


class ScheduleOut(BaseModel):
    id: int
    script_key: str
    cohort_id: int | None
    trigger: dict[str, Any]
    target: dict[str, Any]
    enabled: bool
    next_due_at: datetime | None
    created_at: datetime
    updated_at: datetime


class CalendarOut(BaseModel):
    firing_id: int
    schedule_id: int
    script_key: str
    cohort_id: int | None
    due_at: datetime
    local_time: str
    targets: list[str]
    channels: list[str] = Field(
        description="每个目标的发送方式：群发 | 群SOP | 群SOP（私聊）| 群发（合并）"
        " | 群机器人 | 应用消息…"
    )
    quota_left: dict[str, int] | None = Field(
        description="客户群（chat_id）在这次发送之后本周期还剩的群发次数（预估）"
    )


def _out(view: service.ScheduleView) -> ScheduleOut:
    schedule = view.schedule
    return ScheduleOut(
        id=schedule.id,
        script_key=schedule.script_key,
        cohort_id=schedule.cohort_id,
        trigger=schedule.trigger,
        target=schedule.target,
        enabled=schedule.enabled,
        next_due_at=view.next_due_at,
        created_at=schedule.created_at,
        updated_at=schedule.updated_at,
    )


def _firing_out(firing: Firing) -> FiringOut:
    return FiringOut(
        id=firing.id,
        occurrence=firing.occurrence,
        due_at=firing.due_at,
        status=firing.status,
        enqueued=firing.enqueued,
        note=firing.note,
    )


def _invalid(problem: service.ScheduleProblem) -> InvalidInput:
    return InvalidInput(problem.field, problem.message)


@router.post(
    "",
    status_code=201,
    summary="创建定时发送",
    description="保存后立即排期；`GET /schedules/calendar` 可查看将要发送的内容。",
    responses=ERRORS_422,
)
async def create_schedule(
    body: ScheduleIn, session: AdminSessionDep, actor: ActorDep, runtime: RuntimeDep
) -> ScheduleOut:
    try:
        schedule = await service.create_schedule(
            session=session,
            now=runtime.clock.now(),
            default_tz=runtime.settings.campbot_timezone,
            actor=actor,
            extensions=runtime.extensions,
            **body.model_dump(),
        )
    except service.ScheduleProblem as problem:
        raise _invalid(problem) from None
    return _out(await service.view_of(schedule, session=session))


@router.get(
    "/calendar",
    summary="发送日历（预演）",
    description="未来 `hours` 小时内将发送的内容：哪个话术、发给谁、何时（营地时间）。",
)
async def get_calendar(
    session: AdminSessionDep, runtime: RuntimeDep, hours: float = Query(24, gt=0, le=24 * 31)
) -> list[CalendarOut]:
    entries = await calendar(
        session=session,
        now=runtime.clock.now(),
        hours=hours,
        default_tz=runtime.settings.campbot_timezone,
        extensions=runtime.extensions,
    )
    return [
        CalendarOut(
            firing_id=e.firing_id,
            schedule_id=e.schedule_id,
            script_key=e.script_key,
            cohort_id=e.cohort_id,
            due_at=e.due_at,
            local_time=e.local_time,
            targets=list(e.targets),
            channels=list(e.channels),
            quota_left=e.quota_left,
        )
        for e in entries
    ]


@router.get("", summary="定时发送列表")
async def list_schedules(
    session: AdminSessionDep, limit: Limit = 50, offset: Offset = 0, cohort_id: CohortQuery = None
) -> ItemsPage[ScheduleOut]:
    page = await service.list_schedules(
        session=session, cohort_id=cohort_id, limit=limit, offset=offset
    )
    items = [_out(view) for view in page.items]
    return ItemsPage(items=items, total=page.total, limit=limit, offset=offset)


@router.get("/{schedule_id}", summary="查看定时发送", responses=ERRORS_404)
async def get_schedule(schedule_id: IdPath, session: AdminSessionDep) -> ScheduleOut:
    schedule = await service.get_schedule(session=session, schedule_id=schedule_id)
    return _out(await service.view_of(schedule, session=session))


@router.get("/{schedule_id}/firings", summary="排期与发送记录", responses=ERRORS_404)
async def list_firings(schedule_id: IdPath, session: AdminSessionDep) -> list[FiringOut]:
    firings = await service.list_firings(session=session, schedule_id=schedule_id)
    return [_firing_out(f) for f in firings]


@router.patch(
    "/{schedule_id}",
    summary="修改定时发送",
    description="修改后重新排期：未发送的改到新时间，已发送的不会重发。",
    responses=ERRORS_404 | ERRORS_422,
)
async def update_schedule(
    schedule_id: IdPath,
    body: SchedulePatch,
    session: AdminSessionDep,
    actor: ActorDep,
    runtime: RuntimeDep,
) -> ScheduleOut:
    schedule = await service.get_schedule(session=session, schedule_id=schedule_id, lock=True)
    try:
        await service.update_schedule(
            session=session,
            schedule=schedule,
            changes=body.model_dump(exclude_unset=True),
            now=runtime.clock.now(),
            default_tz=runtime.settings.campbot_timezone,
            actor=actor,
            extensions=runtime.extensions,
        )
    except service.ScheduleProblem as problem:
        raise _invalid(problem) from None
    return _out(await service.view_of(schedule, session=session))


@router.delete("/{schedule_id}", status_code=204, summary="删除定时发送", responses=ERRORS_404)
async def delete_schedule(
    schedule_id: IdPath, session: AdminSessionDep, actor: ActorDep, runtime: RuntimeDep
) -> Response:
    await service.delete_schedule(
        session=session, schedule_id=schedule_id, actor=actor, now=runtime.clock.now()
    )
    return Response(status_code=204)


@router.post("/{schedule_id}/run", summary="立即发送一次", responses=ERRORS_404 | ERRORS_409)
async def run_schedule(
    schedule_id: IdPath, session: AdminSessionDep, actor: ActorDep, runtime: RuntimeDep
) -> FiringOut:
    schedule = await service.get_schedule(session=session, schedule_id=schedule_id)
    try:
        firing = await service.run_now(
            session=session,
            schedule=schedule,
            now=runtime.clock.now(),
            default_tz=runtime.settings.campbot_timezone,
            actor=actor,
            extensions=runtime.extensions,
        )
    except (RenderError, UndeliverableError) as exc:
        # The script cannot be said to these targets (a variable they lack, over a channel's
        # limit): the operator's answer, not a 500. The request rolls back: nothing enqueued.
        raise Conflict(f"无法立即发送：{exc}") from None
    return _firing_out(firing)
