"""Check-in services: keyword-only functions over a session; handlers and views stay thin.

CONTRACT (shared by the H5 views, the app 1:1 handler, reminders, stats and the demo):
the names and fields below are relied on elsewhere; add, do not rename.

The rules (per cohort, `bots.checkin.rules.RuleSet`; the counting in `bots.checkin.scoring`):
- Camp day 0 is 开营 (`start_date` in the cohort's time zone); a day runs from the rule's
  `day_boundary` (04:00) to the next day's. Check-in is open on days 0..cohort.days.
- Submitting again for the same day and kind edits the entry (text, images): one row,
  points once. 补卡 (a past `day`) is allowed `makeup_days` back and earns
  `checkin_points - makeup_cost` (≥ 0); homework for a past day follows the same window and
  earns its full points. 请假 (today, or a past day in the 补卡 window, at most
  `leave_limit` per cohort) pauses the streak; a check-in later on that day replaces it.
- Every change recomputes the member's `MemberScore` in the same transaction.

Functions flush but never commit: the caller owns the transaction.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Cohort, CohortMember
from app.models import GroupMembership, Member, MemberStatus
from bots.checkin import store
from bots.checkin.models import CheckinEntry, CheckinRule, EntryKind, EntryStatus, MemberScore
from bots.checkin.rules import RuleSet, date_of, day_index, load_rules, rule_set
from bots.checkin.scoring import current_streak, milestone_bonus


class CheckinError(Exception):
    """A submission refused; `message` is Chinese, shown to the student as is."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True, slots=True)
class CampDay:
    """Where a moment falls in a cohort: day 0 = 开营; None before day 0 or after the end."""

    cohort_id: int
    day: int | None
    date: date | None  # the calendar date of that camp day (cohort time zone)
    total_days: int


@dataclass(frozen=True, slots=True)
class EntryView:
    day: int
    kind: EntryKind
    status: EntryStatus
    text: str
    images: tuple[str, ...]  # storage keys
    points: int
    submitted_at: datetime
    updated_at: datetime
    score: int | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Standing:
    points: int
    streak: int  # current streak as of today (0 when broken)
    best_streak: int
    checked_days: int
    homework_days: int
    rank: int  # 1-based, ties share a rank
    cohort_size: int


@dataclass(frozen=True, slots=True)
class LeaderRow:
    rank: int
    member_id: int
    name: str  # display name (同学 when unknown)
    points: int
    streak: int


@dataclass(frozen=True, slots=True)
class MemberPage:
    """What the personal H5 page shows of check-ins, for one member, now (the student page,
    `bots.student_page`, adds today's task)."""

    member_id: int
    member_name: str
    cohort_id: int
    cohort_name: str
    camp_name: str
    camp_day: CampDay
    checkin: EntryView | None  # today's check-in entry, if any
    homework: EntryView | None  # today's homework entry, if any
    standing: Standing
    leaderboard: tuple[LeaderRow, ...]
    makeup_days: tuple[int, ...]  # past days that 补卡 may still fill
    leave_left: int
    timezone: str  # the cohort's IANA zone ("" when it has none)
    start_date: date  # the cohort's 开营 date (camp day 0)
    channel_state: str  # the cohort's 渠道 State (its own scripts are keyed by it)
    history: dict[int, EntryStatus] = field(default_factory=dict)  # day -> check-in status


@dataclass(frozen=True, slots=True)
class SubmitResult:
    entry: EntryView
    created: bool  # False when it edited the same day's entry
    standing: Standing
    milestone_bonus: int = 0  # points a milestone reached by this submission added


# `打卡` first, then the end or a separator: "打卡 今天读完第三章", "打卡：…"; not "打卡率多少".
CHECKIN_TEXT = re.compile(r"^\s*打卡(?:$|[\s:：,，。.!！]+)(?P<text>.*)", re.DOTALL)
MAX_IMAGES = 9
MAX_TEXT = 2000  # characters; a diary, not an essay upload
FALLBACK_NAME = "同学"


@dataclass(frozen=True, slots=True)
class _Where:
    """A member's cohort, its rules and today's unclamped day index."""

    member: Member
    cohort: Cohort
    rules: RuleSet
    today: int
    score: MemberScore | None = None  # as read with the rest, unlocked (None: no entry yet)

    @property
    def open_today(self) -> bool:
        return 0 <= self.today <= self.cohort.days


def _latest_cohort_id(member_id: Any) -> Any:
    return (
        select(CohortMember.cohort_id)
        .where(CohortMember.member_id == member_id)
        .order_by(CohortMember.joined_at.desc(), CohortMember.id.desc())
        .limit(1)
        .scalar_subquery()
    )


