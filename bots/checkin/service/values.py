"""What the check-in service answers with (and refuses with), and its limits."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

from bots.checkin.models import CheckinEntry, EntryKind, EntryStatus


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


def is_checkin_text(text: str) -> bool:
    """A member's text to the app that is a check-in (`打卡 …`), not a question."""
    return CHECKIN_TEXT.match(text) is not None


def makeup_window(total_days: int, today: int, window: int) -> tuple[int, int]:
    """(first, last) past days a 补卡 may fill now; first > last when none."""
    return max(0, today - window), min(today - 1, total_days)


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
