"""Check-in services: keyword-only functions over a session; handlers and views stay thin.

CONTRACT (shared by the H5 views, the app 1:1 handler, reminders, stats and the demo):
the names and fields below are relied on elsewhere; add, do not rename.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bots.checkin.models import EntryKind, EntryStatus


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
    """Everything the personal H5 page shows, for one member, now."""

    member_id: int
    member_name: str
    cohort_id: int
    cohort_name: str
    camp_name: str
    camp_day: CampDay
    today_task: str | None  # the day's task script, rendered for this member
    checkin: EntryView | None  # today's check-in entry, if any
    homework: EntryView | None  # today's homework entry, if any
    standing: Standing
    leaderboard: tuple[LeaderRow, ...]
    makeup_days: tuple[int, ...]  # past days that 补卡 may still fill
    leave_left: int
    history: dict[int, EntryStatus] = field(default_factory=dict)  # day -> check-in status


@dataclass(frozen=True, slots=True)
class SubmitResult:
    entry: EntryView
    created: bool  # False when it edited the same day's entry
    standing: Standing
    milestone_bonus: int = 0  # points a milestone reached by this submission added


async def camp_day(*, session: AsyncSession, cohort_id: int, now: datetime) -> CampDay:
    raise NotImplementedError


async def member_cohort(*, session: AsyncSession, member_id: int) -> int | None:
    """The member's current cohort id (latest joined), or None."""
    raise NotImplementedError


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
    raise NotImplementedError


async def take_leave(
    *, session: AsyncSession, member_id: int, now: datetime, day: int | None = None
) -> SubmitResult:
    raise NotImplementedError


async def member_page(*, session: AsyncSession, member_id: int, now: datetime) -> MemberPage:
    raise NotImplementedError


async def leaderboard(
    *, session: AsyncSession, cohort_id: int, limit: int = 10, group_id: int | None = None
) -> tuple[LeaderRow, ...]:
    raise NotImplementedError


async def not_checked_in(*, session: AsyncSession, cohort_id: int, now: datetime) -> list[int]:
    """Member ids of the cohort's active members with no check-in (nor leave) today."""
    raise NotImplementedError
