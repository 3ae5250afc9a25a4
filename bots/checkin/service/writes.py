"""Writes: check-ins and homework (same day again edits), 补卡, 请假, and the scores
recomputed with every change; a cohort's rules (audited), its scores all recomputed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.audit import AuditTrail
from app.admin.common import Actor, get_or_404
from app.admin.models import Cohort
from bots.checkin import store
from bots.checkin.models import CheckinEntry, EntryKind, EntryStatus, MemberScore
from bots.checkin.rules import RuleSet, as_json, date_of, day_index, load_rules, save_rules
from bots.checkin.scoring import milestone_bonus
from bots.checkin.service.place import Where, locate, standing_of
from bots.checkin.service.values import (
    MAX_IMAGES,
    MAX_TEXT,
    CheckinError,
    SubmitResult,
    entry_view,
    makeup_window,
)


def _target_day(where: Where, day: int | None) -> tuple[int, EntryStatus]:
    """The camp day a submission is for and whether it is a 补卡, or CheckinError."""
    cohort, today = where.cohort, where.today
    if day is None:
        if today < 0:
            start = date_of(cohort, 0)
            raise CheckinError(f"训练营 {start.month}月{start.day}日 开营，开营后再来打卡吧。")
        if today > cohort.days:
            raise CheckinError("本期训练营已经结束，不能再打卡了。", field="day")
        return today, EntryStatus.ON_TIME
    if day < 0 or day > cohort.days:
        raise CheckinError(f"第 {day} 天不在本期训练营里（第 0–{cohort.days} 天）。", field="day")
    if day > today:
        raise CheckinError(f"第 {day} 天还没到，不能提前打卡。", field="day")
    if day == today:
        return day, EntryStatus.ON_TIME
    if today - day > where.rules.makeup_days:
        raise CheckinError(_window_message(where, day), field="day")
    return day, EntryStatus.MAKEUP


def _window_message(where: Where, day: int) -> str:
    window = where.rules.makeup_days
    if window <= 0:
        return "本期不支持补卡，只能打当天的卡。"
    low, high = makeup_window(where.cohort.days, where.today, window)
    span = f"第 {low} 天" if low == high else f"第 {low}–{high} 天"
    return f"只能补最近 {window} 天的卡（现在可补{span}），第 {day} 天已经过了补卡时间。"


def _clean(text: str, images: Sequence[str]) -> tuple[str, list[str]]:
    text = (text or "").strip()
    keys = [key.strip() for key in images if key and key.strip()]
    if not text and not keys:
        raise CheckinError("请写点内容或上传图片再提交。", field="text")
    if len(text) > MAX_TEXT:
        raise CheckinError(f"内容太长了：最多 {MAX_TEXT} 字，现在 {len(text)} 字。", field="text")
    if len(keys) > MAX_IMAGES:
        raise CheckinError(
            f"最多上传 {MAX_IMAGES} 张图片，现在有 {len(keys)} 张。", field="images"
        )
    return text, keys


def _points(rules: RuleSet, kind: EntryKind, status: EntryStatus) -> int:
    if kind == EntryKind.HOMEWORK:
        return rules.homework_points
    if status == EntryStatus.LEAVE:
        return 0
    return rules.makeup_points if status == EntryStatus.MAKEUP else rules.checkin_points


async def submit(
    *,
    session: AsyncSession,
    member_id: int,
    kind: EntryKind,
    text: str,
    images: Sequence[str],
    now: datetime,
    day: int | None = None,  # None = today; a past day = 补卡
    source: str = "h5",
) -> SubmitResult:
    """Record a check-in or homework; the same day again edits it (points once).

    A check-in on a day marked 请假 replaces the leave (created=True: it now earns points).
    """
    kind = EntryKind(kind)
    where = await locate(session, member_id, now)
    target, status = _target_day(where, day)
    clean_text, keys = _clean(text, images)
    score = await store.lock_score(
        session=session, member_id=member_id, cohort_id=where.cohort.id, now=now
    )
    best_before = score.best_streak
    entry, created = await _upsert(
        session, where, kind, target, status, now, content=_Content(clean_text, keys, source)
    )
    return await _finish(session, where, entry, created, score, best_before, now)


@dataclass(frozen=True, slots=True)
class _Content:
    """What a submission writes into its entry (new or edited)."""

    text: str
    images: list[str]
    source: str


_LEAVE_CONTENT = _Content("", [], "h5")  # a new 请假 row: no text, no images


async def _upsert(
    session: AsyncSession,
    where: Where,
    kind: EntryKind,
    day: int,
    status: EntryStatus,
    now: datetime,
    *,
    content: _Content | None = None,  # None: an existing row's text and images stay
) -> tuple[CheckinEntry, bool]:
    member_id, cohort_id = where.member.id, where.cohort.id
    fresh = content or _LEAVE_CONTENT
    inserted = await store.insert_new_entry(
        session=session,
        values={
            "member_id": member_id,
            "cohort_id": cohort_id,
            "day": day,
            "kind": kind,
            "status": status,
            "points": _points(where.rules, kind, status),
            "text": fresh.text,
            "images": list(fresh.images),
            "source": fresh.source,
            "submitted_at": now,
            "updated_at": now,
        },
    )
    if inserted is not None:
        return inserted, True
    existing = await store.find_entry(
        session=session, member_id=member_id, cohort_id=cohort_id, day=day, kind=kind
    )
    assert existing is not None  # the row that made the insert do nothing
    if content is not None:
        existing.text, existing.images = content.text, list(content.images)
        existing.source, existing.updated_at = content.source, now
    if existing.status == EntryStatus.LEAVE and status != EntryStatus.LEAVE:
        existing.status, existing.points = status, _points(where.rules, kind, status)
        existing.submitted_at = now
        return existing, True
    return existing, False


async def _finish(
    session: AsyncSession,
    where: Where,
    entry: CheckinEntry,
    created: bool,
    score: MemberScore,
    best_before: int,
    now: datetime,
) -> SubmitResult:
    await session.flush()
    score, _ = await store.recompute(
        session=session,
        member_id=where.member.id,
        cohort_id=where.cohort.id,
        rules=where.rules,
        today=where.today,
        total_days=where.cohort.days,
        now=now,
        score=score,
    )
    bonus = milestone_bonus(score.best_streak, where.rules) - milestone_bonus(
        best_before, where.rules
    )
    return SubmitResult(
        entry=entry_view(entry),
        created=created,
        standing=await standing_of(session, where, score),
        milestone_bonus=max(0, bonus),
    )


async def take_leave(
    *, session: AsyncSession, member_id: int, now: datetime, day: int | None = None
) -> SubmitResult:
    """请假 for today (or a past day within the 补卡 window): pauses the streak.

    Taking leave again for the same day changes nothing (created=False); a day already
    checked in, or no leave left, is a CheckinError.
    """
    where = await locate(session, member_id, now)
    target, _ = _target_day(where, day)
    score = await store.lock_score(
        session=session, member_id=member_id, cohort_id=where.cohort.id, now=now
    )
    existing = await store.find_entry(
        session=session,
        member_id=member_id,
        cohort_id=where.cohort.id,
        day=target,
        kind=EntryKind.CHECKIN,
    )
    if existing is not None and existing.status != EntryStatus.LEAVE:
        raise CheckinError(f"第 {target} 天已经打过卡了，不用请假。", field="day")
    if existing is None:
        used = await store.count_leaves(
            session=session, member_id=member_id, cohort_id=where.cohort.id
        )
        if used >= where.rules.leave_limit:
            raise CheckinError(_no_leave_message(where.rules.leave_limit), field="day")
    entry, created = await _upsert(
        session, where, EntryKind.CHECKIN, target, EntryStatus.LEAVE, now
    )
    return await _finish(session, where, entry, created, score, score.best_streak, now)


def _no_leave_message(limit: int) -> str:
    if limit <= 0:
        return "本期训练营不支持请假。"
    return f"本期最多请假 {limit} 天，已经用完了。"


async def recompute_cohort(*, session: AsyncSession, cohort_id: int, now: datetime) -> int:
    """Recompute every score of the cohort (after its rules changed: milestones and 全勤
    follow the new rules; an entry keeps the points it earned). The number of members."""
    cohort = await session.get(Cohort, cohort_id)
    if cohort is None:
        return 0
    rules = await load_rules(session=session, cohort_id=cohort_id)
    today = day_index(cohort, now=now, boundary=rules.day_boundary)
    member_ids = (
        await session.execute(
            select(CheckinEntry.member_id).where(CheckinEntry.cohort_id == cohort_id).distinct()
        )
    ).scalars()
    count = 0
    for member_id in sorted(member_ids):
        await store.recompute(
            session=session,
            member_id=member_id,
            cohort_id=cohort_id,
            rules=rules,
            today=today,
            total_days=cohort.days,
            now=now,
        )
        count += 1
    return count


RULES_AUDIT = AuditTrail("checkin-rules")


async def update_rules(
    *,
    session: AsyncSession,
    cohort_id: int,
    changes: Mapping[str, object],
    actor: Actor,
    now: datetime,
) -> RuleSet:
    """Set the rules `changes` names (RuleSet fields, already checked) and keep the others;
    audited before → after; the cohort's scores recomputed (milestone and 全勤 bonuses follow
    the new rules). 404 for an unknown cohort."""
    await get_or_404(Cohort, cohort_id, session=session, what="训练营期次", lock=True)
    before = await load_rules(session=session, cohort_id=cohort_id)
    after = replace(before, **changes)  # type: ignore[arg-type]
    await save_rules(session=session, cohort_id=cohort_id, rules=after, now=now)
    old, new = as_json(before), as_json(after)
    await RULES_AUDIT.record(
        "update", cohort_id, session=session, actor=actor, now=now, before=old, after=new
    )
    await recompute_cohort(session=session, cohort_id=cohort_id, now=now)
    return after
