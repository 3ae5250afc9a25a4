"""The console bench's camp data (not a benchmark itself: `./run bench` skips `_` files).

20 cohorts of 100 students (2,000), each on its own day of a 21-day camp, 3 robot groups
each, the built-in pack's 28 timed schedules per cohort (planned by the schedules service;
the ones due earlier today fired, with their outbox rows), a realistic spread of check-ins
and homework (some reviewed), scores, 5,000 sent messages, dead and pending ones, Q&A rules
and unanswered questions, pending and approved 喜报, 5,000 audit entries, and two console
accounts (a 管理员 and a 助教 of two cohorts). Bulk inserts where no service logic is at
stake; the services where it is (schedules, scripts, Q&A rules, accounts).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, text, update

COHORTS = 20
STUDENTS_PER_COHORT = 100
GROUPS_PER_COHORT = 3
CAMP_DAYS = 21
TZ = "Asia/Shanghai"
ADMIN = ("bench", "bench-password-1")
ASSISTANT = ("zhujiao", "zhujiao-password-1")


@dataclass(frozen=True, slots=True)
class Seeded:
    cohort_ids: list[int]
    member_id: int
    group_id: int
    schedule_id: int
    rule_id: int
    entries: int


async def seed(url: str) -> Seeded:
    import app.main  # noqa: F401 - every model module, as the server has them
    from app.db import create_engine, create_sessionmaker

    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    now = datetime.now(UTC)
    rng = random.Random(13)
    try:
        async with sessions.begin() as session:
            cohorts = await _camps(session, now)
            members, groups = await _people(session, cohorts, now, rng)
            entries = await _checkins(session, cohorts, members, now, rng)
        schedule_id = await _schedules(sessions, cohorts, groups, now)
        async with sessions.begin() as session:
            await _outbox(session, groups, members, now, rng)
            rule_id = await _qa_and_xibao(session, cohorts, members, now)
            await _audit_and_accounts(session, cohorts, now)
        if engine.dialect.name == "postgresql":
            # A live database has its statistics (autovacuum's ANALYZE); a freshly bulk-loaded
            # one has none until autovacuum gets to it, at a moment that varies from run to
            # run, and the planner's choices for the stats pages flip with it.
            async with engine.begin() as connection:
                await connection.execute(text("ANALYZE"))
    finally:
        await engine.dispose()
    first = members[cohorts[0]][0]
    return Seeded(cohorts, first, groups[cohorts[0]][0][0], schedule_id, rule_id, entries)


async def _camps(session: Any, now: datetime) -> list[int]:
    from app.admin.models import Cohort
    from scripts_library.loader import seed_default_pack

    await seed_default_pack(session=session, now=now)
    today = (now.astimezone(ZoneInfo(TZ)) - timedelta(hours=4)).date()
    rows = [
        {
            "name": f"第 {i + 1} 期",
            "camp": f"训练营{i % 4}",
            "start_date": today - timedelta(days=i),
            "days": CAMP_DAYS,
            "channel_state": f"bench{i}",
            "timezone": TZ,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(COHORTS)
    ]
    return list((await session.execute(insert(Cohort).returning(Cohort.id), rows)).scalars())


async def _people(
    session: Any, cohorts: list[int], now: datetime, rng: random.Random
) -> tuple[dict[int, list[int]], dict[int, list[tuple[int, str]]]]:
    from app.admin.models import CohortGroup, CohortMember
    from app.models import Group, GroupMembership, Member

    groups: dict[int, list[tuple[int, str]]] = {}
    members: dict[int, list[int]] = {}
    for c in cohorts:
        keys = [f"bench-robot-{c}-{g}" for g in range(GROUPS_PER_COHORT)]
        rows = [
            {
                "name": f"{c}期{g + 1}群",
                "channel": "robot",
                "robot_key": k,
                "status": "active",
                "needs_sync": False,
                "created_at": now,
                "updated_at": now,
            }
            for g, k in enumerate(keys)
        ]
        ids = list((await session.execute(insert(Group).returning(Group.id), rows)).scalars())
        await session.execute(
            insert(CohortGroup), [{"group_id": g, "cohort_id": c, "linked_at": now} for g in ids]
        )
        groups[c] = list(zip(ids, keys, strict=True))
        people = [
            {
                "external_userid": f"wmB{c}x{n}",
                "name": f"学员{c}-{n}",
                "status": "active" if rng.random() > 0.05 else "lost",
                "staff_userid": f"staff{n % 4}",
                "channel_state": f"bench{c}",
                "created_at": now,
                "updated_at": now,
            }
            for n in range(STUDENTS_PER_COHORT)
        ]
        members[c] = list(
            (await session.execute(insert(Member).returning(Member.id), people)).scalars()
        )
        joined = now - timedelta(days=30)
        await session.execute(
            insert(CohortMember),
            [{"member_id": m, "cohort_id": c, "joined_at": joined} for m in members[c]],
        )
        await session.execute(
            insert(GroupMembership),
            [
                {
                    "group_id": ids[n % len(ids)],
                    "member_key": f"wmB{c}x{n}",
                    "member_id": m,
                    "joined_at": joined,
                }
                for n, m in enumerate(members[c])
            ],
        )
    return members, groups


async def _checkins(
    session: Any,
    cohorts: list[int],
    members: dict[int, list[int]],
    now: datetime,
    rng: random.Random,
) -> int:
    from bots.checkin.models import CheckinEntry, MemberScore

    entries, scores = [], []
    for i, c in enumerate(cohorts):
        today = i  # cohort i started i days ago
        for m in members[c]:
            keen = rng.random()
            days = [d for d in range(today + 1) if rng.random() < 0.4 + keen / 2]
            for d in days:
                at = now - timedelta(days=today - d, hours=2)
                entries.append(
                    {
                        "member_id": m,
                        "cohort_id": c,
                        "day": d,
                        "kind": "checkin",
                        "status": "on_time",
                        "text": f"第 {d} 天打卡",
                        "images": [],
                        "source": "h5",
                        "points": 10,
                        "submitted_at": at,
                        "updated_at": at,
                    }
                )
                if rng.random() < 0.5:
                    done = d < today - 1 and rng.random() < 0.7
                    entries.append(
                        {
                            "member_id": m,
                            "cohort_id": c,
                            "day": d,
                            "kind": "homework",
                            "status": "on_time",
                            "text": "作业：选品表",
                            "images": [],
                            "source": "h5",
                            "points": 20,
                            "submitted_at": at,
                            "updated_at": at,
                            "score": 90 if done else None,
                            "comment": "不错" if done else None,
                            "reviewed_by": "zhujiao" if done else None,
                            "reviewed_at": at if done else None,
                        }
                    )
            scores.append(
                {
                    "member_id": m,
                    "cohort_id": c,
                    "points": 10 * len(days),
                    "streak": min(len(days), 3),
                    "streak_day": today - 1,
                    "best_streak": len(days),
                    "checked_days": len(days),
                    "homework_days": 0,
                    "updated_at": now,
                }
            )
    for start in range(0, len(entries), 2000):
        await session.execute(insert(CheckinEntry), entries[start : start + 2000])
    await session.execute(insert(MemberScore), scores)
    return len(entries)


async def _schedules(
    sessions: Any, cohorts: list[int], groups: dict[int, list[tuple[int, str]]], now: datetime
) -> int:
    """The pack's timed schedules per cohort, planned by the service; today's past firings
    fired, with a sent outbox row per group under the firing's key."""
    from app.capability import Extensions
    from app.main import CAPABILITIES
    from app.models import OutboxMessage
    from app.settings import Settings
    from schedules import service
    from schedules.models import Firing, FiringStatus, Schedule
    from schedules.sends import due_label
    from scripts_library.models import Script

    extensions = Extensions.of(CAPABILITIES, settings=Settings(_env_file=None))  # type: ignore[call-arg]
    async with sessions.begin() as session:
        timed = [
            (s.key, s.schedule_hint)
            for s in (await session.scalars(select(Script))).all()
            if (s.schedule_hint or {}).get("type") == "cohort_day"
        ]
        for c in cohorts:
            for key, hint in timed:
                trigger = {"type": "cohort_day", "day": hint["day"], "time": hint["time"]}
                await service.create_schedule(
                    session=session,
                    script_key=key,
                    cohort_id=c,
                    trigger=trigger,
                    target=hint.get("target") or {"type": "cohort_groups"},
                    now=now,
                    default_tz=TZ,
                    extensions=extensions,
                )
    async with sessions.begin() as session:
        start = now - timedelta(hours=20)
        due = (
            await session.execute(
                select(Firing.id, Firing.due_at, Schedule.id, Schedule.cohort_id)
                .join(Schedule, Schedule.id == Firing.schedule_id)
                .where(Firing.due_at >= start, Firing.due_at <= now)
            )
        ).all()
        await session.execute(
            update(Firing)
            .where(Firing.id.in_([f for f, *_ in due]))
            .values(status=FiringStatus.FIRED, fired_at=now, enqueued=GROUPS_PER_COHORT)
        )
        rows = [
            {
                "key": f"schedule:{sid}:robot:{key}:{due_label(at)}",
                "channel": "robot",
                "target": key,
                "payload": {"msgtype": "text", "text": {"content": "今日任务"}},
                "status": "sent",
                "attempts": 1,
                "max_attempts": 8,
                "not_before": at,
                "in_doubt": 0,
                "created_at": at,
                "updated_at": at,
                "sent_at": at,
            }
            for _, at, sid, c in due
            for _, key in groups[c]
        ]
        if rows:
            await session.execute(insert(OutboxMessage), rows)
        first = await session.scalar(select(Schedule.id).order_by(Schedule.id).limit(1))
        return int(first or 0)


