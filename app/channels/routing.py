"""Routing at firing time: which channel a push to a customer group or an external student
takes now (ARCHITECTURE §2).

- A **customer group** gets a 群发 only while it has quota left *and* the script is worth a
  slot (`group_delivery: mass_send` — the pack marks 开营, 喜报, 结营 and the weekly summary);
  otherwise the push becomes a **群SOP** item its assistant (else its owner) posts from the
  chat toolbar. `sop` and `auto` scripts are always 群SOP in customer groups.
- **External students** (`route_students`): a personal text (the script uses a student's own
  variables: name, streak, link…) is a 群SOP item in the student's 1:1 chat; identical texts
  for one staff member are **one** 群发 task with many recipients (`auto`, `mass_send`) for
  those with quota left, and 1:1 群SOP items for the rest; `sop` makes them all 1:1 items.
- Robots, app chats and internal members are not routed: their channels have no quota.

The quota slot is spent here, in the transaction that writes the row, under the row's key.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from app import quota
from app.channels.messages import OutMessage
from app.channels.reach import Channel, Destination, staff_of_group, staff_of_member
from app.models import Group, Member
from app.settings import QuotaMode, Settings


class GroupDelivery(StrEnum):
    """A script's `group_delivery`: how it reaches customer groups and external students."""

    MASS_SEND = "mass_send"  # worth a 群发 slot while there is one
    SOP = "sop"  # always posted by staff from the chat toolbar
    AUTO = "auto"  # groups: 群SOP; students: merged 群发 unless the text is personal


# Variables that make a text one student's own: it cannot be one 群发 to many.
PERSONAL_VARIABLES = frozenset({"student_name", "streak", "points", "rank", "h5_url"})
CHANNEL_NAMES: dict[str, str] = {
    Channel.CUSTOMER_GROUP: "群发",
    Channel.CUSTOMER_SINGLE: "群发（单聊）",
    Channel.STAFF: "群SOP",
    Channel.ROBOT: "群机器人",
    Channel.APPCHAT: "应用群聊",
    Channel.APP_MESSAGE: "应用消息",
    Channel.WELCOME: "欢迎语",
}


@dataclass(frozen=True, slots=True)
class Routing:
    """What routing needs besides the push: the corp's 群发 rule and the default calendar."""

    mode: QuotaMode = QuotaMode.MONTH_DAYS
    default_tz: str = "Asia/Shanghai"

    @classmethod
    def of(cls, settings: Settings) -> Routing:
        return cls(settings.wecom_mass_send_quota, settings.campbot_timezone)


DEFAULT_ROUTING = Routing()


def delivery_of(value: str | None) -> GroupDelivery:
    try:
        return GroupDelivery(value or GroupDelivery.AUTO)
    except ValueError:
        return GroupDelivery.AUTO


async def route_group(
    *,
    session: AsyncSession,
    group: Group,
    destination: Destination,
    delivery: str | None,
    routing: Routing,
    key: str,
    now: datetime,
    tz: str | None = None,
) -> Destination:
    """`destination` (what reaches `group`), or its 群SOP when a 群发 is not to be spent on
    this push; a 群发 spends the group's slot under `key`."""
    if destination.channel != Channel.CUSTOMER_GROUP:
        return destination
    if delivery_of(delivery) == GroupDelivery.MASS_SEND:
        zone = tz or await quota.camp_timezone(
            session=session, target=destination.target, default_tz=routing.default_tz
        )
        if await quota.spend(
            session=session,
            target=destination.target,
            mode=routing.mode,
            tz=zone,
            now=now,
            outbox_key=key,
        ):
            return destination
    return staff_of_group(group)


@dataclass(frozen=True, slots=True)
class StudentPush:
    """One external student's rendered push, before routing."""

    member: Member
    message: OutMessage


@dataclass(frozen=True, slots=True)
class Routed:
    """A row to write: where it goes and to whom (a merged 群发 names all its students)."""

    label: str  # unique within the push: goes into the row's key
    destination: Destination
    message: OutMessage
    recipients: tuple[str, ...] = ()  # a merged 群发's external userids

    def payload_extra(self) -> dict[str, object]:
        return {"external_userids": list(self.recipients)} if self.recipients else {}


def merged_label(staff: str, message: OutMessage) -> str:
    digest = hashlib.sha256(repr(message.to_json()).encode()).hexdigest()[:12]
    return f"{Channel.CUSTOMER_SINGLE}:{staff}:{digest}"


async def route_students(
    *,
    session: AsyncSession,
    pushes: Sequence[StudentPush],
    delivery: str | None,
    personal: bool,
    routing: Routing,
    key_of: Callable[[str], str],
    now: datetime,
    tz: str | None = None,
) -> list[Routed]:
    """The rows reaching these external students (see the module docstring). `key_of(label)`
    is the row key a label gets: the merged task's slots are spent under it. `tz`: the
    camp's clock when the caller knows it (else each student's is looked up)."""
    chosen = delivery_of(delivery)
    routed: list[Routed] = []
    buckets: dict[tuple[str, str], list[StudentPush]] = defaultdict(list)
    for push in pushes:
        if personal or chosen == GroupDelivery.SOP:
            routed.append(_one_to_one(push))
        else:
            staff = push.member.staff_userid or ""
            buckets[(staff, repr(push.message.to_json()))].append(push)
    for (staff, _), bucket in buckets.items():
        routed += await _merge(session, staff, bucket, routing, key_of, now, tz)
    return routed


def _one_to_one(push: StudentPush) -> Routed:
    destination = staff_of_member(push.member)
    return Routed(destination.label, destination, push.message)


async def _merge(
    session: AsyncSession,
    staff: str,
    bucket: list[StudentPush],
    routing: Routing,
    key_of: Callable[[str], str],
    now: datetime,
    tz: str | None,
) -> list[Routed]:
    """One 群发 for the students of `bucket` with quota left; a 1:1 item for the others."""
    message = bucket[0].message
    label = merged_label(staff, message)
    key = key_of(label)
    externals = [str(push.member.external_userid) for push in bucket]
    if tz:
        zones = dict.fromkeys(externals, tz)
    else:
        zones = await quota.camp_timezones(
            session=session, targets=externals, default_tz=routing.default_tz
        )
    granted = await quota.spend_many(
        session=session, targets=zones, mode=routing.mode, now=now, outbox_key=key
    )
    spent = [e for e in externals if e in granted]
    rest = [
        _one_to_one(push) for push, e in zip(bucket, externals, strict=True) if e not in granted
    ]
    if not spent:
        return rest
    merged = Destination(Channel.CUSTOMER_SINGLE, staff, sender=staff)
    return [Routed(label, merged, message, recipients=tuple(spent)), *rest]


def is_personal(variables: frozenset[str]) -> bool:
    return bool(variables & PERSONAL_VARIABLES)
