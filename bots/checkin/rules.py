"""A cohort's check-in rules as plain values: its `checkin_rules` row, or the defaults.

The defaults live here once (the model's column defaults only apply on INSERT), and the
camp-day arithmetic that depends on them (the day boundary) is pure, so it is tested
without a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Cohort
from bots.checkin.models import CheckinRule

DEFAULT_BOUNDARY = time(4, 0)


@dataclass(frozen=True, slots=True)
class RuleSet:
    day_boundary: time = DEFAULT_BOUNDARY
    makeup_days: int = 2  # 0 = no 补卡
    makeup_cost: int = 5
    leave_limit: int = 2
    checkin_points: int = 10
    homework_points: int = 20
    milestones: dict[str, int] = field(default_factory=dict)  # {"3": 20, "7": 50}
    full_attendance_points: int = 100

    @property
    def makeup_points(self) -> int:
        """What a 补卡 earns: the check-in's points less the cost, never below 0."""
        return max(0, self.checkin_points - self.makeup_cost)

    def milestone_steps(self) -> list[tuple[int, int]]:
        """(streak length, bonus) pairs, shortest first; keys that are not positive ints
        (only possible in a row written around the API) are ignored."""
        steps = [(int(k), v) for k, v in self.milestones.items() if str(k).isdigit()]
        return sorted((n, v) for n, v in steps if n > 0)


DEFAULTS = RuleSet()


def rule_set(row: CheckinRule | None) -> RuleSet:
    if row is None:
        return DEFAULTS
    return RuleSet(
        day_boundary=row.day_boundary if row.day_boundary is not None else DEFAULT_BOUNDARY,
        makeup_days=_or(row.makeup_days, DEFAULTS.makeup_days),
        makeup_cost=_or(row.makeup_cost, DEFAULTS.makeup_cost),
        leave_limit=_or(row.leave_limit, DEFAULTS.leave_limit),
        checkin_points=_or(row.checkin_points, DEFAULTS.checkin_points),
        homework_points=_or(row.homework_points, DEFAULTS.homework_points),
        milestones=dict(row.milestones or {}),
        full_attendance_points=_or(row.full_attendance_points, DEFAULTS.full_attendance_points),
    )


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


async def load_rules(*, session: AsyncSession, cohort_id: int) -> RuleSet:
    return rule_set(await session.get(CheckinRule, cohort_id))


def camp_date(*, now: datetime, timezone: str, boundary: time) -> date:
    """The calendar date whose camp day `now` belongs to: before `boundary` (local time) it is
    still the evening before, so a check-in at 01:30 counts for yesterday."""
    local = now.astimezone(ZoneInfo(timezone))
    return (local - timedelta(hours=boundary.hour, minutes=boundary.minute)).date()


def day_index(cohort: Cohort, *, now: datetime, boundary: time) -> int:
    """Days since 开营 (day 0), unclamped: negative before, > cohort.days after the camp."""
    today = camp_date(now=now, timezone=cohort.timezone, boundary=boundary)
    return (today - cohort.start_date).days


def date_of(cohort: Cohort, day: int) -> date:
    return cohort.start_date + timedelta(days=day)


def as_json(rules: RuleSet) -> dict[str, object]:
    """The rules as the admin API and the audit log show them (day_boundary "HH:MM")."""
    return {
        "day_boundary": rules.day_boundary.strftime("%H:%M"),
        "makeup_days": rules.makeup_days,
        "makeup_cost": rules.makeup_cost,
        "leave_limit": rules.leave_limit,
        "checkin_points": rules.checkin_points,
        "homework_points": rules.homework_points,
        "milestones": dict(rules.milestones),
        "full_attendance_points": rules.full_attendance_points,
    }


async def save_rules(
    *, session: AsyncSession, cohort_id: int, rules: RuleSet, now: datetime
) -> CheckinRule:
    """Write the cohort's row (created on first save)."""
    row = await session.get(CheckinRule, cohort_id, with_for_update=True)
    if row is None:
        row = CheckinRule(cohort_id=cohort_id, updated_at=now)
        session.add(row)
    row.day_boundary = rules.day_boundary
    row.makeup_days = rules.makeup_days
    row.makeup_cost = rules.makeup_cost
    row.leave_limit = rules.leave_limit
    row.checkin_points = rules.checkin_points
    row.homework_points = rules.homework_points
    row.milestones = dict(rules.milestones)
    row.full_attendance_points = rules.full_attendance_points
    row.updated_at = now
    await session.flush()
    return row
