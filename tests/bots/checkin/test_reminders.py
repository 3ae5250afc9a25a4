"""Reminders: only those not checked in today are reminded, each through the channel that
reaches them — robot groups @ their internal members, external students get a single mass
send with their personal link, internal members outside robot groups an app message —
end to end through the outbox into the WeCom sandbox; and the schedules filter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.h5_tokens import member_url
from app.admin.models import Cohort, CohortGroup
from app.channels.deliver import ChannelDeliverer
from app.clock import ManualClock
from app.models import Group, GroupMembership, Member, MemberStatus, OutboxMessage
from app.sender import Sender
from app.settings import Settings
from app.wecom.client import WeComClient
from app.wecom_sandbox.state import SandboxState
from bots.checkin import reminders, service
from bots.checkin.models import EntryKind
from schedules.models import Schedule
from schedules.planner import plan_schedule
from schedules.runner import fire_due
from schedules.targets import check_target
from scripts_library.loader import DEFAULT_PACK, import_pack
from scripts_library.models import Script
from tests.bots.checkin.camp import T_START, local, make_cohort, make_member
from tests.support import wired

Sessions = async_sessionmaker[AsyncSession]
BASE_URL = "https://camp.example.com"
DAY1_2100 = local(1, 21)  # 2026-03-03 21:00 Shanghai
TZ = "Asia/Shanghai"
# What app.main hands the scheduler: the check-in jobs, filter and providers among them.
EXTENSIONS = wired(Settings(PUBLIC_BASE_URL=BASE_URL, _env_file=None))  # type: ignore[call-arg]


@dataclass
class Camp:
    cohort_id: int
    ids: dict[str, int]  # member name -> id
    robot_group_id: int
    customer_group_id: int


async def _group(session: AsyncSession, cohort: Cohort, **fields: object) -> Group:
    group = Group(status="active", created_at=T_START, updated_at=T_START, **fields)
    session.add(group)
    await session.flush()
    session.add(CohortGroup(group_id=group.id, cohort_id=cohort.id, linked_at=T_START))
    return group


async def _seed(sessions: Sessions) -> Camp:
    """A Shanghai cohort with external students (two staff members), internal members (two
    in a robot group, one in none), a student on leave, a lost one and one nobody follows."""
    async with sessions.begin() as session:
        await import_pack(
            session=session, paths=[DEFAULT_PACK / "10_daily.yaml"], author="test", now=T_START
        )
        cohort = await make_cohort(session)
        robot = await _group(session, cohort, name="6期内部群", channel="robot", robot_key="rk-1")
        customer = await _group(
            session,
            cohort,
            name="6期1群",
            channel="customer",
            chat_id="wrChat1",
            owner_userid="zhangsan",
        )
        staff = Member(name="张老师", userid="zhangsan", created_at=T_START, updated_at=T_START)
        session.add(staff)
        ids: dict[str, int] = {}
        for name, staff_userid in (("小林", "zhangsan"), ("阿杰", "zhangsan"), ("Amy", "lisi")):
            member = await make_member(session, cohort, name)
            member.staff_userid = staff_userid
            ids[name] = member.id
        for name, userid in (("王五", "wangwu"), ("赵六", "zhaoliu"), ("孙七", "sunqi")):
            ids[name] = (await make_member(session, cohort, name, userid=userid)).id
        for name in ("王五", "赵六"):
            session.add(
                GroupMembership(
                    group_id=robot.id,
                    member_key=name,
                    member_id=ids[name],
                    joined_at=T_START,
                )
            )
        on_leave = await make_member(session, cohort, "请假生")
        on_leave.staff_userid = "zhangsan"
        ids["请假生"] = on_leave.id
        lost = await make_member(session, cohort, "流失生", status=MemberStatus.LOST)
        lost.staff_userid = "zhangsan"
        ids["流失生"] = lost.id
        ids["无人跟进"] = (await make_member(session, cohort, "无人跟进")).id
        await session.flush()
        # Today (day 1): 小林 and 赵六 checked in, 请假生 took leave; yesterday 阿杰 did.
        await _checkin(session, ids["阿杰"], local(0, 20))
        await _checkin(session, ids["小林"], local(1, 9))
        await _checkin(session, ids["赵六"], local(1, 12))
        await service.take_leave(session=session, member_id=ids["请假生"], now=local(1, 8))
        return Camp(cohort.id, ids, robot.id, customer.id)


async def _checkin(session: AsyncSession, member_id: int, when: datetime) -> None:
    await service.submit(
        session=session,
        member_id=member_id,
        kind=EntryKind.CHECKIN,
        text="今天读完第三章",
        images=(),
        now=when,
    )


def _sandbox(sandbox: SandboxState, camp: Camp) -> None:
    sandbox.add_robot("rk-1")
    for userid in ("zhangsan", "lisi", "wangwu", "zhaoliu", "sunqi"):
        sandbox.add_user(userid)
    sandbox.add_external_contact("wm小林1", "小林", "zhangsan")
    sandbox.add_external_contact("wm阿杰1", "阿杰", "zhangsan")
    sandbox.add_external_contact("wmAmy1", "Amy", "lisi")


async def _remind(sessions: Sessions, camp: Camp, now: datetime) -> reminders.ReminderReport:
    async with sessions.begin() as session:
        return await reminders.send_checkin_reminders(
            session=session, cohort_id=camp.cohort_id, now=now, public_base_url=BASE_URL
        )


async def _rows(sessions: Sessions) -> list[OutboxMessage]:
    async with sessions() as session:
        query = select(OutboxMessage).order_by(OutboxMessage.key)
        return list((await session.execute(query)).scalars())


async def _url(sessions: Sessions, member_id: int) -> str:
    async with sessions.begin() as session:
        return await member_url(
            session=session, member_id=member_id, public_base_url=BASE_URL, now=T_START
        )


async def test_only_those_not_checked_in_are_reminded_through_their_channel(
    sessions: Sessions,
    clock: ManualClock,
    sandbox: SandboxState,
    wecom_client: WeComClient,
) -> None:
    camp = await _seed(sessions)
    _sandbox(sandbox, camp)
    clock.set(DAY1_2100)

    report = await _remind(sessions, camp, DAY1_2100)
    ids = camp.ids
    assert report.mentioned == {camp.robot_group_id: ["wangwu"]}
    assert report.personal == {
        ids["阿杰"]: "customer_single",
        ids["Amy"]: "customer_single",
        ids["孙七"]: "app_message",
    }
    assert report.unreachable == [ids["无人跟进"]]

    sender = Sender(sessions=sessions, deliver=ChannelDeliverer(wecom_client), clock=clock)
    while await sender.run_once():
        clock.advance(timedelta(seconds=5))
    assert {row.status for row in await _rows(sessions)} == {"sent"}

    # The robot group: one message, @ exactly the unchecked internal member.
    [robot] = sandbox.delivered("webhook")
    assert (robot.target, robot.mentioned) == ("rk-1", ("wangwu",))
    assert "第 1 天的打卡还差 1 位同学" in robot.body["text"]["content"]

    # External students: one merged mass send per staff member (here one student each), the
    # same text for all — their personal links are in the welcome and on their page.
    tasks = {
        tuple(call.json["external_userid"]): call.json
        for call in sandbox.calls_to("externalcontact/add_msg_template")
    }
    assert set(tasks) == {("wm阿杰1",), ("wmAmy1",)}
    jie, amy = tasks[("wm阿杰1",)], tasks[("wmAmy1",)]
    assert (jie["chat_type"], jie["sender"], amy["sender"]) == ("single", "zhangsan", "lisi")
    assert await _url(sessions, ids["阿杰"]) not in jie["text"]["content"]
    assert "专属学习页" in jie["text"]["content"]
    assert "—— 张老师" in jie["text"]["content"]
    assert "—— 助教老师" in amy["text"]["content"]  # lisi is no member CampBot knows

    # An internal member in no robot group: an app message with the personal link.
    [app] = sandbox.delivered("message")
    assert app.target == "sunqi"
    assert await _url(sessions, ids["孙七"]) in app.body["text"]["content"]


async def test_reminding_twice_the_same_day_sends_nothing_twice(sessions: Sessions) -> None:
    camp = await _seed(sessions)
    await _remind(sessions, camp, DAY1_2100)
    first = [row.key for row in await _rows(sessions)]
    again = await _remind(sessions, camp, DAY1_2100 + timedelta(hours=1))
    assert (again.mentioned, again.personal) == ({}, {})
    assert [row.key for row in await _rows(sessions)] == first
    assert f"checkin_reminder:group:{camp.robot_group_id}:2026-03-03" in first
    assert any(k.startswith("checkin_reminder:customer_single:zhangsan:") for k in first)


async def test_a_check_in_after_midnight_still_counts_for_the_evening_before(
    sessions: Sessions,
) -> None:
    camp = await _seed(sessions)
    async with sessions.begin() as session:
        await _checkin(session, camp.ids["阿杰"], local(2, 1, 30))  # 01:30: still day 1
    report = await _remind(sessions, camp, local(2, 2))  # 02:00: day 1 until 04:00
    assert set(report.personal) == {camp.ids["Amy"], camp.ids["孙七"]}
    rows = await _rows(sessions)
    assert all(row.key.endswith(":2026-03-03") for row in rows)


async def test_nobody_is_reminded_outside_the_camp(sessions: Sessions) -> None:
    camp = await _seed(sessions)
    before = await _remind(sessions, camp, local(-1, 21))
    after = await _remind(sessions, camp, local(9, 21))
    assert (before.personal, after.personal, before.mentioned) == ({}, {}, {})
    assert await _rows(sessions) == []


async def _not_checked_in_names(sessions: Sessions, camp: Camp, now: datetime) -> set[str]:
    async with sessions() as session:
        query = await EXTENSIONS.member_filters["not_checked_in_today"](
            session, reminders.cohort_members(camp.cohort_id), camp.cohort_id, now
        )
        return {str(m.name) for m in (await session.execute(query)).scalars()}


async def test_the_filter_is_registered_for_schedules_and_matches_the_service(
    sessions: Sessions,
) -> None:
    target = {"type": "members", "filter": "not_checked_in_today"}
    check_target(target, filters=EXTENSIONS.member_filters)  # no TriggerError
    camp = await _seed(sessions)
    names = await _not_checked_in_names(sessions, camp, DAY1_2100)
    assert names == {"阿杰", "Amy", "王五", "孙七", "无人跟进"}
    async with sessions() as session:
        ids = await service.not_checked_in(
            session=session, cohort_id=camp.cohort_id, now=DAY1_2100
        )
    assert {camp.ids[n] for n in names} == set(ids)


async def test_a_schedule_with_the_filter_fires_to_exactly_the_unchecked(
    sessions: Sessions, clock: ManualClock
) -> None:
    camp = await _seed(sessions)
    due = DAY1_2100
    async with sessions.begin() as session:
        session.add(
            Script(
                key="nudge",
                title="提醒",
                category="daily",
                msgtype="text",
                body="{{ student_name }}，第 {{ day }} 天还没打卡哦",
                attachments=[],
                schedule_hint=None,
                description="",
                version=1,
                created_at=T_START,
                updated_at=T_START,
            )
        )
        schedule = Schedule(
            script_key="nudge",
            cohort_id=camp.cohort_id,
            trigger={"type": "at", "at": due.isoformat()},
            target={"type": "members", "filter": "not_checked_in_today"},
            enabled=True,
            created_at=T_START,
            updated_at=T_START,
        )
        session.add(schedule)
        await session.flush()
        await plan_schedule(session=session, schedule=schedule, now=T_START, default_tz=TZ)
    clock.set(due + timedelta(seconds=3))
    report = await fire_due(sessions=sessions, clock=clock, default_tz=TZ, extensions=EXTENSIONS)
    assert (report.fired, report.failed) == (1, 0)
    targets = {(row.channel, row.target) for row in await _rows(sessions)}
    # A personal text to external students: a 1:1 群SOP item each, no 群发 task.
    assert targets == {
        ("staff", "wm阿杰1"),
        ("staff", "wmAmy1"),
        ("app_message", "wangwu"),
        ("app_message", "sunqi"),
    }


async def test_the_daily_leaderboard_goes_to_each_group_once_a_day(
    sessions: Sessions, clock: ManualClock
) -> None:
    camp = await _seed(sessions)
    async with sessions.begin() as session:
        # A homework for 赵六 puts him first.
        await service.submit(
            session=session,
            member_id=camp.ids["赵六"],
            kind=EntryKind.HOMEWORK,
            text="作业",
            images=(),
            now=local(1, 13),
        )
    clock.set(local(1, 22))
    posted = await reminders.post_daily_leaderboards(
        sessions=sessions, clock=clock, cohort_id=camp.cohort_id
    )
    assert posted == 2
    rows = {row.key: row for row in await _rows(sessions)}
    robot = rows[f"leaderboard:{camp.robot_group_id}:2026-03-03"]
    customer = rows[f"leaderboard:{camp.customer_group_id}:2026-03-03"]
    assert (robot.channel, robot.target) == ("robot", "rk-1")
    # The daily leaderboard is worth no 群发 slot: the customer group gets it as 群SOP.
    assert (customer.channel, customer.target) == ("staff", "wrChat1")
    text = str(robot.payload["message"]["content"])  # type: ignore[index]
    assert "第 1 天积分榜" in text
    lines = [line for line in text.splitlines() if " 分" in line]
    assert lines[0].startswith("🥇 赵六")
    assert any("小林" in line for line in lines[1:])
    assert "今天有 2 位同学完成了打卡" in text  # 小林, 赵六 (leave is no check-in)
    assert "还有 5 位同学没打卡" in text  # 阿杰, Amy, 王五, 孙七, 无人跟进

    clock.advance(timedelta(minutes=30))
    again = await reminders.post_daily_leaderboards(
        sessions=sessions, clock=clock, cohort_id=camp.cohort_id
    )
    assert again == 0
    assert len(await _rows(sessions)) == 2


async def test_no_leaderboard_before_the_camp_starts(
    sessions: Sessions, clock: ManualClock
) -> None:
    camp = await _seed(sessions)
    clock.set(local(-1, 22))
    assert (
        await reminders.post_daily_leaderboards(
            sessions=sessions, clock=clock, cohort_id=camp.cohort_id
        )
        == 0
    )
    assert await _rows(sessions) == []
