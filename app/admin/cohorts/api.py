"""`/admin/api/cohorts`: training-camp cohorts (期次)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import Query, Response
from pydantic import Field, field_validator

from app.admin.cohorts import service
from app.api.admin.deps import ActorDep, AdminSessionDep, admin_resource_router
from app.api.admin.fields import (
    PRINTABLE,
    ChannelState,
    Days,
    IdPath,
    Limit,
    Name,
    Offset,
    StartDate,
    Timezone,
    not_null,
)
from app.api.admin.schemas import ERRORS_404, ERRORS_409, ERRORS_422, Input, ItemsPage, Output
from app.deps import RuntimeDep

router = admin_resource_router("/cohorts", "cohorts")


class CohortCreate(Input):
    name: Name = Field(description="期次名称，如「21 天写作营 第 3 期」")
    camp: Name = Field(description="所属训练营")
    start_date: StartDate = Field(description="开营日（第 0 天），YYYY-MM-DD")
    days: Days = Field(description="上课天数：第 0 天开营，第 1 天到第 days 天上课")
    channel_state: ChannelState = Field(description="招生渠道活码的 State（≤30 字符），全局唯一")
    timezone: Timezone | None = Field(
        default=None, description="期次的时区，默认 CAMPBOT_TIMEZONE"
    )


class CohortUpdate(Input):
    name: Name | None = None
    camp: Name | None = None
    start_date: StartDate | None = Field(default=None, description="改期：移动开营日")
    days: Days | None = None
    channel_state: ChannelState | None = None
    timezone: Timezone | None = None

    _present_means_set = field_validator("*", mode="before")(not_null)


class CohortOut(Output):
    id: int
    name: str
    camp: str
    start_date: date
    days: int
    channel_state: str
    timezone: str
    end_date: date = Field(description="最后一天（第 days 天）")
    group_count: int
    member_count: int
    created_at: datetime
    updated_at: datetime


def _out(view: service.CohortView) -> CohortOut:
    cohort = view.cohort
    return CohortOut(
        id=cohort.id,
        name=cohort.name,
        camp=cohort.camp,
        start_date=cohort.start_date,
        days=cohort.days,
        channel_state=cohort.channel_state,
        timezone=cohort.timezone,
        end_date=cohort.start_date + timedelta(days=cohort.days),
        group_count=view.group_count,
        member_count=view.member_count,
        created_at=cohort.created_at,
        updated_at=cohort.updated_at,
    )


@router.post(
    "",
    status_code=201,
    summary="创建期次",
    description=(
        "新建一期训练营。`start_date` 是开营日（第 0 天）；`channel_state` 不能与其他期次重复。"
    ),
    responses=ERRORS_409 | ERRORS_422,
)
async def create_cohort(
    body: CohortCreate, session: AdminSessionDep, actor: ActorDep, runtime: RuntimeDep
) -> CohortOut:
    view = await service.create_cohort(
        session=session,
        actor=actor,
        now=runtime.clock.now(),
        name=body.name,
        camp=body.camp,
        start_date=body.start_date,
        days=body.days,
        channel_state=body.channel_state,
        timezone=body.timezone or runtime.settings.campbot_timezone,
        hooks=runtime.extensions.cohort_hooks.values(),
    )
    return _out(view)


@router.get(
    "",
    summary="期次列表",
    description="按开营日从新到旧；可按训练营 `camp` 过滤。",
    responses=ERRORS_422,
)
async def list_cohorts(
    session: AdminSessionDep,
    camp: Annotated[
        str | None, Query(max_length=200, pattern=PRINTABLE, description="训练营名称")
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> ItemsPage[CohortOut]:
    page = await service.list_cohorts(session=session, camp=camp, limit=limit, offset=offset)
    return ItemsPage(
        items=[_out(v) for v in page.items], total=page.total, limit=limit, offset=offset
    )


@router.get("/{cohort_id}", summary="查看期次", responses=ERRORS_404 | ERRORS_422)
async def get_cohort(cohort_id: IdPath, session: AdminSessionDep) -> CohortOut:
    return _out(await service.get_cohort(session=session, cohort_id=cohort_id))


@router.patch(
    "/{cohort_id}",
    summary="修改期次",
    description="只改请求里给出的字段。改 `start_date` 即改期：按期次天数排的推送会随之重排。",
    responses=ERRORS_404 | ERRORS_409 | ERRORS_422,
)
async def update_cohort(
    cohort_id: IdPath,
    body: CohortUpdate,
    session: AdminSessionDep,
    actor: ActorDep,
    runtime: RuntimeDep,
) -> CohortOut:
    view = await service.update_cohort(
        session=session,
        actor=actor,
        now=runtime.clock.now(),
        cohort_id=cohort_id,
        changes=body.model_dump(exclude_unset=True),
        hooks=runtime.extensions.cohort_hooks.values(),
    )
    return _out(view)


@router.delete(
    "/{cohort_id}",
    status_code=204,
    summary="删除期次",
    description="只能删除没有群、没有学员的期次（否则 409）。",
    responses=ERRORS_404 | ERRORS_409 | ERRORS_422,
)
async def delete_cohort(
    cohort_id: IdPath, session: AdminSessionDep, actor: ActorDep, runtime: RuntimeDep
) -> Response:
    await service.delete_cohort(
        session=session,
        actor=actor,
        now=runtime.clock.now(),
        cohort_id=cohort_id,
        hooks=runtime.extensions.cohort_hooks.values(),
    )
    return Response(status_code=204)
