"""Homework review: assistants list submissions and score/comment them (admin API).

A review is audited (who, before → after) and then told to the student through the channel
that can reach them: an app message for an internal member, and for an external student a
群SOP item in their 1:1 chat (the text is theirs alone: a 群发 task per review would cost
their staff member a confirmation and the student a 群发 slot) — under
`review:{entry_id}:{n}`, n counting the
entry's reviews, so a re-review (a corrected score) is told again but a retried request is
not. The comment also shows on the student's page (EntryView.comment).

The notice's text is built here rather than in the script library: it needs the score and
the comment, which are no template variables.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.audit import AuditTrail
from app.admin.common import Actor, Page, get_or_404
from app.admin.errors import InvalidInput
from app.admin.h5_tokens import member_url
from app.admin.models import AuditEntry
from app.channels.messages import OutMessage
from app.channels.reach import Channel, enqueue_message, reach_member, staff_of_member
from app.models import GroupMembership, Member
from app.wecom.errors import UndeliverableError
from bots.checkin.models import CheckinEntry, EntryKind

RESOURCE = "checkins"
AUDIT = AuditTrail(RESOURCE)
ACTION = "review"
FALLBACK_NAME = "同学"
NAME_CHARS = 20  # a long name must not push the comment over the channel's byte limit
_AUDITED = ("score", "comment", "reviewed_by", "reviewed_at")


@dataclass(frozen=True, slots=True)
class Submission:
    entry: CheckinEntry
    member_name: str


@dataclass(frozen=True, slots=True)
class Reviewed:
    submission: Submission
    notice_key: str | None  # the outbox key of the notice; None when nothing reaches them


@dataclass(frozen=True, slots=True)
class Scope:
    """Who an assistant's queue holds: their cohorts, a group's members, a staff member's
    students (each None: no restriction)."""

    cohort_ids: Collection[int] | None = None
    group_id: int | None = None
    staff_userid: str | None = None


def _listing(
    cohort_id: int | None,
    day: int | None,
    kind: EntryKind | None,
    reviewed: bool | None,
    scope: Scope = Scope(),
) -> Select[CheckinEntry, str | None]:
    statement = select(CheckinEntry, Member.name).join(Member, Member.id == CheckinEntry.member_id)
    if cohort_id is not None:
        statement = statement.where(CheckinEntry.cohort_id == cohort_id)
    if scope.cohort_ids is not None:
        statement = statement.where(CheckinEntry.cohort_id.in_(scope.cohort_ids))
    if scope.group_id is not None:
        statement = statement.where(
            exists().where(
                GroupMembership.group_id == scope.group_id,
                GroupMembership.member_id == CheckinEntry.member_id,
                GroupMembership.left_at.is_(None),
            )
        )
    if scope.staff_userid is not None:
        statement = statement.where(Member.staff_userid == scope.staff_userid)
    if day is not None:
        statement = statement.where(CheckinEntry.day == day)
    if kind is not None:
        statement = statement.where(CheckinEntry.kind == kind)
    if reviewed is not None:
        done = CheckinEntry.reviewed_at.is_not(None)
        statement = statement.where(done if reviewed else ~done)
    # Oldest first: the assistant works through the queue in the order it came in.
    return statement.order_by(CheckinEntry.submitted_at, CheckinEntry.id)


async def list_submissions(
    *,
    session: AsyncSession,
    cohort_id: int | None,
    day: int | None,
    kind: EntryKind | None,
    reviewed: bool | None,
    limit: int,
    offset: int,
    scope: Scope = Scope(),
) -> Page[Submission]:
    """Oldest first; `scope` narrows it to an assistant's cohorts, a group, a staff member."""
    statement = _listing(cohort_id, day, kind, reviewed, scope)
    total = await session.scalar(
        select(func.count()).select_from(statement.order_by(None).subquery())
    )
    rows = await session.execute(statement.limit(limit).offset(offset))
    items = [Submission(entry, name or FALLBACK_NAME) for entry, name in rows.all()]
    return Page(items=items, total=int(total or 0))


async def get_submission(*, session: AsyncSession, entry_id: int) -> Submission:
    entry = await get_or_404(CheckinEntry, entry_id, session=session, what="打卡记录")
    member = await session.get(Member, entry.member_id)
    return Submission(entry, (member.name if member else None) or FALLBACK_NAME)


def _snapshot(entry: CheckinEntry) -> dict[str, object]:
    values = {name: getattr(entry, name) for name in _AUDITED}
    at = values["reviewed_at"]
    values["reviewed_at"] = at.isoformat() if isinstance(at, datetime) else None
    return values


async def _review_count(session: AsyncSession, entry_id: int) -> int:
    count = await session.scalar(
        select(func.count()).where(
            AuditEntry.resource == RESOURCE,
            AuditEntry.resource_id == str(entry_id),
            AuditEntry.action == ACTION,
        )
    )
    return int(count or 0)


def notice_text(*, name: str, day: int, score: int, comment: str | None, url: str) -> str:
    lines = [f"{name[:NAME_CHARS]}，你第 {day} 天的作业老师批改好了：{score} 分。"]
    if comment:
        lines.append(f"老师点评：{comment}")
    lines.append(f"在你的学习页可以随时查看：{url}")
    return "\n".join(lines)


async def review(
    *,
    session: AsyncSession,
    actor: Actor,
    entry_id: int,
    score: int,
    comment: str | None,
    now: datetime,
    public_base_url: str,
) -> Reviewed:
    """Score and comment a homework entry; 404 unknown, 422 for a check-in entry."""
    entry = await get_or_404(CheckinEntry, entry_id, session=session, what="打卡记录", lock=True)
    if entry.kind != EntryKind.HOMEWORK:
        raise InvalidInput("entry_id", "只有作业可以批改：这是一条打卡记录。")
    before = _snapshot(entry)
    entry.score, entry.comment = score, comment or None
    entry.reviewed_by, entry.reviewed_at = actor.name, now
    after = _snapshot(entry)
    await AUDIT.record(
        ACTION, entry.id, session=session, actor=actor, now=now, before=before, after=after
    )
    member = await session.get(Member, entry.member_id)
    assert member is not None  # the entry's foreign key
    name = member.name or FALLBACK_NAME
    submission = Submission(entry, name)
    try:
        route = reach_member(member)
        if route.channel == Channel.CUSTOMER_SINGLE:
            route = staff_of_member(member)
    except UndeliverableError:
        return Reviewed(submission, None)  # the page still shows the comment
    key = f"review:{entry.id}:{await _review_count(session, entry.id)}"
    url = await member_url(
        session=session, member_id=member.id, public_base_url=public_base_url, now=now
    )
    text = notice_text(name=name, day=entry.day, score=score, comment=entry.comment, url=url)
    try:
        message = OutMessage("text", content=text)
        await enqueue_message(
            session=session, key=key, destination=route, message=message, now=now, title="作业点评"
        )
    except UndeliverableError as exc:  # e.g. a comment of 4-byte emoji over the byte limit
        raise InvalidInput("comment", f"点评无法发给学员：{exc}") from exc
    return Reviewed(submission, key)
