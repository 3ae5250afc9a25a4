"""「测试一个问题」: which rules a question matches, which one answers and why — by the same
matcher and the same order members get (`bots.qa.matching.match`, `bots.qa.answer.Asker`);
cooldowns are not counted, nothing is recorded."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Cohort
from bots.qa import matching, service
from bots.qa.matcher import Matcher, Mode, RuleSpec, normalize
from bots.qa.models import QaRule


@dataclass(frozen=True, slots=True)
class Hit:
    rule: QaRule
    pattern: str | None  # the pattern that matched
    why: str  # in Chinese
    answers: bool  # False: an earlier rule answered and blocked the rest


@dataclass(frozen=True, slots=True)
class Explanation:
    question: str
    normalized: str
    hits: list[Hit]
    answer: str | None  # what the member would get (None: nothing answers)


def _matched_pattern(rule: RuleSpec, question: str) -> str | None:
    for pattern in rule.patterns:
        single = RuleSpec(rule.id, rule.mode, (pattern,))
        if Matcher([single]).match(question):
            return pattern
    return None


def _why(mode: Mode, pattern: str | None) -> str:
    if mode == Mode.EXACT:
        return f"问题（去掉空格和标点后）与「{pattern}」整句相同"
    if mode == Mode.CONTAINS:
        return f"问题里包含关键词「{pattern}」"
    return f"正则「{pattern}」匹配到了问题"


async def explain(
    *, session: AsyncSession, question: str, cohort_id: int | None, group_id: int | None
) -> Explanation:
    """As a member of `cohort_id` / in `group_id` (None: neither) would be answered."""

    def allows(rule: RuleSpec) -> bool:
        if rule.cohort_id is not None:
            return rule.cohort_id == cohort_id
        if rule.group_id is not None:
            return rule.group_id == group_id
        return True

    matched = await matching.match(session=session, question=question, allow=allows)
    rules = {
        r.id: r
        for r in await session.scalars(
            select(QaRule).where(QaRule.id.in_([m.id for m in matched]))
        )
    }
    patterns = await asyncio.to_thread(lambda: [_matched_pattern(m, question) for m in matched])
    hits, blocked, answer = [], False, None
    for spec, pattern in zip(matched, patterns, strict=True):
        rule = rules[spec.id]
        hits.append(Hit(rule, pattern, _why(spec.mode, pattern), not blocked))
        if not blocked and answer is None:
            cohort = await session.get(Cohort, cohort_id) if cohort_id is not None else None
            answer = await service.answer_text(session, rule, cohort)
        blocked = blocked or rule.block
    return Explanation(question, normalize(question), hits, answer)
