"""`/admin/api/cohorts/{id}/checkin-rules`: operators read and edit a cohort's check-in rules.

GET answers the rules in force (the defaults for a cohort that has no row: `customized`
false). PUT sets the fields it names and keeps the others, audits before → after, and
recomputes the cohort's scores (milestone and 全勤 bonuses follow the new rules).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import time
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.admin.audit import AuditTrail
from app.admin.common import get_or_404
from app.admin.models import Cohort
from app.api.admin.deps import ActorDep, AdminSessionDep, admin_resource_router
from app.api.admin.fields import IdPath
from app.api.admin.schemas import ERRORS_404, ERRORS_422
from app.deps import RuntimeDep
from bots.checkin import service
from bots.checkin.models import CheckinRule
from bots.checkin.rules import RuleSet, as_json, load_rules, save_rules

router = admin_resource_router("/cohorts", "checkin-rules")
AUDIT = AuditTrail("checkin-rules")

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


def _out(cohort_id: int, rules: RuleSet, *, customized: bool) -> CheckinRulesOut:
    return CheckinRulesOut.model_validate(
        {"cohort_id": cohort_id, "customized": customized, **as_json(rules)}
    )


def _apply(rules: RuleSet, body: CheckinRulesIn) -> RuleSet:
    changes: dict[str, object] = body.model_dump(exclude_none=True)
    boundary = changes.pop("day_boundary", None)
    if isinstance(boundary, str):
        hour, minute = boundary.split(":")
        changes["day_boundary"] = time(int(hour), int(minute))
    return replace(rules, **changes)  # type: ignore[arg-type]


@router.get("/{cohort_id}/checkin-rules", summary="查看期次的打卡规则", responses=ERRORS_404)
async def get_rules(cohort_id: IdPath, session: AdminSessionDep) -> CheckinRulesOut:
    await get_or_404(Cohort, cohort_id, session=session, what="训练营期次")
    customized = await session.get(CheckinRule, cohort_id) is not None
    rules = await load_rules(session=session, cohort_id=cohort_id)
    return _out(cohort_id, rules, customized=customized)


@router.put(
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
    now = runtime.clock.now()
    await get_or_404(Cohort, cohort_id, session=session, what="训练营期次", lock=True)
    before = await load_rules(session=session, cohort_id=cohort_id)
    after = _apply(before, body)
    await save_rules(session=session, cohort_id=cohort_id, rules=after, now=now)
    old, new = as_json(before), as_json(after)
    await AUDIT.record(
        "update", cohort_id, session=session, actor=actor, now=now, before=old, after=new
    )
    await service.recompute_cohort(session=session, cohort_id=cohort_id, now=now)
    return _out(cohort_id, after, customized=True)
