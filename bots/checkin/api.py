"""The check-in capability's admin routes.

Homework review (`/admin/api/checkins`): list submissions, see their images, score and
comment them.

Check-in rules (`/admin/api/cohorts/{id}/checkin-rules`): operators read and edit a cohort's
rules. GET answers the rules in force (the defaults for a cohort that has no row:
`customized` false). PUT sets the fields it names and keeps the others, audits before →
after, and recomputes the cohort's scores (milestone and 全勤 bonuses follow the new rules).
"""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Annotated

from fastapi import Path, Query, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from app.admin.errors import NotFound
from app.api.admin.deps import ActorDep, AdminSessionDep, admin_resource_router
from app.api.admin.fields import INT32_MAX, CohortQuery, IdPath, Limit, Offset
from app.api.admin.schemas import ERRORS_404, ERRORS_422, ItemsPage
from app.api.h5.deps import StorageDep
from app.deps import RuntimeDep
from app.storage import content_type_of
from bots.checkin import service
from bots.checkin.models import EntryKind, EntryStatus
from bots.checkin.rules import RuleSet, as_json

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


# --------------------------------------------------------------------------- rules

rules_router = admin_resource_router("/cohorts", "checkin-rules")

MAX_POINTS = 10_000
MAX_MILESTONES = 30
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
Points = Annotated[int, Field(ge=0, le=MAX_POINTS)]


class CheckinRulesIn(BaseModel):
    # A misspelt field ("makup_days") must be a 422, not a rule silently left unchanged.
    model_config = ConfigDict(extra="forbid")

    day_boundary: str | None = Field(
        default=None, examples=["04:00"], description="每天从几点算起（HH:MM，营地时间）"
    )
    makeup_days: int | None = Field(
        default=None, ge=0, le=366, description="可补卡的天数，0 = 不能补卡"
    )
    makeup_cost: Points | None = Field(default=None, description="补卡扣的积分")
    leave_limit: int | None = Field(default=None, ge=0, le=366, description="每期可请假天数")
    checkin_points: Points | None = None
    homework_points: Points | None = None
    milestones: dict[str, int] | None = Field(
        default=None, examples=[{"3": 20, "7": 50}], description="连续打卡 N 天奖励的积分"
    )
    full_attendance_points: Points | None = None

    @field_validator("day_boundary")
    @classmethod
    def _boundary(cls, value: str | None) -> str | None:
        if value is not None and not _HHMM.match(value):
            raise ValueError("时间格式应为 HH:MM（00:00–23:59），如 04:00")
        return value

    @field_validator("milestones")
    @classmethod
    def _milestones(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        if value is None:
            return None
        if len(value) > MAX_MILESTONES:
            raise ValueError(f"最多设置 {MAX_MILESTONES} 个连续打卡奖励")
        clean: dict[str, int] = {}
        for key, bonus in value.items():
            if not key.isascii() or not key.isdigit() or int(key) < 1 or int(key) > 366:
                raise ValueError(f'「{key}」不是连续打卡天数：键应为 1–366 的整数，如 "7"')
            if not 0 <= bonus <= MAX_POINTS:
                raise ValueError(f"「{key}」天的奖励应在 0–{MAX_POINTS} 积分之间")
            clean[str(int(key))] = bonus
        return clean


class CheckinRulesOut(BaseModel):
    cohort_id: int
    customized: bool  # false: no rules saved for this cohort, the defaults apply
    day_boundary: str
    makeup_days: int
    makeup_cost: int
    leave_limit: int
    checkin_points: int
    homework_points: int
    milestones: dict[str, int]
    full_attendance_points: int


def _rules_out(cohort_id: int, rules: RuleSet, *, customized: bool) -> CheckinRulesOut:
    return CheckinRulesOut.model_validate(
        {"cohort_id": cohort_id, "customized": customized, **as_json(rules)}
    )


def rules_changes(body: CheckinRulesIn) -> dict[str, object]:
    """The RuleSet fields the body names, `day_boundary` as a time."""
    changes: dict[str, object] = body.model_dump(exclude_none=True)
    boundary = changes.pop("day_boundary", None)
    if isinstance(boundary, str):
        hour, minute = boundary.split(":")
        changes["day_boundary"] = time(int(hour), int(minute))
    return changes


@rules_router.get("/{cohort_id}/checkin-rules", summary="查看期次的打卡规则", responses=ERRORS_404)
async def get_rules(cohort_id: IdPath, session: AdminSessionDep) -> CheckinRulesOut:
    rules, customized = await service.rules_in_force(session=session, cohort_id=cohort_id)
    return _rules_out(cohort_id, rules, customized=customized)


@rules_router.put(
    "/{cohort_id}/checkin-rules",
    summary="修改期次的打卡规则",
    description="只改请求里给出的字段，其余保持不变；保存后按新规则重算本期积分。",
    responses=ERRORS_404 | ERRORS_422,
)
async def put_rules(
    cohort_id: IdPath,
    body: CheckinRulesIn,
    session: AdminSessionDep,
    actor: ActorDep,
    runtime: RuntimeDep,
) -> CheckinRulesOut:
    rules = await service.update_rules(
        session=session,
        cohort_id=cohort_id,
        changes=rules_changes(body),
        actor=actor,
        now=runtime.clock.now(),
    )
    return _rules_out(cohort_id, rules, customized=True)
