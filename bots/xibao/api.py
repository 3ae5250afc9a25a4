"""`/admin/api/achievements` and `/admin/api/broadcasts`: 喜报 and their progress.

POST /achievements records an achievement and, in the same transaction, enqueues the 喜报 to
every group (answering `broadcast_id`); students' own reports wait for
POST /achievements/{id}/approve. GET /broadcasts/{id} counts what reached the groups.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, NamedTuple

from fastapi import Query, Response
from pydantic import AfterValidator, BaseModel, Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.common import get_or_404, page_of
from app.admin.errors import NotFound
from app.api.admin.deps import ActorDep, AdminSessionDep, admin_resource_router
from app.api.admin.fields import INT32_MAX, CohortQuery, IdPath, Limit, Offset
from app.api.admin.schemas import ERRORS_404, ERRORS_409, ERRORS_422, Input, ItemsPage, Responses
from app.deps import RuntimeDep
from bots.xibao import certificate, progress, service
from bots.xibao.models import DETAIL_MAX, TITLE_MAX, Achievement, AchievementStatus, Broadcast

router = admin_resource_router("", "xibao")

GroupRef = Annotated[int, Field(ge=1, le=INT32_MAX)]
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")  # line breaks are fine in a detail


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("不能包含制表符等控制字符")
    return value


def _one_line(value: str) -> str:
    if "\n" in value:
        raise ValueError("标题不能换行")
    return value


Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX),
    AfterValidator(_printable),
    AfterValidator(_one_line),
]
Detail = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=DETAIL_MAX),
    AfterValidator(_printable),
]
PNG: Responses = {200: {"content": {"image/png": {}}, "description": "PNG 图片（1080×1440）"}}


class AchievementIn(Input):
    member_id: GroupRef = Field(examples=[12], description="学员 id")
    title: Title = Field(examples=["出单啦"])
    detail: Detail = Field(default="", examples=["上架第 3 天出了第一单"])
    group_ids: list[GroupRef] | None = Field(
        default=None, max_length=2000, description="发到哪些群；不填则发到学员所在期次的所有群"
    )


class ApproveIn(Input):
    group_ids: list[GroupRef] | None = Field(default=None, max_length=2000)


class AchievementOut(BaseModel):
    id: int
    member_id: int
    cohort_id: int | None
    title: str
    detail: str
    status: str
    source: str
    group_ids: list[int] | None
    created_by: str
    created_at: datetime
    approved_by: str | None
    approved_at: datetime | None
    broadcast_id: int | None
    poster_missing: str | None = Field(
        default=None, description="喜报没有海报时的原因（如未安装中文字体）；此时各群收到文字"
    )


class GroupProgressOut(BaseModel):
    group_id: int | None
    group_name: str
    channel: str
    status: str = Field(description="sent | failed | pending | awaiting_confirmation")
    error: str | None


class BroadcastOut(BaseModel):
    id: int
    achievement_id: int
    poster_missing: str | None = Field(
        description="没有海报的原因（如未安装中文字体）；为 null 时海报已随喜报发出"
    )
    total: int
    sent: int
    failed: int
    pending: int
    awaiting_confirmation: int = Field(description="客户群群发已创建，等待群主在企业微信里确认")
    groups: list[GroupProgressOut]


class _Brief(NamedTuple):
    """What a listed achievement says of its broadcast (not the poster's bytes)."""

    id: int
    poster_missing: str | None


async def _briefs(session: AsyncSession, achievement_ids: list[int]) -> dict[int, _Brief]:
    """The broadcasts of these achievements, by achievement id, in one query."""
    if not achievement_ids:
        return {}
    rows = await session.execute(
        select(Broadcast.achievement_id, Broadcast.id, Broadcast.poster_missing).where(
            Broadcast.achievement_id.in_(achievement_ids)
        )
    )
    return {achievement: _Brief(id, missing) for achievement, id, missing in rows}


def _out(achievement: Achievement, broadcast: Broadcast | _Brief | None) -> AchievementOut:
    return AchievementOut(
        id=achievement.id,
        member_id=achievement.member_id,
        cohort_id=achievement.cohort_id,
        title=achievement.title,
        detail=achievement.detail,
        status=achievement.status,
        source=achievement.source,
        group_ids=achievement.group_ids,
        created_by=achievement.created_by,
        created_at=achievement.created_at,
        approved_by=achievement.approved_by,
        approved_at=achievement.approved_at,
        broadcast_id=broadcast.id if broadcast else None,
        poster_missing=broadcast.poster_missing if broadcast else None,
    )


@router.post(
    "/achievements",
    status_code=201,
    summary="登记喜报并发送",
    description="保存学员成果，生成海报，并通过发件箱发到学员所在期次的每个群（或 `group_ids`）。"
    "答复里的 `broadcast_id` 用于 `GET /broadcasts/{id}` 查看进度。服务器无法生成海报（未安装"
    "中文字体）时喜报照常以文字发出，`poster_missing` 说明原因。",
    responses=ERRORS_422 | ERRORS_409,
)
async def create_achievement(
    body: AchievementIn, session: AdminSessionDep, actor: ActorDep, runtime: RuntimeDep
) -> AchievementOut:
    achievement, broadcast = await service.record_achievement(
        session=session,
        member_id=body.member_id,
        title=body.title,
        detail=body.detail,
        group_ids=body.group_ids,
        actor=actor,
        now=runtime.clock.now(),
        default_tz=runtime.settings.campbot_timezone,
        routing=runtime.extensions.routing,
    )
    return _out(achievement, broadcast)


@router.get(
    "/achievements", summary="喜报列表", description="`status=pending`：学员提交、待审核的。"
)
async def list_achievements(
    session: AdminSessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
    cohort_id: CohortQuery = None,
    status: Annotated[AchievementStatus | None, Query(description="pending | approved")] = None,
) -> ItemsPage[AchievementOut]:
    query = select(Achievement).order_by(Achievement.id.desc())
    if cohort_id is not None:
        query = query.where(Achievement.cohort_id == cohort_id)
    if status is not None:
        query = query.where(Achievement.status == status)
    page = await page_of(query, session=session, limit=limit, offset=offset)
    briefs = await _briefs(session, [a.id for a in page.items])
    items = [_out(a, briefs.get(a.id)) for a in page.items]
    return ItemsPage(items=items, total=page.total, limit=limit, offset=offset)


@router.get("/achievements/{achievement_id}", summary="查看喜报", responses=ERRORS_404)
async def get_achievement(achievement_id: IdPath, session: AdminSessionDep) -> AchievementOut:
    achievement = await get_or_404(Achievement, achievement_id, session=session, what="喜报")
    return _out(
        achievement, await progress.broadcast_of(session=session, achievement_id=achievement_id)
    )


@router.post(
    "/achievements/{achievement_id}/approve",
    summary="审核通过学员提交的喜报并发送",
    responses=ERRORS_404 | ERRORS_409 | ERRORS_422,
)
async def approve_achievement(
    achievement_id: IdPath,
    session: AdminSessionDep,
    actor: ActorDep,
    runtime: RuntimeDep,
    body: ApproveIn | None = None,
) -> AchievementOut:
    achievement, broadcast = await service.approve_achievement(
        session=session,
        achievement_id=achievement_id,
        group_ids=body.group_ids if body else None,
        actor=actor,
        now=runtime.clock.now(),
        default_tz=runtime.settings.campbot_timezone,
        routing=runtime.extensions.routing,
    )
    return _out(achievement, broadcast)


@router.get(
    "/achievements/certificates/{member_id}.png",
    summary="结营证书",
    description="学员所在期次（或 `cohort_id`）结营后，生成该学员的结营证书 PNG。",
    response_class=Response,
    responses=PNG | ERRORS_404 | ERRORS_409,
)
async def get_certificate(
    member_id: IdPath, session: AdminSessionDep, runtime: RuntimeDep, cohort_id: CohortQuery = None
) -> Response:
    png = await certificate.certificate_png(
        session=session, member_id=member_id, cohort_id=cohort_id, now=runtime.clock.now()
    )
    return Response(png, media_type="image/png")


@router.get(
    "/broadcasts/{broadcast_id}",
    summary="喜报发送进度",
    description="按群统计：`sent` 已送达，`failed` 失败（原因见 groups[].error），`pending` "
    "排队或发送中，`awaiting_confirmation` 客户群群发等待群主确认；total 为四者之和。",
    responses=ERRORS_404,
)
async def get_broadcast(broadcast_id: IdPath, session: AdminSessionDep) -> BroadcastOut:
    p = await progress.progress(session=session, broadcast_id=broadcast_id)
    return BroadcastOut(
        id=p.broadcast_id,
        achievement_id=p.achievement_id,
        poster_missing=p.poster_missing,
        total=p.total,
        sent=p.sent,
        failed=p.failed,
        pending=p.pending,
        awaiting_confirmation=p.awaiting_confirmation,
        groups=[
            GroupProgressOut(
                group_id=g.group_id,
                group_name=g.group_name,
                channel=g.channel,
                status=g.status,
                error=g.error,
            )
            for g in p.groups
        ],
    )


@router.get(
    "/broadcasts/{broadcast_id}/poster.png",
    summary="喜报海报",
    response_class=Response,
    responses=PNG | ERRORS_404,
)
async def get_poster(broadcast_id: IdPath, session: AdminSessionDep) -> Response:
    broadcast = await get_or_404(Broadcast, broadcast_id, session=session, what="喜报发送")
    if broadcast.poster is None:
        raise NotFound(f"这条喜报没有海报，已以文字发出：{broadcast.poster_missing or '未生成'}")
    return Response(broadcast.poster, media_type="image/png")
