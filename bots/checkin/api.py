"""Homework review (`/admin/api/checkins`): list submissions, see their images, score and
comment them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path, Query, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.admin.errors import NotFound
from app.api.admin.deps import ActorDep, AdminSessionDep, admin_resource_router
from app.api.admin.fields import INT32_MAX, CohortQuery, IdPath, Limit, Offset
from app.api.admin.schemas import ERRORS_404, ERRORS_422, ItemsPage
from app.api.h5.deps import StorageDep
from app.deps import RuntimeDep
from app.storage import content_type_of
from bots.checkin import review as service
from bots.checkin.models import EntryKind, EntryStatus

router = admin_resource_router("", "checkins")

COMMENT_MAX = 500


class CheckinOut(BaseModel):
    id: int
    member_id: int
    member_name: str = Field(description="学员昵称（未知时为「同学」）")
    cohort_id: int
    day: int = Field(description="训练营第几天（开营日为第 0 天）")
    kind: EntryKind
    status: EntryStatus
    text: str
    images: list[str] = Field(description="图片地址（管理接口，需同样的 Bearer 令牌）")
    image_keys: list[str] = Field(description="图片在存储里的 key")
    points: int
    source: str
    submitted_at: datetime
    updated_at: datetime
    score: int | None = Field(description="作业分数（0–100），未批改为 null")
    comment: str | None
    reviewed_by: str | None
    reviewed_at: datetime | None
    notice_key: str | None = Field(
        default=None, description="批改后通知学员的消息（outbox key）；学员无法触达时为 null"
    )


def _no_control(value: str | None) -> str | None:
    # A comment may have line breaks; other control characters cannot reach WeCom cleanly.
    if value is not None and any(ord(c) < 32 and c not in "\n\r\t" for c in value):
        raise ValueError("不能包含控制字符")
    return value.strip() if value is not None else None


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: int = Field(ge=0, le=100, description="分数 0–100")
    comment: Annotated[
        str | None, Field(default=None, max_length=COMMENT_MAX), AfterValidator(_no_control)
    ] = Field(default=None, description="点评，最多 500 字，会发给学员并显示在学习页")


def _out(item: service.Submission, notice_key: str | None = None) -> CheckinOut:
    entry = item.entry
    keys = list(entry.images or [])
    return CheckinOut(
        id=entry.id,
        member_id=entry.member_id,
        member_name=item.member_name,
        cohort_id=entry.cohort_id,
        day=entry.day,
        kind=EntryKind(entry.kind),
        status=EntryStatus(entry.status),
        text=entry.text,
        images=[f"/admin/api/checkins/{entry.id}/images/{n}" for n in range(len(keys))],
        image_keys=keys,
        points=entry.points,
        source=entry.source,
        submitted_at=entry.submitted_at,
        updated_at=entry.updated_at,
        score=entry.score,
        comment=entry.comment,
        reviewed_by=entry.reviewed_by,
        reviewed_at=entry.reviewed_at,
        notice_key=notice_key,
    )


@router.get(
    "/checkins",
    summary="打卡与作业列表",
    description=(
        "按期次 `cohort_id`、第几天 `day`、类型 `kind`（checkin/homework）、"
        "是否已批改 `reviewed` 过滤；按提交时间从早到晚，方便助教依次批改。"
    ),
    responses=ERRORS_422,
)
async def list_checkins(
    session: AdminSessionDep,
    cohort_id: CohortQuery = None,
    day: Annotated[int | None, Query(ge=0, le=366, description="第几天")] = None,
    kind: Annotated[EntryKind | None, Query(description="类型")] = None,
    reviewed: Annotated[bool | None, Query(description="是否已批改")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> ItemsPage[CheckinOut]:
    page = await service.list_submissions(
        session=session,
        cohort_id=cohort_id,
        day=day,
        kind=kind,
        reviewed=reviewed,
        limit=limit,
        offset=offset,
    )
    items = [_out(item) for item in page.items]
    return ItemsPage(items=items, total=page.total, limit=limit, offset=offset)


@router.get("/checkins/{entry_id}", summary="查看打卡或作业", responses=ERRORS_404 | ERRORS_422)
async def get_checkin(entry_id: IdPath, session: AdminSessionDep) -> CheckinOut:
    return _out(await service.get_submission(session=session, entry_id=entry_id))


@router.get(
    "/checkins/{entry_id}/images/{n}",
    summary="查看提交的图片",
    description="第 n 张（从 0 开始）。",
    response_class=Response,
    responses=ERRORS_404 | ERRORS_422 | {200: {"content": {"image/*": {}}}},
)
async def get_checkin_image(
    entry_id: IdPath,
    n: Annotated[int, Path(ge=0, le=INT32_MAX, description="第几张，从 0 开始")],
    session: AdminSessionDep,
    storage: StorageDep,
) -> Response:
    item = await service.get_submission(session=session, entry_id=entry_id)
    keys = list(item.entry.images or [])
    if n >= len(keys):
        raise NotFound(f"打卡记录 {entry_id} 没有第 {n} 张图片（共 {len(keys)} 张）。")
    data = await storage.read(keys[n])
    if data is None:
        raise NotFound(f"图片 {keys[n]} 已不在存储里。")
    return Response(
        content=data,
        media_type=content_type_of(keys[n]),
        headers={"Cache-Control": "private, max-age=3600"},
    )


@router.post(
    "/checkins/{entry_id}/review",
    summary="批改作业",
    description=(
        "给作业打分（0–100）并写点评（最多 500 字）；记入审计日志。点评会显示在学员的学习页，"
        "并通过能触达学员的渠道发给他：内部成员走应用消息，外部学员由跟进员工单发（需员工确认）。"
        "再次批改会覆盖分数与点评，并再通知一次。只能批改作业，打卡记录返回 422。"
    ),
    responses=ERRORS_404 | ERRORS_422,
)
async def review_checkin(
    entry_id: IdPath,
    body: ReviewIn,
    session: AdminSessionDep,
    actor: ActorDep,
    runtime: RuntimeDep,
) -> CheckinOut:
    done = await service.review(
        session=session,
        actor=actor,
        entry_id=entry_id,
        score=body.score,
        comment=body.comment,
        now=runtime.clock.now(),
        public_base_url=runtime.settings.public_base_url,
    )
    return _out(done.submission, done.notice_key)
