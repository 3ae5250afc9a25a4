"""Group joins, end to end: WeCom's change_external_chat callbacks through /wecom/callback,
the batch flush and member sync called as the background loop calls them, robot posts and
templates checked in the sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import schedules.models  # noqa: F401 - a member joining re-plans schedules: their tables
from app.admin.models import Cohort, CohortGroup
from app.clock import ManualClock
from app.models import Group, GroupMembership, Member, OutboxMessage
from app.sender import Sender
from app.settings import Settings
from app.wecom.client import WeComClient
from app.wecom_sandbox.sender import CallbackSender
from app.wecom_sandbox.server import sandbox_transport
from app.wecom_sandbox.state import SandboxState
from bots.group_welcome.models import GroupJoinPending, GroupWelcomeTemplate
from bots.group_welcome.service import flush_due, sync_flagged_groups
from bots.group_welcome.template_sync import sync_templates
from scripts_library.loader import DEFAULT_PACK, import_pack
from scripts_library.service import update_script
from tests.support import AES_KEY, AGENT_ID, CORP_ID, TOKEN, AppHarness, inbox_rows, running_app

Sessions = async_sessionmaker[AsyncSession]
STAFF = "zhangsan"
ROBOT_CHAT, ROBOT_KEY = "wrRobotGroup0001", "robot-key-0001"
CUSTOMER_CHAT = "wrCustomerGroup01"
WEBHOOK = "webhook/send"


@dataclass
class Camp:
    harness: AppHarness
    sandbox: SandboxState
    wecom: CallbackSender
    sessions: Sessions
    clock: ManualClock

    @property
    def client(self) -> WeComClient:
        client: WeComClient = self.harness.app.state.runtime.wecom
        return client

    @property
    def sender(self) -> Sender:
        sender: Sender = self.harness.app.state.runtime.sender
        return sender

    async def flush(self) -> int:
        return await flush_due(sessions=self.sessions, wecom=self.client, clock=self.clock)

    async def send_all(self) -> None:
        """Run the sender until the outbox is empty, past the robot's 20-a-minute spacing."""
        for _ in range(20):
            await self.sender.run_once()
            self.clock.advance(timedelta(seconds=4))

    def robot_posts(self) -> list[Any]:
        return [c for c in self.sandbox.calls_to(WEBHOOK) if c.errcode == 0]

    async def rows(self, model: type[Any]) -> list[Any]:
        async with self.sessions() as session:
            return list((await session.execute(select(model))).scalars())


async def _seed(sessions: Sessions, clock: ManualClock) -> None:
    now = clock.now()
    async with sessions.begin() as session:
        cohort = Cohort(
            name="第 6 期",
            camp="跨境电商 7 天实战营",
            start_date=date(2026, 3, 2),
            days=7,
            channel_state="camp6",
            timezone="Asia/Shanghai",
            created_at=now,
            updated_at=now,
        )
        robot = Group(
            chat_id=ROBOT_CHAT,
            name="6期1群",
            channel="robot",
            robot_key=ROBOT_KEY,
            created_at=now,
            updated_at=now,
        )
        customer = Group(
            chat_id=CUSTOMER_CHAT,
            name="6期2群",
            channel="customer",
            owner_userid=STAFF,
            created_at=now,
            updated_at=now,
        )
        session.add_all([cohort, robot, customer])
        await session.flush()
        for group in (robot, customer):
            session.add(CohortGroup(group_id=group.id, cohort_id=cohort.id, linked_at=now))
        await import_pack(
            session=session, paths=[DEFAULT_PACK / "00_onboarding.yaml"], author="test", now=now
        )


@pytest.fixture
async def camp(
    settings: Settings, clock: ManualClock, engine: AsyncEngine, sessions: Sessions
) -> AsyncIterator[Camp]:
    sandbox = SandboxState(corp_id=CORP_ID, apps={AGENT_ID: "not-a-real-secret"}, clock=clock)
    sandbox.add_user(STAFF, "张老师")
    sandbox.add_robot(ROBOT_KEY)
    sandbox.add_customer_group(ROBOT_CHAT, STAFF, name="6期1群")
    sandbox.add_customer_group(CUSTOMER_CHAT, STAFF, name="6期2群")
    await _seed(sessions, clock)
    async with running_app(
        settings=settings,
        clock=clock,
        engine=engine,
        wecom_transport=sandbox_transport(sandbox),
        sender=False,
    ) as harness:
        wecom = CallbackSender(
            sandbox, harness.client, token=TOKEN, encoding_aes_key=AES_KEY, agent_id=AGENT_ID
        )
        yield Camp(harness, sandbox, wecom, sessions, clock)


