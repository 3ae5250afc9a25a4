"""Q&A rules: saving them (validated, versioned), the questions nothing answered, and the
FAQ search of the H5 page. The per-process matcher is `bots.qa.matching`."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import Executable, bindparam, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.audit import AuditTrail
from app.admin.common import Actor, snapshot
from app.admin.models import Cohort
from app.commit_hooks import call_after_commit
from app.db import dialect_insert
from app.models import Group
from bots.qa.matcher import Mode, normalize
from bots.qa.matching import VERSION_ROW, forget_matcher, match
from bots.qa.models import QaRule, QaRulesVersion, QaUnanswered
from bots.qa.regex import UnsafeRegex, compile_regex
from scripts_library.errors import RenderError, ScriptNotFoundError
from scripts_library.render import render
from scripts_library.service import get_script
from scripts_library.variables import RenderContext

logger = logging.getLogger(__name__)
RULE_FIELDS = (
    "patterns", "mode", "reply", "script_key", "question", "priority", "block",
    "cohort_id", "group_id", "cooldown_s", "enabled",
)  # fmt: skip


class RuleProblem(Exception):
    """A field the rule cannot be saved with, and why (Chinese, for the 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# --- saving rules ---------------------------------------------------------------------------


def _check_patterns(patterns: Sequence[str], mode: str) -> None:
    for index, pattern in enumerate(patterns):
        where = f"patterns[{index}]"
        if mode == Mode.REGEX:
            try:
                compile_regex(pattern)
            except UnsafeRegex as exc:
                raise RuleProblem(where, str(exc)) from None
        elif not normalize(pattern):
            raise RuleProblem(where, "关键词去掉空格和标点后是空的，匹配不到任何问题。")


def pattern_error(rule: QaRule) -> str | None:
    """Why a stored regex rule's pattern is left out of matching (saved before RE2 was the
    engine), naming it as a save would; None when every pattern is in use."""
    if rule.mode != Mode.REGEX:
        return None
    try:
        _check_patterns(rule.patterns, rule.mode)
    except RuleProblem as problem:
        return f"{problem.field}：{problem.message}"
    return None


async def _check_refs(session: AsyncSession, rule: QaRule) -> None:
    if (rule.reply is None) == (rule.script_key is None):
        raise RuleProblem("reply", "reply（回复文字）和 script_key（话术）须填且只填一个。")
    if rule.script_key is not None:
        try:
            await get_script(session=session, key=rule.script_key)
        except ScriptNotFoundError:
            raise RuleProblem("script_key", f"话术库里没有「{rule.script_key}」。") from None
    if rule.cohort_id is not None and rule.group_id is not None:
        raise RuleProblem("group_id", "适用范围只能选一个：期次（cohort_id）或群（group_id）。")
    if rule.cohort_id is not None and await session.get(Cohort, rule.cohort_id) is None:
        raise RuleProblem("cohort_id", f"训练营期次 {rule.cohort_id} 不存在。")
    if rule.group_id is not None and await session.get(Group, rule.group_id) is None:
        raise RuleProblem("group_id", f"群 {rule.group_id} 不存在。")


async def _apply(
    session: AsyncSession, rule: QaRule, changes: Mapping[str, Any], *, now: datetime
) -> None:
    new_patterns = "patterns" in changes or ("mode" in changes and changes["mode"] != rule.mode)
    for name, value in changes.items():
        setattr(rule, name, value)
    if new_patterns:
        _check_patterns(rule.patterns, rule.mode)
    await _check_refs(session, rule)
    rule.updated_at = now
    await bump_version(session=session)


AUDIT = AuditTrail("qa-rules")


def audited(rule: QaRule) -> dict[str, object]:
    """A rule as the audit log keeps it (its hit counter is no edit)."""
    return snapshot(rule, exclude=("hits",))


async def create_rule(
    *,
    session: AsyncSession,
    fields: Mapping[str, Any],
    now: datetime,
    actor: Actor | None = None,
) -> QaRule:
    """Validate and add a rule (RuleProblem naming the field); the matchers see it at once.
    Audited under `actor` (None: not an operator's change)."""
    rule = QaRule(created_at=now, hits=0)
    defaults = {"priority": 100, "block": True, "cooldown_s": 0, "enabled": True}
    await _apply(session, rule, {**defaults, **fields, "mode": str(fields["mode"])}, now=now)
    session.add(rule)
    await session.flush()
    if actor is not None:
        after = audited(rule)
        await AUDIT.record("create", rule.id, session=session, actor=actor, now=now, after=after)
    return rule


async def update_rule(
    *, session: AsyncSession, rule: QaRule, changes: Mapping[str, Any], actor: Actor, now: datetime
) -> None:
    """Apply `changes` (RuleProblem naming the field), audited before → after."""
    before = audited(rule)
    if "mode" in changes:
        changes = {**changes, "mode": str(changes["mode"])}
    await _apply(session, rule, changes, now=now)
    await session.flush()
    after = audited(rule)
    await AUDIT.record(
        "update", rule.id, session=session, actor=actor, now=now, before=before, after=after
    )


async def delete_rule(*, session: AsyncSession, rule: QaRule, actor: Actor, now: datetime) -> None:
    before = audited(rule)
    await AUDIT.record("delete", rule.id, session=session, actor=actor, now=now, before=before)
    await session.delete(rule)
    await bump_version(session=session)


async def bump_version(*, session: AsyncSession) -> None:
    """Add one to the rules' version in the caller's transaction (row created on first use).
    This process forgets its matcher now and again once the save committed (a question in
    between may rebuild it from the old version), so `may_answer` says "may" until a
    question rebuilds it from the new one."""
    forget_matcher()
    call_after_commit(session, forget_matcher)
    insert = dialect_insert(session)
    statement = insert(QaRulesVersion).values(
        id=VERSION_ROW, version=1, epoch=secrets.token_hex(16)
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["id"], set_={"version": QaRulesVersion.version + 1}
        )
    )


