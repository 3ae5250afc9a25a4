"""The membership handler, end to end through /wecom/callback."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import ManualClock
from app.models import Group, GroupMembership, Member, MemberStatus
from app.wecom_sandbox.callbacks import CallbackBuilder
from tests.support import T0, AppHarness, chat_members_changed, contact_added, inbox_rows

CHAT = "wrCampGroup0001"


async def _members(
    sessions: async_sessionmaker[AsyncSession],
) -> dict[str, tuple[str, str | None]]:
    async with sessions() as session:
        rows = (await session.execute(select(Member))).scalars()
        return {m.external_userid or "": (m.status, m.channel_state) for m in rows}


async def _in_group(sessions: async_sessionmaker[AsyncSession]) -> dict[str, bool]:
    async with sessions() as session:
        rows = (await session.execute(select(GroupMembership))).scalars()
        return {m.member_key: m.left_at is None for m in rows}


async def _group(sessions: async_sessionmaker[AsyncSession]) -> Group:
    async with sessions() as session:
        return (await session.execute(select(Group).where(Group.chat_id == CHAT))).scalar_one()


async def test_contact_lifecycle(
    harness: AppHarness,
    wecom: CallbackBuilder,
    clock: ManualClock,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await harness.deliver(wecom.post(contact_added("wmA", state="camp42"), at=T0))
    await harness.deliver(wecom.post(contact_added("wmB", state=""), at=T0))
    assert await _members(sessions) == {"wmA": ("active", "camp42"), "wmB": ("active", None)}

    clock.advance(timedelta(minutes=1))
    await harness.deliver(
        wecom.post(
            contact_added("wmA", change_type="del_follow_user", at=clock.now()), at=clock.now()
        )
    )
    await harness.deliver(
        wecom.post(
            contact_added("wmB", change_type="del_external_contact", at=clock.now()),
            at=clock.now(),
        )
    )
    assert await _members(sessions) == {"wmA": ("lost", "camp42"), "wmB": ("removed", None)}

    clock.advance(timedelta(minutes=1))
    await harness.deliver(
        wecom.post(contact_added("wmA", state="camp43", at=clock.now()), at=clock.now())
    )
    assert (await _members(sessions))["wmA"] == ("active", "camp43")
    assert {r.status for r in await inbox_rows(sessions)} == {"handled"}


async def test_group_joins_and_leaves_in_both_list_shapes(
    harness: AppHarness,
    wecom: CallbackBuilder,
    clock: ManualClock,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await harness.deliver(wecom.post(contact_added("wmA"), at=T0))
    await harness.deliver(
        wecom.post(chat_members_changed(CHAT, ["wmA", "wmB"], last="v0", cur="v1"), at=T0)
    )
    assert await _in_group(sessions) == {"wmA": True, "wmB": True}

    clock.advance(timedelta(minutes=1))
    await harness.deliver(
        wecom.post(
            chat_members_changed(
                CHAT,
                ["wmB"],
                detail="del_member",
                at=clock.now(),
                last="v1",
                cur="v2",
                item_shape=False,
            ),
            at=clock.now(),
        )
    )
    assert await _in_group(sessions) == {"wmA": True, "wmB": False}
    group = await _group(sessions)
    assert (group.channel, group.member_version, group.needs_sync) == ("customer", "v2", False)

    async with sessions() as session:
        linked = (
            await session.execute(
                select(GroupMembership.member_id).where(GroupMembership.member_key == "wmA")
            )
        ).scalar_one()
    assert linked is not None  # wmA was a known member; wmB was not


async def test_a_version_gap_flags_the_group_for_resync(
    harness: AppHarness,
    wecom: CallbackBuilder,
    clock: ManualClock,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await harness.deliver(
        wecom.post(chat_members_changed(CHAT, ["wmA"], last="v0", cur="v1"), at=T0)
    )
    clock.advance(timedelta(minutes=1))
    # The callback that took the list from v1 to v2 never arrived.
    await harness.deliver(
        wecom.post(
            chat_members_changed(CHAT, ["wmC"], at=clock.now(), last="v2", cur="v3"),
            at=clock.now(),
        )
    )
    group = await _group(sessions)
    assert (group.member_version, group.needs_sync) == ("v3", True)


async def test_dismiss_empties_the_group(
    harness: AppHarness,
    wecom: CallbackBuilder,
    clock: ManualClock,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await harness.deliver(wecom.post(chat_members_changed(CHAT, ["wmA", "wmB"]), at=T0))
    dismiss = chat_members_changed(CHAT, [], at=T0 + timedelta(seconds=5)).replace(
        "<ChangeType><![CDATA[update]]></ChangeType>",
        "<ChangeType><![CDATA[dismiss]]></ChangeType>",
    )
    await harness.deliver(wecom.post(dismiss, at=T0))
    assert await _in_group(sessions) == {"wmA": False, "wmB": False}
    assert (await _group(sessions)).status == "dismissed"


async def test_record_follow_is_one_upsert_that_keeps_what_an_empty_value_does_not_say(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    from bots.membership import service

    async def follow(staff: str, state: str) -> int:
        async with sessions.begin() as session:
            return await service.record_follow(
                session=session,
                external_userid="wmA",
                staff_userid=staff,
                channel_state=state,
                now=clock.now(),
            )

    first = await follow("zhangsan", "camp42")
    async with sessions.begin() as session:
        await service.record_unfollow(
            session=session, external_userid="wmA", status=MemberStatus.LOST, now=clock.now()
        )
    clock.advance(timedelta(minutes=1))
    again = await follow("", "")  # WeCom left both out this time
    assert again == first
    async with sessions() as session:
        member = (await session.execute(select(Member))).scalar_one()
    assert (member.status, member.staff_userid, member.channel_state) == (
        "active",
        "zhangsan",
        "camp42",
    )
    assert member.updated_at == clock.now()
    assert member.created_at == T0