async def _students(camp: Camp, count: int) -> list[tuple[str, str]]:
    """(external_userid, name): the first half known to CampBot, the rest only to WeCom."""
    students = [(f"wmStorm{i:04d}", f"学员{i:03d}") for i in range(count)]
    now = camp.clock.now()
    async with camp.sessions.begin() as session:
        for external_userid, name in students[: count // 2]:
            session.add(
                Member(external_userid=external_userid, name=name, created_at=now, updated_at=now)
            )
    for external_userid, name in students[count // 2 :]:
        camp.sandbox.add_external_contact(external_userid, name, STAFF)
    return students


async def test_a_200_join_storm_costs_a_few_robot_posts_naming_everyone_once(
    camp: Camp,
) -> None:
    students = await _students(camp, 200)
    for external_userid, _ in students:  # 200 joins within 2 s
        await camp.wecom.chat_members_joined(ROBOT_CHAT, [external_userid])
        camp.clock.advance(timedelta(milliseconds=10))
    assert {r.status for r in await inbox_rows(camp.sessions)} == {"handled"}
    assert len(await camp.rows(GroupJoinPending)) == 200

    assert await camp.flush() == 0  # the batch's 10 s are not over yet
    camp.clock.advance(timedelta(seconds=10))
    enqueued = await camp.flush()
    assert 1 <= enqueued <= 4
    # Half the names were unknown: one groupchat/get for the whole batch.
    assert len(camp.sandbox.calls_to("externalcontact/groupchat/get")) == 1
    await camp.send_all()

    posts = camp.robot_posts()
    assert len(posts) == enqueued
    text = "\n".join(p.json["text"]["content"] for p in posts)
    for _, name in students:
        assert text.count(name) == 1, name
    assert all(p.json["text"]["content"].startswith("欢迎 ") for p in posts)
    assert all(len(p.json["text"]["content"].encode()) <= 2048 for p in posts)
    assert "6期1群" in text

    # A second flush (a restart, another instance) finds nothing left to send.
    assert await camp.flush() == 0
    await camp.send_all()
    assert len(camp.robot_posts()) == enqueued
    rows = await camp.rows(OutboxMessage)
    pending = await camp.rows(GroupJoinPending)
    first = min(p.joined_at for p in pending)
    key = f"group_welcome:{pending[0].group_id}:{int(first.timestamp())}"
    assert {p.batch_key for p in pending} == {key}
    assert sorted(r.key for r in rows) == [f"{key}:{part}" for part in range(enqueued)]
    assert {r.status for r in rows} == {"sent"}


async def test_the_same_join_callback_again_greets_once(camp: Camp) -> None:
    await _students(camp, 2)
    sent = await camp.wecom.chat_members_joined(ROBOT_CHAT, ["wmStorm0000"])
    await camp.wecom.redeliver(sent)
    camp.clock.advance(timedelta(seconds=11))
    assert await camp.flush() == 1
    await camp.send_all()
    [post] = camp.robot_posts()
    assert post.json["text"]["content"].startswith("欢迎 学员000 加入6期1群！")


async def test_joins_after_the_window_make_a_second_batch(camp: Camp) -> None:
    await _students(camp, 4)
    await camp.wecom.chat_members_joined(ROBOT_CHAT, ["wmStorm0000", "wmStorm0001"])
    camp.clock.advance(timedelta(seconds=12))
    await camp.wecom.chat_members_joined(ROBOT_CHAT, ["wmStorm0002"])
    assert await camp.flush() == 1  # the first batch only; the second is still open
    camp.clock.advance(timedelta(seconds=10))
    assert await camp.flush() == 1
    await camp.send_all()
    contents = [p.json["text"]["content"] for p in camp.robot_posts()]
    assert contents[0].startswith("欢迎 学员000、学员001 加入")
    assert contents[1].startswith("欢迎 学员002 加入")


async def test_newcomers_nobody_can_name_are_greeted_as_new_classmates(camp: Camp) -> None:
    await camp.wecom.chat_members_joined(ROBOT_CHAT, ["wmNobody1", "wmNobody2"])
    camp.clock.advance(timedelta(seconds=11))
    assert await camp.flush() == 1
    await camp.send_all()
    [post] = camp.robot_posts()
    assert post.json["text"]["content"].startswith("欢迎 2 位新同学 加入6期1群！")


async def test_customer_group_joins_get_no_robot_post(camp: Camp) -> None:
    await camp.wecom.chat_members_joined(CUSTOMER_CHAT, ["wmA", "wmB"])
    camp.clock.advance(timedelta(seconds=11))
    assert await camp.flush() == 0
    assert await camp.rows(GroupJoinPending) == []
    assert camp.sandbox.calls_to(WEBHOOK) == []


async def test_a_version_gap_is_healed_from_groupchat_get(camp: Camp) -> None:
    await camp.wecom.chat_members_joined(ROBOT_CHAT, ["wmA"])
    camp.sandbox.join_customer_group(ROBOT_CHAT, ["wmB"])  # its callback never arrives
    camp.clock.advance(timedelta(minutes=1))
    await camp.wecom.chat_members_joined(ROBOT_CHAT, ["wmC"])
    [group] = [g for g in await camp.rows(Group) if g.chat_id == ROBOT_CHAT]
    assert group.needs_sync

    synced = await sync_flagged_groups(sessions=camp.sessions, wecom=camp.client, clock=camp.clock)
    assert synced == 1
    in_group = {m.member_key for m in await camp.rows(GroupMembership) if m.left_at is None}
    assert in_group == {STAFF, "wmA", "wmB", "wmC"}
    [group] = [g for g in await camp.rows(Group) if g.chat_id == ROBOT_CHAT]
    assert not group.needs_sync
    assert group.member_version == camp.sandbox.customer_groups[ROBOT_CHAT].member_version
    # Nothing flagged: nothing asked.
    assert (
        await sync_flagged_groups(sessions=camp.sessions, wecom=camp.client, clock=camp.clock) == 0
    )


async def test_a_member_who_left_unseen_is_marked_left_by_the_sync(camp: Camp) -> None:
    await camp.wecom.chat_members_joined(ROBOT_CHAT, ["wmA", "wmB"])
    camp.sandbox.leave_customer_group(ROBOT_CHAT, ["wmB"])  # lost callback
    await camp.wecom.chat_members_joined(ROBOT_CHAT, ["wmC"])
    await sync_flagged_groups(sessions=camp.sessions, wecom=camp.client, clock=camp.clock)
    left = {m.member_key for m in await camp.rows(GroupMembership) if m.left_at is not None}
    assert left == {"wmB"}


async def test_the_customer_group_template_is_added_then_edited_when_the_script_changes(
    camp: Camp,
) -> None:
    assert await sync_templates(sessions=camp.sessions, wecom=camp.client, clock=camp.clock) == 1
    [template] = camp.sandbox.welcome_templates.values()
    content = template.body["text"]["content"]
    assert content.startswith("欢迎 %NICKNAME% 加入跨境电商 7 天实战营第 6 期！")
    [row] = await camp.rows(GroupWelcomeTemplate)
    assert (row.template_id, row.script_key) == (template.template_id, "group_welcome")

    # Unchanged script: WeCom is not asked again.
    assert await sync_templates(sessions=camp.sessions, wecom=camp.client, clock=camp.clock) == 0

    async with camp.sessions.begin() as session:
        await update_script(
            session=session,
            key="group_welcome",
            author="小鹿",
            body="欢迎 {{ newcomer_names | join('、') }}！先看群公告，再做自我介绍～",
            now=camp.clock.now(),
        )
    assert await sync_templates(sessions=camp.sessions, wecom=camp.client, clock=camp.clock) == 1
    assert list(camp.sandbox.welcome_templates) == [template.template_id]
    assert template.body["text"]["content"] == "欢迎 %NICKNAME%！先看群公告，再做自我介绍～"
    adds = camp.sandbox.calls_to("externalcontact/group_welcome_template/add")
    edits = camp.sandbox.calls_to("externalcontact/group_welcome_template/edit")
    assert (len(adds), len(edits)) == (1, 1)
    assert edits[0].json["template_id"] == template.template_id


async def test_a_template_deleted_in_wecom_is_added_again(camp: Camp) -> None:
    await sync_templates(sessions=camp.sessions, wecom=camp.client, clock=camp.clock)
    camp.sandbox.welcome_templates.clear()  # an admin deleted it in WeCom
    async with camp.sessions.begin() as session:
        await update_script(
            session=session,
            key="group_welcome",
            author="小鹿",
            body="欢迎 {{ newcomer_names | join('、') }}！",
            now=camp.clock.now(),
        )
    assert await sync_templates(sessions=camp.sessions, wecom=camp.client, clock=camp.clock) == 1
    [template] = camp.sandbox.welcome_templates.values()
    [row] = await camp.rows(GroupWelcomeTemplate)
    assert row.template_id == template.template_id


async def test_two_instances_syncing_at_once_add_one_template(camp: Camp) -> None:
    """Every instance runs the template loop: two passes at once (as two instances' loops
    meet) must not both add the cohort's template while WeCom is slow to answer."""
    camp.sandbox.delay("externalcontact/group_welcome_template/add", 0.3)
    passes = [
        sync_templates(sessions=camp.sessions, wecom=camp.client, clock=camp.clock, holder=name)
        for name in ("instance-a", "instance-b")
    ]
    assert sorted(await asyncio.gather(*passes)) == [0, 1]
    assert len(camp.sandbox.calls_to("externalcontact/group_welcome_template/add")) == 1
    assert len(camp.sandbox.welcome_templates) == 1
    # The lease is given back: the next pass (either instance) finds nothing to do.
    again = await sync_templates(
        sessions=camp.sessions, wecom=camp.client, clock=camp.clock, holder="instance-b"
    )
    assert again == 0
    assert len(camp.sandbox.calls_to("externalcontact/group_welcome_template/add")) == 1
