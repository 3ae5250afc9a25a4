"""Group joins: newcomers of robot groups greeted in batches, and member lists re-read from
WeCom when a lost callback left them incomplete.

A join event only records its newcomers as `group_join_pending` rows (in the event's
transaction, nothing sent). A batch is a group's pending newcomers who joined within
BATCH_WINDOW of its first one; once that window has closed, `flush_due` renders the group's
`group_welcome` script naming them (as few messages as the robot's byte limit and
MAX_NAMES_PER_MESSAGE allow) and, in one transaction, enqueues them under
`group_welcome:{group_id}:{first_join_ts}:{part}` and marks the rows with that key. A crash
before the commit leaves the batch pending; after it, the rows are marked and the outbox
keys are taken: nothing is lost or repeated. A 200-person join storm becomes a handful of
messages. WeCom calls (groupchat/get) happen between transactions, never inside one.

`bots.group_welcome.loop.run_group_welcome` drives it in the background; tests call
`flush_due` and `sync_flagged_groups` directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import outbox
from app.bounded import bounded
from app.channels.reach import Channel, Destination, enqueue_message
from app.clock import Clock
from app.db import dialect_insert, session_scope
from app.models import Group, GroupChannel, GroupStatus, Member, OutboxMessage, OutboxStatus
from app.wecom.client import WeComClient
from app.wecom.types import GroupChat
from bots.group_welcome.greeting import BatchNotSendable, script_and_context, split_greetings
from bots.group_welcome.models import GroupJoinPending
from bots.membership import service as membership_service

BATCH_WINDOW = timedelta(seconds=10)  # joins this close to a batch's first are greeted with it
FALLBACK_NAME = "新同学"
ROSTER_TIMEOUT_S = 5.0
# How long a batch waits for groupchat/get's names before going out with 新同学.
NAME_PATIENCE = timedelta(minutes=2)


def batch_key(group_id: int, first_at: datetime) -> str:
    return f"group_welcome:{group_id}:{int(first_at.timestamp())}"


# -- in the join event's transaction -------------------------------------------------------


async def queue_newcomers(
    *,
    session: AsyncSession,
    chat_id: str,
    member_keys: Sequence[str],
    joined_at: datetime,
    now: datetime,
) -> int:
    """Record the newcomers of a robot group for the next batch; how many were new.
    Other groups are skipped: WeCom greets customer-group newcomers with the template."""
    group = await session.scalar(select(Group).where(Group.chat_id == chat_id))
    keys = list(dict.fromkeys(k for k in member_keys if k))
    if group is None or not keys or not _robot_reaches(group):
        return 0
    insert = dialect_insert(session)
    rows = [
        {"group_id": group.id, "member_key": key, "joined_at": joined_at, "created_at": now}
        for key in keys
    ]
    result = await session.execute(
        insert(GroupJoinPending)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["group_id", "member_key", "joined_at"])
        .returning(GroupJoinPending.id)
    )
    return len(result.all())


def _robot_reaches(group: Group) -> bool:
    return (
        group.channel == GroupChannel.ROBOT
        and bool(group.robot_key)
        and group.status == GroupStatus.ACTIVE
    )


# -- flushing batches (between transactions) -----------------------------------------------


async def flush_due(
    *, sessions: async_sessionmaker[AsyncSession], wecom: WeComClient | None, clock: Clock
) -> int:
    """Enqueue the greetings of every batch whose window has closed; messages enqueued."""
    now = clock.now()
    async with sessions() as session:
        due = (
            await session.execute(
                select(GroupJoinPending.group_id, func.min(GroupJoinPending.joined_at))
                .where(GroupJoinPending.batch_key.is_(None))
                .group_by(GroupJoinPending.group_id)
                .having(func.min(GroupJoinPending.joined_at) <= now - BATCH_WINDOW)
            )
        ).all()
    enqueued = 0
    for group_id, first_at in due:
        enqueued += await _flush_group(
            sessions=sessions, wecom=wecom, group_id=group_id, first_at=first_at, now=now
        )
    return enqueued


def _in_batch(group_id: int, first_at: datetime) -> ColumnElement[bool]:
    return and_(
        GroupJoinPending.group_id == group_id,
        GroupJoinPending.batch_key.is_(None),
        GroupJoinPending.joined_at < first_at + BATCH_WINDOW,
    )


async def _flush_group(
    *,
    sessions: async_sessionmaker[AsyncSession],
    wecom: WeComClient | None,
    group_id: int,
    first_at: datetime,
    now: datetime,
) -> int:
    async with sessions() as session:
        chat_id = await session.scalar(select(Group.chat_id).where(Group.id == group_id))
        keys = list(
            (
                await session.execute(
                    select(GroupJoinPending.member_key).where(_in_batch(group_id, first_at))
                )
            ).scalars()
        )
        known = await _known_names(session, keys)
    roster: dict[str, str] = {}
    if chat_id and wecom is not None and any(k not in known for k in keys):
        chat = await _read_group(wecom, chat_id, need_name=True)
        if chat is None and now - first_at < NAME_PATIENCE:
            return 0  # WeCom did not answer: the next round asks again
        roster = _roster_names(chat) if chat is not None else {}
    async with session_scope(sessions) as session:
        return await _write_batch(
            session, group_id=group_id, first_at=first_at, roster=roster, now=now
        )


async def _read_group(wecom: WeComClient, chat_id: str, *, need_name: bool) -> GroupChat | None:
    return await bounded(
        lambda: wecom.get_group_chat(chat_id=chat_id, need_name=need_name),
        seconds=ROSTER_TIMEOUT_S,
        what=f"groupchat/get {chat_id}",
    )


def _roster_names(chat: GroupChat) -> dict[str, str]:
    """Member key → the name the group sees (群昵称 first, else the WeChat/WeCom name)."""
    names: dict[str, str] = {}
    for member in chat.member_list:
        extra = member.model_extra or {}
        nickname = extra.get("group_nickname")
        name = (nickname if isinstance(nickname, str) else "").strip() or member.name.strip()
        if name:
            names[member.userid] = name
    return names


async def _known_names(session: AsyncSession, keys: Sequence[str]) -> dict[str, str]:
    if not keys:
        return {}
    rows = await session.execute(
        select(Member.external_userid, Member.userid, Member.name).where(
            or_(Member.external_userid.in_(keys), Member.userid.in_(keys)),
            Member.name.is_not(None),
        )
    )
    found: dict[str, str] = {}
    for external_userid, userid, name in rows:
        for key in (external_userid, userid):
            if key and name and name.strip():
                found[key] = name.strip()
    return found


async def _write_batch(
    session: AsyncSession,
    *,
    group_id: int,
    first_at: datetime,
    roster: Mapping[str, str],
    now: datetime,
) -> int:
    """Enqueue one batch and mark its rows, in the caller's transaction; messages enqueued."""
    pending = list(
        (
            await session.execute(
                select(GroupJoinPending)
                .where(_in_batch(group_id, first_at))
                .order_by(GroupJoinPending.joined_at, GroupJoinPending.id)
                # Another instance flushing the same batch skips it (PostgreSQL).
                .with_for_update(skip_locked=True)
            )
        ).scalars()
    )
    if not pending:
        return 0
    group = await session.get(Group, group_id)
    key = batch_key(group_id, pending[0].joined_at)
    known = await _known_names(session, [p.member_key for p in pending])
    names = _newcomer_names([p.member_key for p in pending], known, roster)
    enqueued = 0
    if group is not None and _robot_reaches(group):
        enqueued = await _enqueue_greetings(session, group=group, key=key, names=names, now=now)
    await session.execute(
        update(GroupJoinPending)
        .where(GroupJoinPending.id.in_([p.id for p in pending]))
        .values(batch_key=key)
    )
    return enqueued


