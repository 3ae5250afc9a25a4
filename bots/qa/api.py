"""`/admin/api/qa-rules`, `/admin/api/qa/unanswered`: Q&A rules, questions nothing answered."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from sqlalchemy import func, select

from app.admin.common import get_or_404
from app.admin.errors import InvalidInput, NotFound
from app.api.admin.deps import ActorDep, AdminSessionDep, admin_resource_router
from app.api.admin.fields import CohortQuery, CohortRef, IdPath, Limit, Offset, not_null
from app.api.admin.schemas import ERRORS_404, ERRORS_422, ItemsPage
from app.deps import RuntimeDep
from bots.qa import service
from bots.qa.matcher import Mode
from bots.qa.models import QaRule

router = admin_resource_router("", "qa")


def _no_control(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("不能包含换行、制表符等控制字符（正则里请写 \\n、\\t）")
    return value


def _one_line(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("不能包含换行、制表符等控制字符")
    return value


def _no_nul(value: str) -> str:
    # A reply may span lines; other control characters (NUL above all: PostgreSQL refuses
    # it, a 500) never belong in a WeCom message.
    if any((ord(c) < 32 and c not in "\n\r\t") or ord(c) == 127 for c in value):
        raise ValueError("不能包含控制字符")
    return value


Pattern = Annotated[
    str, StringConstraints(min_length=1, max_length=200), AfterValidator(_no_control)
]
Patterns = Annotated[list[Pattern], Field(min_length=1, max_length=50)]
ReplyText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
    AfterValidator(_no_nul),
]
ScriptKey = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_one_line),
]
Question = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_one_line),
]
Priority = Annotated[int, Field(ge=-10_000, le=10_000, description="越小越先回答")]
Cooldown = Annotated[int, Field(ge=0, le=7 * 86400, description="同一会话内再次回答的间隔（秒）")]


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patterns: Patterns = Field(examples=[["怎么退款", "退费"]])
    mode: Mode = Field(description="exact 整句相同 | contains 包含关键词 | regex 正则")
    reply: ReplyText | None = Field(default=None, description="回复文字（与 script_key 二选一）")
    script_key: ScriptKey | None = Field(default=None, description="用话术库里的话术回复")
    question: Question | None = Field(default=None, description="H5 常见问题里显示的问题")
    priority: Priority = 100
    block: bool = Field(default=True, description="回答后不再尝试后面的规则")
    cohort_id: CohortRef | None = Field(default=None, description="只对这一期的学员生效")
    group_id: CohortRef | None = Field(default=None, description="只对这个群的成员生效")
    cooldown_s: Cooldown = 0
    enabled: bool = True


class RulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patterns: Patterns | None = None
    mode: Mode | None = None
    reply: ReplyText | None = None
    script_key: ScriptKey | None = None
    question: Question | None = None
    priority: Priority | None = None
    block: bool | None = None
    cohort_id: CohortRef | None = None
    group_id: CohortRef | None = None
    cooldown_s: Cooldown | None = None
    enabled: bool | None = None

    # reply/script_key/question/scope may be cleared with null; the rest must have a value.
    _present_means_set = field_validator(
        "patterns", "mode", "priority", "block", "cooldown_s", "enabled", mode="before"
    )(not_null)


class RuleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    patterns: list[str]
    mode: str
    reply: str | None
    script_key: str | None
    question: str | None
    priority: int
    block: bool
    cohort_id: int | None
    group_id: int | None
    cooldown_s: int
    enabled: bool
    hits: int = Field(description="回答过多少次")
    pattern_error: str | None = Field(
        default=None,
        description="正则不能用的原因（新引擎 RE2 之前保存的旧规则）：该正则不参与匹配，请修改",
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, rule: QaRule) -> RuleOut:
        out = cls.model_validate(rule)
        out.pattern_error = service.pattern_error(rule)
        return out


class UnansweredOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    normalized: str = Field(description="归一化后的问题（去空格、标点，小写）")
    example: str = Field(description="第一次被问到时的原文")
    count: int
    first_seen_at: datetime
    last_seen_at: datetime


@router.post(
    "/qa-rules",
    status_code=201,
    summary="创建问答规则",
    description=(
        "保存时校验正则（RE2 引擎，线性时间）：写法错误、或用了它不支持的写法"
        "（反向引用、前瞻后顾、占有量词、\\b 等）的正则返回 422 并说明原因。"
    ),
    responses=ERRORS_422,
)
async def create_rule(
    body: RuleIn, session: AdminSessionDep, actor: ActorDep, runtime: RuntimeDep
) -> RuleOut:
    try:
        rule = await service.create_rule(
            session=session, fields=body.model_dump(), now=runtime.clock.now(), actor=actor
        )
    except service.RuleProblem as problem:
        raise InvalidInput(problem.field, problem.message) from None
    return RuleOut.of(rule)


@router.get("/qa-rules", summary="问答规则列表")
async def list_rules(
    session: AdminSessionDep,
    limit: Limit = 50,
    offset: Offset = 0,
    cohort_id: CohortQuery = None,
    mode: Annotated[Mode | None, Query(description="按匹配方式筛选")] = None,
) -> ItemsPage[RuleOut]:
    query = select(QaRule).order_by(QaRule.priority, QaRule.id)
    if cohort_id is not None:
        query = query.where(QaRule.cohort_id == cohort_id)
    if mode is not None:
        query = query.where(QaRule.mode == mode)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = (await session.execute(query.limit(limit).offset(offset))).scalars().all()
    items = [RuleOut.of(r) for r in rows]
    return ItemsPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/qa-rules/{rule_id}", summary="查看问答规则", responses=ERRORS_404)
async def get_rule(rule_id: IdPath, session: AdminSessionDep) -> RuleOut:
    return RuleOut.of(await get_or_404(QaRule, rule_id, session=session, what="问答规则"))


@router.patch("/qa-rules/{rule_id}", summary="修改问答规则", responses=ERRORS_404 | ERRORS_422)
async def update_rule(
    rule_id: IdPath,
    body: RulePatch,
    session: AdminSessionDep,
    actor: ActorDep,
    runtime: RuntimeDep,
) -> RuleOut:
    rule = await get_or_404(QaRule, rule_id, session=session, what="问答规则", lock=True)
    try:
        await service.update_rule(
            session=session,
            rule=rule,
            changes=body.model_dump(exclude_unset=True),
            actor=actor,
            now=runtime.clock.now(),
        )
    except service.RuleProblem as problem:
        raise InvalidInput(problem.field, problem.message) from None
    return RuleOut.of(rule)


@router.delete(
    "/qa-rules/{rule_id}", status_code=204, summary="删除问答规则", responses=ERRORS_404
)
async def delete_rule(
    rule_id: IdPath, session: AdminSessionDep, actor: ActorDep, runtime: RuntimeDep
) -> Response:
    rule = await get_or_404(QaRule, rule_id, session=session, what="问答规则")
    await service.delete_rule(session=session, rule=rule, actor=actor, now=runtime.clock.now())
    return Response(status_code=204)


@router.get(
    "/qa/unanswered",
    summary="未解答的问题",
    description="没有规则匹配的问题，按归一化文本合并计数，问得最多的在前：据此补充话术库。",
)
async def list_unanswered(
    session: AdminSessionDep, limit: Limit = 50, offset: Offset = 0
) -> ItemsPage[UnansweredOut]:
    rows, total = await service.list_unanswered(session=session, limit=limit, offset=offset)
    items = [UnansweredOut.model_validate(r) for r in rows]
    return ItemsPage(items=items, total=total, limit=limit, offset=offset)


@router.delete(
    "/qa/unanswered/{item_id}", status_code=204, summary="忽略未解答问题", responses=ERRORS_404
)
async def dismiss_unanswered(item_id: IdPath, session: AdminSessionDep) -> Response:
    if not await service.dismiss_unanswered(session=session, item_id=item_id):
        raise NotFound(f"未解答问题 {item_id} 不存在。")
    return Response(status_code=204)
