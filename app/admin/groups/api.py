"""`/admin/api/groups`: chat groups, the channel that reaches each, and their cohort."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import Query, Response
from pydantic import Field, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from app import quota
from app.admin.groups import service
from app.api.admin.deps import ActorDep, AdminSessionDep, admin_resource_router
from app.api.admin.fields import (
    CohortQuery,
    CohortRef,
    Ident,
    IdPath,
    Limit,
    Name,
    Offset,
    RobotKey,
    not_null,
)
from app.api.admin.schemas import ERRORS_404, ERRORS_409, ERRORS_422, Input, ItemsPage, Output
from app.deps import RuntimeDep
from app.models import GroupChannel, GroupStatus
from app.runtime import Runtime

router = admin_resource_router("/groups", "groups")


class GroupCreate(Input):
    cohort_id: CohortRef | None = Field(default=None, description="所属期次")
    name: Name
    channel: GroupChannel = Field(
        description="robot 群机器人 | appchat 应用群聊 | customer 客户群"
    )
    robot_key: RobotKey | None = Field(
        default=None, description="群机器人 webhook 的 key（robot 必填；可直接粘贴 webhook 地址）"
    )
    chat_id: Ident | None = Field(default=None, description="群 ID（appchat、customer 必填）")
    owner_userid: Ident | None = Field(default=None, description="群主 userid（customer 必填）")
    assistant_userid: Ident | None = Field(
        default=None, description="负责这个群的助教 userid：群SOP 由 ta 发送（不填则由群主发送）"
    )


class GroupUpdate(Input):
    cohort_id: CohortRef | None = None
    name: Name | None = None
    channel: GroupChannel | None = None
    robot_key: RobotKey | None = None
    chat_id: Ident | None = None
    owner_userid: Ident | None = None
    assistant_userid: Ident | None = None
    status: GroupStatus | None = None

    _present_means_set = field_validator("name", "channel", "status", mode="before")(not_null)


class QuotaOut(Output):
    mode: str = Field(description="month_days | week_7 | day_1（WECOM_MASS_SEND_QUOTA）")
    window_start: date
    window_end: date = Field(description="不含这一天")
    limit: int
    used: int
    left: int
    full: bool = Field(description="企业微信答复过次数已用完（状态 3）")


class GroupOut(Output):
    id: int
    cohort_id: int | None
    name: str | None
    channel: GroupChannel
    robot_key: str | None
    chat_id: str | None
    owner_userid: str | None
    assistant_userid: str | None = Field(description="负责群SOP的助教（空则为群主）")
    status: GroupStatus
    member_count: int = Field(description="当前在群成员数（据回调事件统计）")
    mass_send_quota: QuotaOut | None = Field(
        default=None, description="客户群本周期的群发次数（按群发助手的规则，营地时区）"
    )
    created_at: datetime
    updated_at: datetime


async def _with_quota(
    outs: list[GroupOut], *, session: AsyncSession, runtime: Runtime
) -> list[GroupOut]:
    """Each customer group's 群发 quota in its current window: one query for the groups'
    time zones and one per time zone for the quotas, not three per group."""
    routing, now = runtime.extensions.routing, runtime.clock.now()
    customer = [o for o in outs if o.channel == GroupChannel.CUSTOMER and o.chat_id]
    chat_ids = list(dict.fromkeys(o.chat_id for o in customer if o.chat_id))
    # What quota.camp_timezone finds for each: a chat id is never a student's external userid.
    zones = await quota.group_timezones(session=session, chat_ids=chat_ids)
    by_zone: dict[str, list[str]] = {}
    for chat_id in chat_ids:
        by_zone.setdefault(zones.get(chat_id, routing.default_tz), []).append(chat_id)
    found: dict[str, quota.QuotaLeft] = {}
    for tz, targets in by_zone.items():
        found |= await quota.quota_left(
            session=session, targets=targets, mode=routing.mode, tz=tz, now=now
        )
    for out in customer:
        left = found[str(out.chat_id)]
        out.mass_send_quota = QuotaOut(
            mode=routing.mode,
            window_start=left.window.start,
            window_end=left.window.end,
            limit=left.window.limit,
            used=left.used,
            left=left.left,
            full=left.full,
        )
    return outs


def _out(view: service.GroupView) -> GroupOut:
    group = view.group
    return GroupOut(
        id=group.id,
        cohort_id=view.cohort_id,
        name=group.name,
        channel=GroupChannel(group.channel),
        robot_key=group.robot_key,
        chat_id=group.chat_id,
        owner_userid=group.owner_userid,
        assistant_userid=group.assistant_userid,
        status=GroupStatus(group.status),
        member_count=view.member_count,
        created_at=group.created_at,
        updated_at=group.updated_at,
    )


@router.post(
    "",
    status_code=201,
    summary="登记群",
    description=(
        "按渠道校验：`robot` 需要 `robot_key`；`appchat`、`customer` 需要 `chat_id`；"
        "`customer` 还需要群主 `owner_userid`（客户群群发由群主确认）。`chat_id` 不能重复。"
    ),
    responses=ERRORS_409 | ERRORS_422,
)
async def create_group(
    body: GroupCreate, session: AdminSessionDep, actor: ActorDep, runtime: RuntimeDep
) -> GroupOut:
    view = await service.create_group(
        session=session,
        actor=actor,
        now=runtime.clock.now(),
        cohort_id=body.cohort_id,
        name=body.name,
        channel=body.channel,
        robot_key=body.robot_key,
        chat_id=body.chat_id,
        owner_userid=body.owner_userid,
        assistant_userid=body.assistant_userid,
    )
    return (await _with_quota([_out(view)], session=session, runtime=runtime))[0]


@router.get("", summary="群列表", description="可按期次、渠道、状态过滤。", responses=ERRORS_422)
async def list_groups(
    session: AdminSessionDep,
    runtime: RuntimeDep,
    cohort_id: CohortQuery = None,
    channel: Annotated[GroupChannel | None, Query(description="渠道")] = None,
    status: Annotated[GroupStatus | None, Query(description="状态")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> ItemsPage[GroupOut]:
    page = await service.list_groups(
        session=session,
        cohort_id=cohort_id,
        channel=channel,
        status=status,
        limit=limit,
        offset=offset,
    )
    items = await _with_quota([_out(v) for v in page.items], session=session, runtime=runtime)
    return ItemsPage(items=items, total=page.total, limit=limit, offset=offset)


@router.get("/{group_id}", summary="查看群", responses=ERRORS_404 | ERRORS_422)
async def get_group(group_id: IdPath, session: AdminSessionDep, runtime: RuntimeDep) -> GroupOut:
    out = _out(await service.get_group(session=session, group_id=group_id))
    return (await _with_quota([out], session=session, runtime=runtime))[0]


@router.patch(
    "/{group_id}",
    summary="修改群",
    description="只改请求里给出的字段；改完后按渠道重新校验。`cohort_id: null` 表示移出期次。",
    responses=ERRORS_404 | ERRORS_409 | ERRORS_422,
)
async def update_group(
    group_id: IdPath,
    body: GroupUpdate,
    session: AdminSessionDep,
    actor: ActorDep,
    runtime: RuntimeDep,
) -> GroupOut:
    view = await service.update_group(
        session=session,
        actor=actor,
        now=runtime.clock.now(),
        group_id=group_id,
        changes=body.model_dump(exclude_unset=True),
    )
    return (await _with_quota([_out(view)], session=session, runtime=runtime))[0]


@router.delete(
    "/{group_id}",
    status_code=204,
    summary="删除群",
    description="删除群记录及其成员记录；之后不再向该群推送。",
    responses=ERRORS_404 | ERRORS_409 | ERRORS_422,
)
async def delete_group(
    group_id: IdPath, session: AdminSessionDep, actor: ActorDep, runtime: RuntimeDep
) -> Response:
    await service.delete_group(
        session=session, actor=actor, now=runtime.clock.now(), group_id=group_id
    )
    return Response(status_code=204)
