"""`/admin/api/sop`: 群SOP items as operators see them (overdue ones first of all), skipping
one, and each cohort's timing (`/admin/api/cohorts/{id}/sop-settings`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query
from pydantic import Field

from app.admin.common import get_or_404
from app.admin.models import Cohort
from app.api.admin.deps import ActorDep, AdminSessionDep, admin_resource_router
from app.api.admin.fields import BigIdPath, CohortQuery, Ident, IdPath, Limit, Offset
from app.api.admin.schemas import ERRORS_404, ERRORS_409, Input, ItemsPage, Output
from app.deps import RuntimeDep
from bots.sop import service
from bots.sop.models import SopTask
from bots.sop.settings import Timing

router = admin_resource_router("/sop", "sop")
settings_router = admin_resource_router("/cohorts", "sop")


class SopTaskOut(Output):
    id: int = Field(description="待发消息（outbox）的 id")
    staff_userid: str = Field(description="负责发送的员工")
    chat_kind: str = Field(description="group 客户群 | single 私聊")
    chat: str = Field(description="客户群 chat_id 或学员的 external_userid")
    cohort_id: int | None
    title: str
    due_at: datetime
    notified_at: datetime
    reminded_at: datetime | None
    escalated_at: datetime | None = Field(description="超时后通知运营的时间")
    done_at: datetime | None
    done_by: str | None
    outcome: str | None = Field(
        description="on_time 按时 | late 迟发 | skipped 跳过 | null 未完成"
    )


def _out(task: SopTask) -> SopTaskOut:
    return SopTaskOut(
        id=task.outbox_id,
        **{k: getattr(task, k) for k in SopTaskOut.model_fields if k != "id"},
    )


@router.get(
    "/tasks",
    summary="群SOP 任务",
    description="已通知员工的群SOP；`overdue=true` 只看超时未发的。",
)
async def list_tasks(
    session: AdminSessionDep,
    cohort_id: CohortQuery = None,
    staff_userid: Annotated[Ident | None, Query(description="员工 userid")] = None,
    overdue: Annotated[
        bool | None, Query(description="只看超时未发（true）或其余（false）")
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> ItemsPage[SopTaskOut]:
    tasks, total = await service.list_tasks(
        session=session,
        cohort_id=cohort_id,
        staff_userid=staff_userid,
        overdue=overdue,
        limit=limit,
        offset=offset,
    )
    return ItemsPage(items=[_out(t) for t in tasks], total=total, limit=limit, offset=offset)


@router.post(
    "/tasks/{item_id}/skip",
    summary="跳过群SOP",
    description="这条内容不发了（记为跳过）；已发送或已跳过的答 409。",
    responses=ERRORS_404 | ERRORS_409,
)
async def skip(
    item_id: BigIdPath, session: AdminSessionDep, actor: ActorDep, runtime: RuntimeDep
) -> SopTaskOut:
    await service.skip(session=session, item_id=item_id, by=actor.name, now=runtime.clock.now())
    _, task = await service.get_item(session=session, item_id=item_id)
    assert task is not None  # written by the skip
    return _out(task)


class SopSettingsIn(Input):
    remind_after_minutes: int | None = Field(
        default=None, ge=1, le=24 * 60, description="到点后多久提醒员工一次"
    )
    escalate_after_minutes: int | None = Field(
        default=None,
        ge=1,
        le=7 * 24 * 60,
        description="到点后多久仍未发送就通知运营（也是「按时」的界限）",
    )
    operator_userids: list[Ident] | None = Field(
        default=None, max_length=20, description="超时通知的运营 userid"
    )


class SopSettingsOut(Output):
    cohort_id: int
    remind_after_minutes: int
    escalate_after_minutes: int
    operator_userids: list[str]


def _settings_out(cohort_id: int, timing: Timing) -> SopSettingsOut:
    return SopSettingsOut(
        cohort_id=cohort_id,
        remind_after_minutes=timing.remind,
        escalate_after_minutes=timing.escalate,
        operator_userids=list(timing.operators),
    )


@settings_router.get("/{cohort_id}/sop-settings", summary="期次的群SOP设置", responses=ERRORS_404)
async def get_settings(cohort_id: IdPath, session: AdminSessionDep) -> SopSettingsOut:
    await get_or_404(Cohort, cohort_id, session=session, what="期次")
    return _settings_out(cohort_id, await service.timing_for(session=session, cohort_id=cohort_id))


@settings_router.put(
    "/{cohort_id}/sop-settings",
    summary="修改期次的群SOP设置",
    description="只改给出的字段：提醒时间、超时时间（默认 30 分钟）、超时通知的运营。",
    responses=ERRORS_404,
)
async def put_settings(
    cohort_id: IdPath, body: SopSettingsIn, session: AdminSessionDep, runtime: RuntimeDep
) -> SopSettingsOut:
    await get_or_404(Cohort, cohort_id, session=session, what="期次")
    timing = await service.put_settings(
        session=session,
        cohort_id=cohort_id,
        now=runtime.clock.now(),
        remind_after_minutes=body.remind_after_minutes,
        escalate_after_minutes=body.escalate_after_minutes,
        operator_userids=body.operator_userids,
    )
    return _settings_out(cohort_id, timing)
