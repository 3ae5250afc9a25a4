"""What the sidebar shows: a customer group's card (its due 群SOP items, today's timetable,
who has checked in) and a student's card (standing, recent work, tags, 喜报, their 1:1
items). Read-only; other capabilities reached through their services and tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.h5_tokens import member_url
from app.admin.models import Cohort, CohortGroup, MemberTag
from app.channels.reach import Channel
from app.channels.routing import CHANNEL_NAMES
from app.models import Group, GroupMembership, Member, OutboxMessage
from bots.checkin import service as checkin
from bots.checkin.models import CheckinEntry, EntryKind, EntryStatus
from bots.sop.service import Item, due_items, state_word
from bots.xibao.models import Achievement
from schedules.models import Firing, Schedule
from schedules.sends import due_label, row_key
from scripts_library.models import Script

RECENT_ENTRIES = 6
COUNTED = (EntryStatus.ON_TIME, EntryStatus.MAKEUP)


@dataclass(frozen=True, slots=True)
class Slot:
    """One push of today's timetable for the group."""

    time: str
    title: str
    how: str  # 群发 | 群SOP | … (planned: what it will likely be)
    state: str  # 待发送 | 已发送 | 待员工发送 | 已跳过 | …


@dataclass(frozen=True, slots=True)
class GroupCard:
    chat_id: str
    name: str
    cohort_name: str | None
    camp_day: int | None
    items: list[Item]
    timetable: list[Slot]
    members: int
    checked_in: int
    missing: list[str]


async def cohort_of(session: AsyncSession, group: Group) -> Cohort | None:
    return await session.scalar(
        select(Cohort)
        .join(CohortGroup, CohortGroup.cohort_id == Cohort.id)
        .where(CohortGroup.group_id == group.id)
    )


# How a group's chat id is reached (`app.channels.reach.reach_group`): its rows' key labels.
_GROUP_CHANNELS = (Channel.CUSTOMER_GROUP, Channel.APPCHAT)
_KEYS_PER_QUERY = 500  # a day's firings of a cohort, many per-member: bounded IN lists


async def _sent(
    session: AsyncSession, group: Group, firings: list[tuple[int, datetime]]
) -> dict[str, tuple[str, str]]:
    """The rows these firings (schedule id, due) wrote for the group, by "{id}@{due}": read
    by their exact keys (`schedules.sends`: the group is reached under the label
    `{channel}:{chat_id}`; a 群SOP item keeps the key of the 群发 it replaces)."""
    keys = list(
        dict.fromkeys(
            row_key(schedule_id, f"{channel}:{group.chat_id}", due_label(due_at))
            for schedule_id, due_at in firings
            for channel in _GROUP_CHANNELS
        )
    )
    sent: dict[str, tuple[str, str]] = {}
    for n in range(0, len(keys), _KEYS_PER_QUERY):
        rows = await session.execute(
            select(OutboxMessage.key, OutboxMessage.channel, OutboxMessage.status).where(
                OutboxMessage.key.in_(keys[n : n + _KEYS_PER_QUERY]),
                OutboxMessage.target == group.chat_id,
            )
        )
        sent.update(
            {key.split(":")[1] + "@" + key.rsplit(":", 1)[1]: (ch, st) for key, ch, st in rows}
        )
    return sent


async def _timetable(
    session: AsyncSession, group: Group, cohort: Cohort, now: datetime
) -> list[Slot]:
    tz = ZoneInfo(cohort.timezone)
    start = datetime.combine(now.astimezone(tz).date(), datetime.min.time(), tz)
    firings = await session.execute(
        select(Firing.due_at, Firing.status, Schedule.id, Script.title, Script.group_delivery)
        .join(Schedule, Schedule.id == Firing.schedule_id)
        .join(Script, Script.key == Schedule.script_key)
        .where(
            Schedule.cohort_id == cohort.id,
            Firing.due_at >= start,
            Firing.due_at < start + timedelta(days=1),
        )
        .order_by(Firing.due_at)
    )
    today = list(firings)
    sent = await _sent(session, group, [(f[2], f[0]) for f in today])
    slots = []
    for due_at, status, schedule_id, title, delivery in today:
        found = sent.get(f"{schedule_id}@{due_at:%Y%m%dT%H%M%SZ}")
        if found is not None:
            # A 群SOP item waits for its staff member from the start.
            code = "awaiting_staff" if found == ("staff", "pending") else found[1]
            how, state = CHANNEL_NAMES.get(found[0], found[0]), state_word(code)
        else:
            how = "群发（次数够时）" if delivery == "mass_send" else "群SOP"
            state = state_word(status)
        slots.append(Slot(f"{due_at.astimezone(tz):%H:%M}", title, how, state))
    return slots


