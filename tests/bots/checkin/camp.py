"""Building a cohort and its members for check-in tests (a Shanghai cohort on a UTC clock)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Cohort, CohortMember
from app.models import Member, MemberStatus
from bots.checkin.models import CheckinRule

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = date(2026, 3, 2)  # day 0 (开营)
DAYS = 7
T_START = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


def local(day: int, hour: int = 20, minute: int = 0, *, start: date = START) -> datetime:
    """UTC instant of `hour:minute` Shanghai time on the calendar date of camp day `day`."""
    wall = datetime.combine(start + timedelta(days=day), time(hour, minute), tzinfo=SHANGHAI)
    return wall.astimezone(UTC)


async def make_cohort(
    session: AsyncSession,
    *,
    state: str = "camp6",
    days: int = DAYS,
    start: date = START,
    milestones: dict[str, int] | None = None,
    **rule: object,
) -> Cohort:
    cohort = Cohort(
        name="6 期",
        camp="跨境电商实战营",
        start_date=start,
        days=days,
        channel_state=state,
        timezone="Asia/Shanghai",
        created_at=T_START,
        updated_at=T_START,
    )
    session.add(cohort)
    await session.flush()
    if milestones is not None or rule:
        session.add(
            CheckinRule(
                cohort_id=cohort.id, milestones=milestones or {}, updated_at=T_START, **rule
            )
        )
        await session.flush()
    return cohort


async def make_member(
    session: AsyncSession,
    cohort: Cohort | None,
    name: str,
    *,
    userid: str | None = None,
    status: str = MemberStatus.ACTIVE,
) -> Member:
    member = Member(
        name=name,
        userid=userid,
        external_userid=None if userid else f"wm{name}{cohort.id if cohort else ''}",
        status=status,
        created_at=T_START,
        updated_at=T_START,
    )
    session.add(member)
    await session.flush()
    if cohort is not None:
        session.add(CohortMember(member_id=member.id, cohort_id=cohort.id, joined_at=T_START))
        await session.flush()
    return member
