"""`/admin/api/members`: students and staff, their cohort, tags and personal H5 link."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query
from pydantic import Field, field_validator

from app.admin import h5_tokens
from app.admin.errors import InvalidInput
from app.admin.members import service
from app.api.admin.deps import ActorDep, AdminSessionDep, admin_resource_router
from app.api.admin.fields import (
    PRINTABLE,
    CohortQuery,
    CohortRef,
    Ident,
    IdPath,
    Limit,
    Name,
    Offset,
    Tag,
    not_null,
)
from app.api.admin.schemas import ERRORS_404, ERRORS_409, ERRORS_422, Input, ItemsPage, Output
from app.deps import RuntimeDep
from app.models import MemberStatus
from app.runtime import Runtime

router = admin_resource_router("/members", "members")


class MemberCreate(Input):
    external_userid: Ident | None = Field(default=None, description="外部联系人 id（学员）")
    userid: Ident | None = Field(default=None, description="企业成员 userid（内部学员）")
    name: Name | None = None
    cohort_id: CohortRef | None = None
    staff_userid: Ident | None = Field(default=None, description="跟进该学员的员工 userid")


class MemberUpdate(Input):
    name: Name | None = None
    status: MemberStatus | None = None
    staff_userid: Ident | None = None
    cohort_id: CohortRef | None = Field(default=None, description="转到另一期；null 表示移出期次")

    _present_means_set = field_validator("status", mode="before")(not_null)


class TagsChange(Input):
    add: list[Tag] = Field(default_factory=list, max_length=50)
    remove: list[Tag] = Field(default_factory=list, max_length=50)


class MemberOut(Output):
    id: int
    external_userid: str | None
    userid: str | None
    name: str | None
    status: MemberStatus
    staff_userid: str | None
    channel_state: str | None
    cohort_id: int | None
    tags: list[str]
    h5_url: str = Field(description="学员的个人 H5 链接（签名，可单独吊销）")
    created_at: datetime
    updated_at: datetime


def _out(view: service.MemberView, runtime: Runtime) -> MemberOut:
    member = view.member
    return MemberOut(
        id=member.id,
        external_userid=member.external_userid,
        userid=member.userid,
        name=member.name,
        status=MemberStatus(member.status),
        staff_userid=member.staff_userid,
        channel_state=member.channel_state,
        cohort_id=view.cohort_id,
        tags=list(view.tags),
        h5_url=h5_tokens.h5_url(runtime.settings.public_base_url, view.h5_token),
        created_at=member.created_at,
        updated_at=member.updated_at,
    )


@router.post(
    "",
    status_code=201,
    summary="添加学员",
    description=(
        "学员通常由企业微信事件自动创建；这里手工添加。"
        "`external_userid` 与 `userid` 须填且只填一个。"
    ),
    responses=ERRORS_409 | ERRORS_422,
)
async def create_member(
    body: MemberCreate, session: AdminSessionDep, actor: ActorDep, runtime: RuntimeDep
) -> MemberOut:
    if (body.external_userid is None) == (body.userid is None):
        raise InvalidInput("external_userid", "external_userid 与 userid 须填且只填一个。")
    view = await service.create_member(
        session=session,
        actor=actor,
        now=runtime.clock.now(),
        external_userid=body.external_userid,
        userid=body.userid,
        name=body.name,
        cohort_id=body.cohort_id,
        staff_userid=body.staff_userid,
        hooks=runtime.extensions.cohort_hooks.values(),
    )
    return _out(view, runtime)


@router.get(
    "",
    summary="学员列表",
    description=(
        "可按期次、状态、标签过滤，`q` 按姓名或 id 模糊搜索。每项带个人 H5 链接 `h5_url`。"
    ),
    responses=ERRORS_422,
)
async def list_members(
    session: AdminSessionDep,
    runtime: RuntimeDep,
    cohort_id: CohortQuery = None,
    status: Annotated[MemberStatus | None, Query(description="状态")] = None,
    tag: Annotated[str | None, Query(max_length=32, pattern=PRINTABLE, description="标签")] = None,
    q: Annotated[str | None, Query(max_length=100, pattern=PRINTABLE, description="搜索")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> ItemsPage[MemberOut]:
    page = await service.list_members(
        session=session,
        now=runtime.clock.now(),
        cohort_id=cohort_id,
        status=status,
        tag=tag.strip() if tag else None,
        q=q.strip() if q else None,
        limit=limit,
        offset=offset,
    )
    items = [_out(v, runtime) for v in page.items]
    return ItemsPage(items=items, total=page.total, limit=limit, offset=offset)


@router.get("/{member_id}", summary="查看学员", responses=ERRORS_404 | ERRORS_422)
async def get_member(
    member_id: IdPath, session: AdminSessionDep, runtime: RuntimeDep
) -> MemberOut:
    view = await service.get_member(session=session, member_id=member_id, now=runtime.clock.now())
    return _out(view, runtime)


@router.patch(
    "/{member_id}",
    summary="修改学员",
    description="只改请求里给出的字段。改 `cohort_id` 即转期（`null` 表示移出期次）。",
    responses=ERRORS_404 | ERRORS_409 | ERRORS_422,
)
async def update_member(
    member_id: IdPath,
    body: MemberUpdate,
    session: AdminSessionDep,
    actor: ActorDep,
    runtime: RuntimeDep,
) -> MemberOut:
    view = await service.update_member(
        session=session,
        actor=actor,
        now=runtime.clock.now(),
        member_id=member_id,
        changes=body.model_dump(exclude_unset=True),
        hooks=runtime.extensions.cohort_hooks.values(),
    )
    return _out(view, runtime)


@router.post(
    "/{member_id}/tags",
    summary="增删标签",
    description="先加 `add` 再删 `remove`；删除不存在的标签会被忽略。",
    responses=ERRORS_404 | ERRORS_422,
)
async def change_tags(
    member_id: IdPath,
    body: TagsChange,
    session: AdminSessionDep,
    actor: ActorDep,
    runtime: RuntimeDep,
) -> MemberOut:
    view = await service.change_tags(
        session=session,
        actor=actor,
        now=runtime.clock.now(),
        member_id=member_id,
        add=body.add,
        remove=body.remove,
    )
    return _out(view, runtime)


@router.post(
    "/{member_id}/revoke-link",
    summary="吊销个人链接",
    description="学员已发出的个人 H5 链接全部失效（打开时 403）；返回的 `h5_url` 是新链接。",
    responses=ERRORS_404 | ERRORS_422,
)
async def revoke_link(
    member_id: IdPath, session: AdminSessionDep, actor: ActorDep, runtime: RuntimeDep
) -> MemberOut:
    view = await service.revoke_link(
        session=session, actor=actor, now=runtime.clock.now(), member_id=member_id
    )
    return _out(view, runtime)