# The member, their current cohort (as `member_cohort` picks it), its rules row and the
# member's score row there, in one statement: every page view and submission starts here.
# Built once (the hot path then skips building it and computing its cache key); the member
# id is a bound parameter.
_WHERE = (
    select(Member, Cohort, CheckinRule, MemberScore)
    .select_from(Member)
    .outerjoin(Cohort, Cohort.id == _latest_cohort_id(bindparam("member_id")))
    .outerjoin(CheckinRule, CheckinRule.cohort_id == Cohort.id)
    .outerjoin(
        MemberScore,
        (MemberScore.member_id == Member.id) & (MemberScore.cohort_id == Cohort.id),
    )
    .where(Member.id == bindparam("member_id"))
)


async def _where(session: AsyncSession, member_id: int, now: datetime) -> _Where:
    row = (await session.execute(_WHERE, {"member_id": member_id})).first()
    if row is None or row[1] is None:
        raise CheckinError("你还没有加入训练营，暂时不能打卡。")
    member, cohort, rules = row[0], row[1], rule_set(row[2])
    today = day_index(cohort, now=now, boundary=rules.day_boundary)
    return _Where(member, cohort, rules, today, score=row[3])


def is_checkin_text(text: str) -> bool:
    """A member's text to the app that is a check-in (`打卡 …`), not a question."""
    return CHECKIN_TEXT.match(text) is not None


def _camp_day(cohort: Cohort, today: int) -> CampDay:
    inside = 0 <= today <= cohort.days
    return CampDay(
        cohort_id=cohort.id,
        day=today if inside else None,
        date=date_of(cohort, today) if inside else None,
        total_days=cohort.days,
    )


async def camp_day(*, session: AsyncSession, cohort_id: int, now: datetime) -> CampDay:
    cohort = await session.get(Cohort, cohort_id)
    if cohort is None:
        raise CheckinError("这个训练营期次不存在。")
    rules = await load_rules(session=session, cohort_id=cohort_id)
    return _camp_day(cohort, day_index(cohort, now=now, boundary=rules.day_boundary))


async def member_cohort(*, session: AsyncSession, member_id: int) -> int | None:
    """The member's current cohort id (latest joined), or None."""
    return await session.scalar(select(_latest_cohort_id(member_id)))


def _target_day(where: _Where, day: int | None) -> tuple[int, EntryStatus]:
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


def _window_message(where: _Where, day: int) -> str:
    window = where.rules.makeup_days
    if window <= 0:
        return "本期不支持补卡，只能打当天的卡。"
    low, high = makeup_window(where.cohort.days, where.today, window)
    span = f"第 {low} 天" if low == high else f"第 {low}–{high} 天"
    return f"只能补最近 {window} 天的卡（现在可补{span}），第 {day} 天已经过了补卡时间。"


def makeup_window(total_days: int, today: int, window: int) -> tuple[int, int]:
    """(first, last) past days a 补卡 may fill now; first > last when none."""
    return max(0, today - window), min(today - 1, total_days)


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
    where = await _where(session, member_id, now)
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
    where: _Where,
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
    where: _Where,
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
        standing=await _standing(session, where, score),
        milestone_bonus=max(0, bonus),
    )


async def take_leave(
    *, session: AsyncSession, member_id: int, now: datetime, day: int | None = None
) -> SubmitResult:
    """请假 for today (or a past day within the 补卡 window): pauses the streak.

    Taking leave again for the same day changes nothing (created=False); a day already
    checked in, or no leave left, is a CheckinError.
    """
    where = await _where(session, member_id, now)
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


def entry_view(entry: CheckinEntry) -> EntryView:
    return EntryView(
        day=entry.day,
        kind=EntryKind(entry.kind),
        status=EntryStatus(entry.status),
        text=entry.text,
        images=tuple(entry.images or ()),
        points=entry.points,
        submitted_at=entry.submitted_at,
        updated_at=entry.updated_at,
        score=entry.score,
        comment=entry.comment,
    )


async def _standing(session: AsyncSession, where: _Where, score: MemberScore | None) -> Standing:
    points = score.points if score is not None else 0
    streak = 0
    if score is not None:
        today = min(where.today, where.cohort.days + 1)
        streak = current_streak(streak=score.streak, streak_day=score.streak_day, today=today)
    rank, size = await store.rank_and_size(
        session=session, cohort_id=where.cohort.id, points=points
    )
    return Standing(
        points=points,
        streak=streak,
        best_streak=score.best_streak if score is not None else 0,
        checked_days=score.checked_days if score is not None else 0,
        homework_days=score.homework_days if score is not None else 0,
        rank=rank,
        cohort_size=size,
    )


async def standing(*, session: AsyncSession, member_id: int, now: datetime) -> Standing:
    """The member's streak, points and rank now (zeros before their first entry)."""
    where = await _where(session, member_id, now)
    score = where.score
    return await _standing(session, where, score)