async def _outbox(
    session: Any,
    groups: dict[int, list[tuple[int, str]]],
    members: dict[int, list[int]],
    now: datetime,
    rng: random.Random,
) -> None:
    from app.models import OutboxMessage

    rows = []
    keys = [k for gs in groups.values() for _, k in gs]
    for n in range(5000):
        at = now - timedelta(minutes=n)
        status = "dead" if n % 100 == 0 else "pending" if n % 97 == 0 else "sent"
        rows.append(
            {
                "key": f"bench:{n}",
                "channel": "robot",
                "target": rng.choice(keys),
                "payload": {"msgtype": "text", "text": {"content": f"消息 {n}"}},
                "status": status,
                "attempts": 1,
                "max_attempts": 8,
                "not_before": at,
                "in_doubt": 0,
                "created_at": at,
                "updated_at": at,
                "last_errcode": 93000 if status == "dead" else None,
                "last_error": "errcode 93000: invalid webhook url" if status == "dead" else None,
                "sent_at": at if status == "sent" else None,
            }
        )
    for start in range(0, len(rows), 2000):
        await session.execute(insert(OutboxMessage), rows[start : start + 2000])


async def _qa_and_xibao(
    session: Any, cohorts: list[int], members: dict[int, list[int]], now: datetime
) -> int:
    from bots.qa import service as qa
    from bots.qa.models import QaUnanswered
    from bots.xibao.models import Achievement

    first = None
    for n in range(30):
        rule = await qa.create_rule(
            session=session,
            now=now,
            fields={
                "patterns": [f"问题{n}", f"关键词{n}"],
                "mode": "contains",
                "reply": f"回答 {n}",
                "question": f"问题{n}？",
            },
        )
        first = first or rule.id
    await session.execute(
        insert(QaUnanswered),
        [
            {
                "digest": f"{n:064d}",
                "normalized": f"没人答的问题{n}",
                "example": f"没人答的问题{n}？",
                "count": 1 + n % 7,
                "first_seen_at": now,
                "last_seen_at": now,
            }
            for n in range(200)
        ],
    )
    await session.execute(
        insert(Achievement),
        [
            {
                "member_id": members[c][n],
                "cohort_id": c,
                "title": "出单啦",
                "detail": "第一单",
                "status": "pending" if n < 2 else "approved",
                "source": "h5",
                "group_ids": None,
                "created_by": "h5",
                "created_at": now,
                "approved_by": None if n < 2 else "bench",
                "approved_at": None if n < 2 else now,
            }
            for c in cohorts
            for n in range(5)
        ],
    )
    return int(first or 0)


async def _audit_and_accounts(session: Any, cohorts: list[int], now: datetime) -> None:
    from app.admin.common import Actor
    from app.admin.models import AuditEntry
    from app.console import accounts
    from app.console.models import Role

    await session.execute(
        insert(AuditEntry),
        [
            {
                "at": now - timedelta(seconds=n),
                "actor": "bench",
                "resource": "cohorts",
                "resource_id": str(cohorts[n % len(cohorts)]),
                "action": "update",
                "before": {"name": "旧名"},
                "after": {"name": "新名"},
            }
            for n in range(5000)
        ],
    )
    actor = Actor("bench")
    await accounts.create_account(
        session=session,
        actor=actor,
        now=now,
        username=ADMIN[0],
        display_name="压测管理员",
        role=Role.ADMIN,
        password=ADMIN[1],
    )
    await accounts.create_account(
        session=session,
        actor=actor,
        now=now,
        username=ASSISTANT[0],
        display_name="压测助教",
        role=Role.ASSISTANT,
        password=ASSISTANT[1],
        wecom_userid="staff1",
        cohort_ids=cohorts[:2],
    )
