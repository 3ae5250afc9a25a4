"""A small camp with every case the statistics must get right, inserted row by row.

Cohort 写作营 第 3 期: start 2026-03-02 (day 0), 7 days, Asia/Shanghai, the default day
boundary 04:00 — camp day N runs from (03-02 + N) 04:00 to (03-03 + N) 04:00 local time.
"Now" is day 3, 12:00 (NOW): days 0..3 are observed, day 3 in progress.

Members (staff = the assistant they added):
    m1  zhang  joined before 开营, active
    m2  zhang  joined before, active
    m3  li     joined before, active
    m4  li     joined 03-03 21:00 (day 1)            -> a member from day 1
    m5  —      joined before, lost at 03-04 10:00 (day 2)  -> members on days 0..2
    m6  li     joined before, removed at 03-03 02:00 (still day 0) -> a member on day 0 only
Elsewhere: x1 in another cohort (its entries, tag and 喜报 must not count), and the staff
account zhang as an internal member sitting in group g1.

Check-ins (C = on time, M = 补卡, L = 请假; homework H = on time, HM = 补卡):
    day 0: m1 C H, m2 C, m3 L, m6 C, m4 M (not yet a member on day 0: not counted)
    day 1: m1 C H, m2 M H, m3 C, m4 C H, x1 C (other cohort)
    day 2: m1 C, m3 L, m4 C HM, m6 C (left on day 0: not counted)
    day 3: m1 C

Groups: g1 (robot) m1, m2, staff zhang, an unknown person; g2 (customer) m1, m3,
m4 (joined 03-03 21:00), m5 (left 03-04 10:00); g3 not linked to the cohort.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.models import Cohort, CohortGroup, CohortMember, MemberTag
from app.models import Group, GroupMembership, Member
from bots.checkin.models import CheckinEntry, MemberScore
from bots.xibao.models import Achievement

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = date(2026, 3, 2)
BEFORE = datetime(2026, 2, 28, 10, 0, tzinfo=SHANGHAI)


def local(day: str, hhmm: str) -> datetime:
    """A Shanghai wall-clock time (day "03-04") as UTC."""
    month, dom = (int(p) for p in day.split("-"))
    hour, minute = (int(p) for p in hhmm.split(":"))
    return datetime(2026, month, dom, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


NOW = local("03-05", "12:00")  # camp day 3


@dataclass(frozen=True)
class Camp:
    cohort_id: int
    other_cohort_id: int
    members: dict[str, int]  # "m1".. -> member id
    groups: dict[str, int]  # "g1".. -> group id


def _cohort(name: str, state: str) -> Cohort:
    return Cohort(
        name=name,
        camp="21 天写作营",
        start_date=START,
        days=7,
        channel_state=state,
        timezone="Asia/Shanghai",
        created_at=BEFORE,
        updated_at=BEFORE,
    )


def _member(
    key: str, *, staff: str | None, status: str = "active", at: datetime = BEFORE
) -> Member:
    return Member(
        external_userid=f"wm{key}",
        name=key,
        status=status,
        staff_userid=staff,
        created_at=BEFORE,
        updated_at=at,
    )


def _group(name: str, channel: str) -> Group:
    return Group(
        name=name, channel=channel, chat_id=f"chat-{name}", created_at=BEFORE, updated_at=BEFORE
    )


ENTRIES: list[tuple[str, int, str, str]] = [  # member, day, kind, status
    ("m1", 0, "checkin", "on_time"),
    ("m1", 0, "homework", "on_time"),
    ("m2", 0, "checkin", "on_time"),
    ("m3", 0, "checkin", "leave"),
    ("m6", 0, "checkin", "on_time"),
    ("m4", 0, "checkin", "makeup"),
    ("m1", 1, "checkin", "on_time"),
    ("m1", 1, "homework", "on_time"),
    ("m2", 1, "checkin", "makeup"),
    ("m2", 1, "homework", "on_time"),
    ("m3", 1, "checkin", "on_time"),
    ("m4", 1, "checkin", "on_time"),
    ("m4", 1, "homework", "on_time"),
    ("m1", 2, "checkin", "on_time"),
    ("m3", 2, "checkin", "leave"),
    ("m4", 2, "checkin", "on_time"),
    ("m4", 2, "homework", "makeup"),
    ("m6", 2, "checkin", "on_time"),
    ("m1", 3, "checkin", "on_time"),
]

# member -> (streak, streak_day, best_streak); m5 has no score row.
SCORES: dict[str, tuple[int, int, int]] = {
    "m1": (4, 3, 4),
    "m2": (2, 1, 2),  # last counted day 1, nothing on day 2: broken -> current 0
    "m3": (1, 1, 1),  # day 2 was 请假: paused, not broken -> current 1
    "m4": (3, 2, 3),
    "m6": (1, 0, 1),  # broken
}


async def seed_camp(sessions: async_sessionmaker[AsyncSession]) -> Camp:
    async with sessions() as session, session.begin():
        cohort, other = _cohort("写作营 第 3 期", "write3"), _cohort("写作营 第 2 期", "write2")
        members = {
            "m1": _member("m1", staff="zhang"),
            "m2": _member("m2", staff="zhang"),
            "m3": _member("m3", staff="li"),
            "m4": _member("m4", staff="li"),
            "m5": _member("m5", staff=None, status="lost", at=local("03-04", "10:00")),
            "m6": _member("m6", staff="li", status="removed", at=local("03-03", "02:00")),
            "x1": _member("x1", staff="zhang"),
        }
        staff = Member(userid="zhang", name="张老师", created_at=BEFORE, updated_at=BEFORE)
        groups = {"g1": _group("一组", "robot"), "g2": _group("二组", "customer")}
        groups["g3"] = _group("别的群", "robot")
        session.add_all([cohort, other, staff, *members.values(), *groups.values()])
        await session.flush()
        _enroll(session, cohort, other, members)
        _link_groups(session, cohort, groups)
        _memberships(session, groups, members, staff)
        _entries(session, cohort, other, members)
        _scores_tags_achievements(session, cohort, other, members)
        return Camp(
            cohort_id=cohort.id,
            other_cohort_id=other.id,
            members={k: m.id for k, m in members.items()},
            groups={k: g.id for k, g in groups.items()},
        )


def _enroll(
    session: AsyncSession, cohort: Cohort, other: Cohort, members: dict[str, Member]
) -> None:
    joined = {"m4": local("03-03", "21:00")}
    for key, member in members.items():
        session.add(
            CohortMember(
                member_id=member.id,
                cohort_id=other.id if key == "x1" else cohort.id,
                joined_at=joined.get(key, BEFORE),
            )
        )


def _link_groups(session: AsyncSession, cohort: Cohort, groups: dict[str, Group]) -> None:
    for key in ("g1", "g2"):
        session.add(CohortGroup(group_id=groups[key].id, cohort_id=cohort.id, linked_at=BEFORE))


def _memberships(
    session: AsyncSession, groups: dict[str, Group], members: dict[str, Member], staff: Member
) -> None:
    def row(group: str, key: str, member: Member | None, joined: datetime = BEFORE) -> None:
        session.add(
            GroupMembership(
                group_id=groups[group].id,
                member_key=key,
                member_id=member.id if member else None,
                joined_at=joined,
                left_at=local("03-04", "10:00") if key == "wmm5" else None,
            )
        )

    for key in ("m1", "m2"):
        row("g1", f"wm{key}", members[key])
    row("g1", "zhang", staff)
    row("g1", "wmUnknown", None)
    for key in ("m1", "m3", "m5"):
        row("g2", f"wm{key}", members[key])
    row("g2", "wmm4", members["m4"], local("03-03", "21:00"))
    row("g3", "wmx1", members["x1"])


def _entries(
    session: AsyncSession, cohort: Cohort, other: Cohort, members: dict[str, Member]
) -> None:
    rows = [*ENTRIES, ("x1", 1, "checkin", "on_time")]
    for key, day, kind, status in rows:
        at = local("03-05", "11:00")
        session.add(
            CheckinEntry(
                member_id=members[key].id,
                cohort_id=other.id if key == "x1" else cohort.id,
                day=day,
                kind=kind,
                status=status,
                submitted_at=at,
                updated_at=at,
            )
        )


def _scores_tags_achievements(
    session: AsyncSession, cohort: Cohort, other: Cohort, members: dict[str, Member]
) -> None:
    for key, (streak, streak_day, best) in SCORES.items():
        session.add(
            MemberScore(
                member_id=members[key].id,
                cohort_id=cohort.id,
                streak=streak,
                streak_day=streak_day,
                best_streak=best,
                updated_at=BEFORE,
            )
        )
    for key in ("m1", "x1"):
        session.add(MemberTag(member_id=members[key].id, tag="上岸", created_at=BEFORE))

    def achievement(key: str, cohort_id: int, status: str) -> Achievement:
        return Achievement(
            member_id=members[key].id,
            cohort_id=cohort_id,
            title="上岸",
            status=status,
            source="admin",
            created_by="ops",
            created_at=BEFORE,
        )

    session.add_all(
        [
            achievement("m1", cohort.id, "approved"),  # also tagged: counted once
            achievement("m3", cohort.id, "approved"),
            achievement("m2", cohort.id, "pending"),  # not approved: not counted
            achievement("x1", other.id, "approved"),  # another cohort
        ]
    )