async def member_page(*, session: AsyncSession, member_id: int, now: datetime) -> MemberPage:
    """The check-ins part of the personal page."""
    where = await _where(session, member_id, now)
    cohort = where.cohort
    entries = await store.entries_of(session=session, member_id=member_id, cohort_id=cohort.id)
    today_entries = {EntryKind(e.kind): e for e in entries if e.day == where.today}
    history = {e.day: EntryStatus(e.status) for e in entries if e.kind == EntryKind.CHECKIN}
    score = where.score
    current = await _standing(session, where, score)
    day = _camp_day(cohort, where.today)
    name = where.member.name or FALLBACK_NAME
    checkin = today_entries.get(EntryKind.CHECKIN)
    homework = today_entries.get(EntryKind.HOMEWORK)
    return MemberPage(
        member_id=member_id,
        member_name=name,
        cohort_id=cohort.id,
        cohort_name=cohort.name,
        camp_name=cohort.camp,
        camp_day=day,
        checkin=entry_view(checkin) if checkin is not None and day.day is not None else None,
        homework=entry_view(homework) if homework is not None and day.day is not None else None,
        standing=current,
        leaderboard=await _board(
            session, cohort.id, limit=10, group_id=None, today=min(where.today, cohort.days + 1)
        ),
        makeup_days=_open_makeup_days(where, history),
        leave_left=max(0, where.rules.leave_limit - _leaves(history)),
        history=history,
        timezone=cohort.timezone or "",
        start_date=cohort.start_date,
        channel_state=cohort.channel_state,
    )


def _leaves(history: dict[int, EntryStatus]) -> int:
    return sum(1 for status in history.values() if status == EntryStatus.LEAVE)


def _open_makeup_days(where: _Where, history: dict[int, EntryStatus]) -> tuple[int, ...]:
    low, high = makeup_window(where.cohort.days, where.today, where.rules.makeup_days)
    return tuple(d for d in range(low, high + 1) if d not in history)


async def leaderboard(
    *,
    session: AsyncSession,
    cohort_id: int,
    limit: int = 10,
    group_id: int | None = None,
    now: datetime | None = None,  # given: streaks as of now (a stored streak may be broken)
) -> tuple[LeaderRow, ...]:
    """The top `limit` by points (ties share a rank, then by member id); within one group's
    current members when `group_id` is given (ranks then count within the group)."""
    today = await _today_or_none(session, cohort_id, now)
    return await _board(session, cohort_id, limit=limit, group_id=group_id, today=today)


# Built once (see `_WHERE`): the leaderboard is on every page view.
_BOARD = (
    select(MemberScore, Member.name)
    .join(Member, Member.id == MemberScore.member_id)
    .where(MemberScore.cohort_id == bindparam("cohort_id"))
    .order_by(MemberScore.points.desc(), MemberScore.member_id)
    .limit(bindparam("limit"))
)
_GROUP_BOARD = _BOARD.where(
    exists().where(
        GroupMembership.group_id == bindparam("group_id"),
        GroupMembership.member_id == MemberScore.member_id,
        GroupMembership.left_at.is_(None),
    )
)


async def _board(
    session: AsyncSession, cohort_id: int, *, limit: int, group_id: int | None, today: int | None
) -> tuple[LeaderRow, ...]:
    params = {"cohort_id": cohort_id, "limit": limit, "group_id": group_id}
    statement = _BOARD if group_id is None else _GROUP_BOARD
    rows = (await session.execute(statement, params)).all()
    board: list[LeaderRow] = []
    for position, (score, name) in enumerate(rows, start=1):
        rank = board[-1].rank if board and board[-1].points == score.points else position
        streak = score.streak
        if today is not None:
            streak = current_streak(streak=score.streak, streak_day=score.streak_day, today=today)
        board.append(LeaderRow(rank, score.member_id, name or FALLBACK_NAME, score.points, streak))
    return tuple(board)


async def _today_or_none(
    session: AsyncSession, cohort_id: int, now: datetime | None
) -> int | None:
    if now is None:
        return None
    cohort = await session.get(Cohort, cohort_id)
    if cohort is None:
        return None
    rules = await load_rules(session=session, cohort_id=cohort_id)
    return min(day_index(cohort, now=now, boundary=rules.day_boundary), cohort.days + 1)


async def not_checked_in(*, session: AsyncSession, cohort_id: int, now: datetime) -> list[int]:
    """Member ids of the cohort's active members with no check-in (nor leave) today."""
    today = await _today_or_none(session, cohort_id, now)
    cohort = await session.get(Cohort, cohort_id)
    if today is None or cohort is None or not 0 <= today <= cohort.days:
        return []
    done = exists().where(
        and_(
            CheckinEntry.member_id == CohortMember.member_id,
            CheckinEntry.cohort_id == cohort_id,
            CheckinEntry.day == today,
            CheckinEntry.kind == EntryKind.CHECKIN,
        )
    )
    statement = (
        select(CohortMember.member_id)
        .join(Member, Member.id == CohortMember.member_id)
        .where(CohortMember.cohort_id == cohort_id, Member.status == MemberStatus.ACTIVE, ~done)
        .order_by(CohortMember.member_id)
    )
    return list((await session.execute(statement)).scalars())


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