async def group_card(*, session: AsyncSession, group: Group, now: datetime) -> GroupCard:
    cohort = await cohort_of(session, group)
    items = await due_items(session=session, chats=[str(group.chat_id)], now=now)
    if cohort is None:
        return GroupCard(str(group.chat_id), group.name or "", None, None, items, [], 0, 0, [])
    today = await checkin.camp_day(session=session, cohort_id=cohort.id, now=now)
    people = list(
        await session.execute(
            select(Member.id, Member.name)
            .join(GroupMembership, GroupMembership.member_id == Member.id)
            .where(
                GroupMembership.group_id == group.id,
                GroupMembership.left_at.is_(None),
                Member.external_userid.is_not(None),
            )
            .order_by(Member.id)
        )
    )
    done: set[int] = set()
    if today.day is not None and people:
        done = set(
            await session.scalars(
                select(CheckinEntry.member_id).where(
                    CheckinEntry.cohort_id == cohort.id,
                    CheckinEntry.day == today.day,
                    CheckinEntry.kind == EntryKind.CHECKIN,
                    CheckinEntry.status.in_(COUNTED),
                    CheckinEntry.member_id.in_([p.id for p in people]),
                )
            )
        )
    return GroupCard(
        chat_id=str(group.chat_id),
        name=group.name or "",
        cohort_name=f"{cohort.camp} · {cohort.name}",
        camp_day=today.day,
        items=items,
        timetable=await _timetable(session, group, cohort, now),
        members=len(people),
        checked_in=len(done),
        missing=[p.name or "同学" for p in people if p.id not in done],
    )


@dataclass(frozen=True, slots=True)
class Work:
    id: int
    day: int
    kind: str
    text: str
    images: int
    score: int | None
    comment: str | None
    reviewed: bool


@dataclass(frozen=True, slots=True)
class StudentCard:
    member: Member
    cohort_name: str | None
    camp_day: int | None
    streak: int
    points: int
    rank: int | None
    cohort_size: int | None
    recent: list[Work]
    tags: list[str]
    xibao: list[str]
    items: list[Item]
    h5_url: str


async def student_card(
    *, session: AsyncSession, member: Member, now: datetime, public_base_url: str
) -> StudentCard:
    try:
        page = await checkin.member_page(session=session, member_id=member.id, now=now)
    except checkin.CheckinError:
        page = None  # in no cohort: no standing
    entries = await session.scalars(
        select(CheckinEntry)
        .where(CheckinEntry.member_id == member.id)
        .order_by(CheckinEntry.day.desc(), CheckinEntry.id.desc())
        .limit(RECENT_ENTRIES)
    )
    recent = [
        Work(
            e.id,
            e.day,
            e.kind,
            e.text,
            len(e.images or []),
            e.score,
            e.comment,
            e.reviewed_at is not None,
        )
        for e in entries
    ]
    tags = list(
        await session.scalars(select(MemberTag.tag).where(MemberTag.member_id == member.id))
    )
    xibao = list(
        await session.scalars(
            select(Achievement.title)
            .where(Achievement.member_id == member.id)
            .order_by(Achievement.id.desc())
        )
    )
    url = await member_url(
        session=session, member_id=member.id, public_base_url=public_base_url, now=now
    )
    return StudentCard(
        member=member,
        cohort_name=f"{page.camp_name} · {page.cohort_name}" if page else None,
        camp_day=page.camp_day.day if page else None,
        streak=page.standing.streak if page else 0,
        points=page.standing.points if page else 0,
        rank=page.standing.rank if page else None,
        cohort_size=page.standing.cohort_size if page else None,
        recent=recent,
        tags=sorted(tags),
        xibao=xibao,
        items=await due_items(session=session, chats=[str(member.external_userid)], now=now),
        h5_url=url,
    )
