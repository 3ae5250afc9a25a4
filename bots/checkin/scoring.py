"""Streaks and points from a member's entries: pure functions, recomputed on every change.

- A streak counts consecutive camp days with a check-in (on time or 补卡); a 请假 day is
  skipped (the streak pauses); a day with neither breaks it. Today, not done yet, does not
  break it: the current streak counts through yesterday until today is over.
- Day 0 (开营) counts like any other day for points and streaks, but 全勤 asks for days
  1..total_days only: students are still joining on 开营 day.
- Milestones: each key the best streak has reached adds its bonus, once per cohort.
- 全勤: a check-in on every day 1..total_days (a leave day is not attendance) adds
  `full_attendance_points` once — as soon as the last missing day is checked in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bots.checkin.models import EntryKind, EntryStatus
from bots.checkin.rules import RuleSet

ATTENDED = frozenset({EntryStatus.ON_TIME, EntryStatus.MAKEUP})
FIRST_FULL_ATTENDANCE_DAY = 1


@dataclass(frozen=True, slots=True)
class EntryFact:
    day: int
    kind: EntryKind
    status: EntryStatus
    points: int


@dataclass(frozen=True, slots=True)
class Tally:
    points: int
    entry_points: int
    milestone_bonus: int
    full_attendance_bonus: int
    streak: int  # as of `today`
    streak_day: int | None  # the last day the streak covers (None: no streak)
    best_streak: int
    checked_days: int
    homework_days: int


def checkin_statuses(entries: Iterable[EntryFact]) -> dict[int, EntryStatus]:
    return {e.day: e.status for e in entries if e.kind == EntryKind.CHECKIN}


def streaks(
    statuses: Mapping[int, EntryStatus], *, today: int, total_days: int
) -> tuple[int, int]:
    """(current streak as of `today`, best streak so far). `today` is the unclamped day index:
    past the camp's end every day is over, so a missing last day has broken the streak."""
    run = best = 0
    last = min(today, total_days)
    for day in range(0, last + 1):
        status = statuses.get(day)
        if status in ATTENDED:
            run += 1
        elif status != EntryStatus.LEAVE and day != today:
            run = 0  # a day over with neither check-in nor leave; today is still open
        best = max(best, run)
    # Days after `today` hold no entries (no future check-ins), so `best` is complete.
    return run, best


def covered_day(statuses: Mapping[int, EntryStatus], *, today: int) -> int:
    """The last day the current streak has settled: today if it has an entry, else yesterday."""
    return today if statuses.get(today) is not None else today - 1


def current_streak(*, streak: int, streak_day: int | None, today: int) -> int:
    """A stored streak seen later: still alive if no day since `streak_day` is over."""
    if streak_day is None or today - 1 > streak_day:
        return 0
    return streak


def milestone_bonus(best_streak: int, rules: RuleSet) -> int:
    return sum(bonus for length, bonus in rules.milestone_steps() if best_streak >= length)


def full_attendance(statuses: Mapping[int, EntryStatus], *, total_days: int) -> bool:
    days = range(FIRST_FULL_ATTENDANCE_DAY, total_days + 1)
    return total_days >= FIRST_FULL_ATTENDANCE_DAY and all(
        statuses.get(d) in ATTENDED for d in days
    )


def tally(entries: Iterable[EntryFact], *, rules: RuleSet, today: int, total_days: int) -> Tally:
    facts = list(entries)
    statuses = checkin_statuses(facts)
    streak, best = streaks(statuses, today=today, total_days=total_days)
    entry_points = sum(e.points for e in facts)
    bonus = milestone_bonus(best, rules)
    full = rules.full_attendance_points if full_attendance(statuses, total_days=total_days) else 0
    return Tally(
        points=entry_points + bonus + full,
        entry_points=entry_points,
        milestone_bonus=bonus,
        full_attendance_bonus=full,
        streak=streak,
        streak_day=covered_day(statuses, today=min(today, total_days + 1)) if streak else None,
        best_streak=best,
        checked_days=sum(1 for s in statuses.values() if s in ATTENDED),
        homework_days=sum(1 for e in facts if e.kind == EntryKind.HOMEWORK),
    )
