"""Members as operators see them: the platform row, the cohort, tags and the personal link.

Members are mostly created by WeCom events (a contact added through a cohort's channel
State); operators add the rest here. The admin API manages one current cohort per member:
setting `cohort_id` moves the member (`assign_cohort`); `cohort_members` keeps the join time.
Beyond its fields, an operator changes a member's tags and revokes its personal H5 link.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin import h5_tokens
from app.admin.audit import AuditTrail
from app.admin.cohorts.service import CohortChange, CohortHook, require_cohort
from app.admin.cohorts.service import notify as notify_cohort_changed
from app.admin.common import Actor, Page, flush_or_conflict, get_or_404, page_of, snapshot
from app.admin.errors import Conflict, InvalidInput
from app.admin.models import CohortMember, MemberTag
from app.models import Member, MemberStatus

AUDIT = AuditTrail("members")
WHAT = "学员"
EDITABLE = frozenset({"name", "status", "staff_userid", "cohort_id"})


@dataclass(frozen=True, slots=True)
class MemberView:
    member: Member
    cohort_id: int | None
    tags: Sequence[str]
    h5_token: str


async def _views(
    members: Sequence[Member], *, session: AsyncSession, now: datetime
) -> list[MemberView]:
    ids = [m.id for m in members]
    if not ids:
        return []
    current: dict[int, int] = {}
    links = await session.execute(
        select(CohortMember.member_id, CohortMember.cohort_id)
        .where(CohortMember.member_id.in_(ids))
        .order_by(CohortMember.joined_at, CohortMember.id)
    )
    for member_id, cohort_id in links:
        current[member_id] = cohort_id  # the latest join wins
    tags: dict[int, list[str]] = {i: [] for i in ids}
    rows = await session.execute(
        select(MemberTag.member_id, MemberTag.tag)
        .where(MemberTag.member_id.in_(ids))
        .order_by(MemberTag.tag)
    )
    for member_id, tag in rows:
        tags[member_id].append(tag)
    tokens = await h5_tokens.tokens_for(session=session, member_ids=ids, now=now)
    return [MemberView(m, current.get(m.id), tags[m.id], tokens[m.id]) for m in members]


async def view_of(member: Member, *, session: AsyncSession, now: datetime) -> MemberView:
    return (await _views([member], session=session, now=now))[0]


def audit_shape(view: MemberView) -> dict[str, object]:
    return {**snapshot(view.member), "cohort_id": view.cohort_id, "tags": list(view.tags)}


async def assign_cohort(
    *,
    session: AsyncSession,
    member_id: int,
    cohort_id: int | None,
    now: datetime,
    hooks: Collection[CohortHook],
) -> None:
    """Make `cohort_id` the member's one cohort (None: none); keeps the join time if unchanged.

    The cohort hooks hear "member_left" / "member_joined" (member-day schedules re-plan).
    """
    linked = set(
        (
            await session.execute(
                select(CohortMember.cohort_id).where(CohortMember.member_id == member_id)
            )
        ).scalars()
    )
    left = sorted(linked - {cohort_id} if cohort_id is not None else linked)
    if left:
        await session.execute(
            delete(CohortMember).where(
                CohortMember.member_id == member_id, CohortMember.cohort_id.in_(left)
            )
        )
    joined = cohort_id is not None and cohort_id not in linked
    if cohort_id is not None and joined:
        session.add(CohortMember(member_id=member_id, cohort_id=cohort_id, joined_at=now))
    await session.flush()
    for old in left:
        change = CohortChange("member_left", old, now, member_id=member_id)
        await notify_cohort_changed(change, session=session, hooks=hooks)
    if cohort_id is not None and joined:
        change = CohortChange("member_joined", cohort_id, now, member_id=member_id)
        await notify_cohort_changed(change, session=session, hooks=hooks)


async def get_member(*, session: AsyncSession, member_id: int, now: datetime) -> MemberView:
    member = await get_or_404(Member, member_id, session=session, what=WHAT)
    return await view_of(member, session=session, now=now)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def list_members(
    *,
    session: AsyncSession,
    now: datetime,
    cohort_id: int | None,
    status: str | None,
    tag: str | None,
    q: str | None,
    limit: int,
    offset: int,
) -> Page[MemberView]:
    statement = select(Member).order_by(Member.id)
    if cohort_id is not None:
        statement = statement.where(
            exists().where(
                CohortMember.member_id == Member.id, CohortMember.cohort_id == cohort_id
            )
        )
    if status is not None:
        statement = statement.where(Member.status == status)
    if tag is not None:
        statement = statement.where(
            exists().where(MemberTag.member_id == Member.id, MemberTag.tag == tag)
        )
    if q:
        pattern = _like(q)
        statement = statement.where(
            or_(
                *(
                    column.ilike(pattern, escape="\\")
                    for column in (Member.name, Member.external_userid, Member.userid)
                )
            )
        )
    page = await page_of(statement, session=session, limit=limit, offset=offset)
    return Page(await _views(page.items, session=session, now=now), page.total)


async def create_member(
    *,
    session: AsyncSession,
    actor: Actor,
    now: datetime,
    external_userid: str | None,
    userid: str | None,
    name: str | None,
    cohort_id: int | None,
    hooks: Collection[CohortHook],
    staff_userid: str | None = None,
) -> MemberView:
    if cohort_id is not None:
        await require_cohort(session=session, cohort_id=cohort_id)
    for column, value in (("external_userid", external_userid), ("userid", userid)):
        if value is None:
            continue
        other = await session.scalar(select(Member.id).where(getattr(Member, column) == value))
        if other is not None:
            raise Conflict(
                f"{column}「{value}」已是学员 {other}；要修改请用 PATCH /members/{other}。"
            )
    member = Member(
        external_userid=external_userid,
        userid=userid,
        name=name,
        staff_userid=staff_userid,
        status=MemberStatus.ACTIVE,
        created_at=now,
        updated_at=now,
    )
    session.add(member)
    await flush_or_conflict(session, "该学员已存在（external_userid 或 userid 重复）。")
    await assign_cohort(
        session=session, member_id=member.id, cohort_id=cohort_id, now=now, hooks=hooks
    )
    view = await view_of(member, session=session, now=now)
    after = audit_shape(view)
    await AUDIT.record("create", member.id, session=session, actor=actor, now=now, after=after)
    return view


async def update_member(
    *,
    session: AsyncSession,
    actor: Actor,
    now: datetime,
    member_id: int,
    changes: Mapping[str, Any],
    hooks: Collection[CohortHook],
) -> MemberView:
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    member = await get_or_404(Member, member_id, session=session, what=WHAT, lock=True)
    current = await view_of(member, session=session, now=now)
    before = audit_shape(current)
    if changes.get("cohort_id") is not None:
        await require_cohort(session=session, cohort_id=changes["cohort_id"])
    for key, value in changes.items():
        if key != "cohort_id":
            setattr(member, key, value)
    if "cohort_id" in changes and changes["cohort_id"] != current.cohort_id:
        await assign_cohort(
            session=session,
            member_id=member.id,
            cohort_id=changes["cohort_id"],
            now=now,
            hooks=hooks,
        )
    view = await view_of(member, session=session, now=now)
    if audit_shape(view) == before:
        return view
    member.updated_at = now
    await session.flush()
    after = audit_shape(view)  # `view.member` is `member`: it shows the new updated_at
    await AUDIT.record(
        "update", member.id, session=session, actor=actor, now=now, before=before, after=after
    )
    return view


async def change_tags(
    *,
    session: AsyncSession,
    actor: Actor,
    now: datetime,
    member_id: int,
    add: Iterable[str],
    remove: Iterable[str],
) -> MemberView:
    """Add then remove tags (a tag in both ends up removed); unknown removals are ignored."""
    member = await get_or_404(Member, member_id, session=session, what=WHAT, lock=True)
    current = await view_of(member, session=session, now=now)
    for tag in sorted(set(add) - set(current.tags)):
        session.add(MemberTag(member_id=member_id, tag=tag, created_at=now))
    await session.flush()
    dropped = set(remove)
    if dropped:
        await session.execute(
            delete(MemberTag).where(MemberTag.member_id == member_id, MemberTag.tag.in_(dropped))
        )
    view = await view_of(member, session=session, now=now)
    if list(view.tags) != list(current.tags):
        before, after = audit_shape(current), audit_shape(view)
        await AUDIT.record(
            "tags", member_id, session=session, actor=actor, now=now, before=before, after=after
        )
    return view


async def revoke_link(
    *, session: AsyncSession, actor: Actor, now: datetime, member_id: int
) -> MemberView:
    """Kill the member's current H5 link; the answer carries the new one."""
    member = await get_or_404(Member, member_id, session=session, what=WHAT, lock=True)
    old = await h5_tokens.versions(session=session, member_ids=[member_id])
    version = await h5_tokens.revoke(session=session, member_id=member_id, now=now)
    before, after = {"h5_token_version": old[member_id]}, {"h5_token_version": version}
    await AUDIT.record(
        "revoke_link", member_id, session=session, actor=actor, now=now, before=before, after=after
    )
    return await view_of(member, session=session, now=now)


async def find_one(
    *, session: AsyncSession, who: str, field: str, cohort_id: int | None = None
) -> int:
    """The member an operator names by id or by name (in `cohort_id` when given);
    InvalidInput naming `field` when there is none, or several of that name."""
    who = who.strip()[:100]
    if who.isdigit() and len(who) < 10:
        if await session.get(Member, int(who)) is None:
            raise InvalidInput(field, f"学员 {who} 不存在。")
        return int(who)
    statement = select(Member.id).where(Member.name == who).limit(2)
    if cohort_id is not None:
        statement = statement.where(
            exists().where(
                CohortMember.member_id == Member.id, CohortMember.cohort_id == cohort_id
            )
        )
    found = list(await session.scalars(statement))
    if not found:
        raise InvalidInput(field, f"没有找到学员「{who}」。")
    if len(found) > 1:
        raise InvalidInput(field, f"有多位学员叫「{who}」，请填学员 id。")
    return found[0]