def _newcomer_names(
    keys: Sequence[str], known: Mapping[str, str], roster: Mapping[str, str]
) -> list[str]:
    """Each newcomer's name; those nobody knows are counted once at the end (新同学)."""
    names = [known.get(k) or roster.get(k) or "" for k in keys]
    unnamed = names.count("")
    named = [n for n in names if n]
    if unnamed:
        named.append(FALLBACK_NAME if unnamed == 1 else f"{unnamed} 位{FALLBACK_NAME}")
    return named


async def _enqueue_greetings(
    session: AsyncSession, *, group: Group, key: str, names: list[str], now: datetime
) -> int:
    route = Destination(Channel.ROBOT, group.robot_key or "")
    try:
        script, context = await script_and_context(session, group)
        messages = split_greetings(script, context, names)
    except BatchNotSendable as exc:
        await _record_unsent(session, key=f"{key}:0", route=route, reason=str(exc), now=now)
        return 0
    enqueued = 0
    for part, message in enumerate(messages):
        row_id = await enqueue_message(
            session=session, key=f"{key}:{part}", destination=route, message=message, now=now
        )
        enqueued += row_id is not None
    return enqueued


async def _record_unsent(
    session: AsyncSession, *, key: str, route: Destination, reason: str, now: datetime
) -> None:
    """A `dead` outbox row saying why (operators see it in GET /admin/api/outbox?status=dead)."""
    row_id = await outbox.enqueue(
        session=session,
        key=key,
        channel=route.channel,
        target=route.target,
        payload={"message": {"msgtype": "text", "content": ""}, "sender": ""},
        now=now,
    )
    if row_id is not None:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id)
            .values(status=OutboxStatus.DEAD, last_error=reason, updated_at=now)
        )


# -- member-list sync ----------------------------------------------------------------------


async def sync_flagged_groups(
    *, sessions: async_sessionmaker[AsyncSession], wecom: WeComClient, clock: Clock
) -> int:
    """Re-read the member list of every group a version gap flagged (`needs_sync`) from
    groupchat/get, and make `group_memberships` match it; groups synced."""
    async with sessions() as session:
        flagged = (
            await session.execute(
                select(Group.id, Group.chat_id, Group.member_version).where(
                    Group.needs_sync.is_(True),
                    Group.chat_id.is_not(None),
                    Group.status == GroupStatus.ACTIVE,
                )
            )
        ).all()
    synced = 0
    for group_id, chat_id, read_version in flagged:
        chat = await _read_group(wecom, chat_id or "", need_name=False)
        if chat is None:
            continue  # the next round tries again
        async with session_scope(sessions) as session:
            group = await session.get(Group, group_id, with_for_update=True)
            if group is None:
                continue
            await membership_service.reconcile_members(
                session=session,
                group=group,
                present={m.userid: m.join_scene for m in chat.member_list},
                version=chat.member_version,
                read_version=read_version,
                now=clock.now(),
            )
        synced += 1
    return synced