# --- questions nothing answered -------------------------------------------------------------


def digest(normalized: str) -> str:
    return hashlib.sha256(normalized.encode()).hexdigest()


@cache
def _count_unanswered(insert: Callable[[Any], Any]) -> Executable:
    """The upsert counting a question, built once per dialect."""
    statement = insert(QaUnanswered).values(
        digest=bindparam("digest"),
        normalized=bindparam("normalized"),
        example=bindparam("example"),
        count=1,
        first_seen_at=bindparam("now"),
        last_seen_at=bindparam("now"),
    )
    excluded = statement.excluded
    return cast(
        Executable,
        statement.on_conflict_do_update(
            index_elements=["digest"],
            set_={"count": QaUnanswered.count + 1, "last_seen_at": excluded.last_seen_at},
        ),
    )


async def record_unanswered(*, session: AsyncSession, question: str, now: datetime) -> None:
    """Count the question once more under its normalized text (atomic upsert: concurrent
    askers each count)."""
    normalized = normalize(question)
    if not normalized:
        return
    params = {
        "digest": digest(normalized),
        "normalized": normalized[:1000],
        "example": question[:1000],
        "now": now,
    }
    await session.execute(_count_unanswered(dialect_insert(session)), params)


async def list_unanswered(
    *, session: AsyncSession, limit: int, offset: int
) -> tuple[list[QaUnanswered], int]:
    """Most asked first, then most recent."""
    total = await session.scalar(select(func.count()).select_from(QaUnanswered)) or 0
    rows = await session.execute(
        select(QaUnanswered)
        .order_by(QaUnanswered.count.desc(), QaUnanswered.last_seen_at.desc(), QaUnanswered.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows.scalars()), total


async def dismiss_unanswered(*, session: AsyncSession, item_id: int) -> bool:
    result = await session.execute(delete(QaUnanswered).where(QaUnanswered.id == item_id))
    return bool(getattr(result, "rowcount", 0))


async def count_hit(*, session: AsyncSession, rule_id: int) -> None:
    await session.execute(update(QaRule).where(QaRule.id == rule_id).values(hits=QaRule.hits + 1))


# --- FAQ search (the H5 page) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaqEntry:
    rule_id: int
    question: str
    answer: str


def _question_of(rule: QaRule) -> str | None:
    if rule.question:
        return rule.question
    return rule.patterns[0] if rule.mode != Mode.REGEX and rule.patterns else None


async def answer_text(session: AsyncSession, rule: QaRule, cohort: Cohort | None) -> str | None:
    if rule.reply is not None:
        return rule.reply
    try:
        script = await get_script(session=session, key=rule.script_key or "")
        context = RenderContext(
            cohort_name=cohort.name if cohort else None,
            camp_name=cohort.camp if cohort else None,
            total_days=cohort.days if cohort else None,
        )
        message = render(script, context)
    except (ScriptNotFoundError, RenderError) as exc:
        logger.info("FAQ: rule %s has no text to show: %s", rule.id, exc)
        return None
    return message.content or None


async def search_faq(
    *, session: AsyncSession, cohort_id: int | None, query: str, limit: int = 5
) -> list[FaqEntry]:
    """Question/answer pairs for the H5 FAQ: rules the query matches (answer order), then
    keyword rules whose question or keywords contain it; global rules and the cohort's."""
    key = normalize(query)
    if not key:
        return []
    matched = await match(
        session=session, question=query, allow=lambda r: r.cohort_id in (None, cohort_id)
    )
    hits = [r.id for r in matched]
    scope = or_(QaRule.cohort_id.is_(None), QaRule.cohort_id == cohort_id)
    rules = (
        await session.execute(
            select(QaRule)
            .where(QaRule.enabled, QaRule.group_id.is_(None), scope)
            .order_by(QaRule.priority, QaRule.id)
        )
    ).scalars()
    by_id = {r.id: r for r in rules}
    contains = [
        r.id
        for r in by_id.values()
        if any(key in normalize(text) for text in [r.question or "", *_keywords(r)])
    ]
    cohort = await session.get(Cohort, cohort_id) if cohort_id is not None else None
    found: list[FaqEntry] = []
    for rule_id in dict.fromkeys([*hits, *contains]):
        rule = by_id.get(rule_id)
        question = _question_of(rule) if rule is not None else None
        if rule is None or question is None:
            continue
        answer = await answer_text(session, rule, cohort)
        if answer is not None:
            found.append(FaqEntry(rule.id, question, answer))
        if len(found) >= limit:
            break
    return found


def _keywords(rule: QaRule) -> list[str]:
    return list(rule.patterns) if rule.mode != Mode.REGEX else []
