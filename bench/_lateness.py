"""The lateness part of bench/scheduler.py: pushes on the second (not a benchmark itself).

The real scheduler loop (`run_scheduler`, leading through its lock or lease) and the real
sender (`Sender.run_forever`, `ChannelDeliverer`, `WeComClient`, the sandbox in process as
WeCom) run on the system clock in this process. PUSHES pushes fall due one by one,
SPREAD_S apart, each to its own idle robot group; a third planned before the scheduler
starts, a third planned while it runs by this process (the commit wakes it), a third
written while it runs as another instance would (nothing wakes it: its re-read must see
them). Each push is measured from its due time to its outbox row (first seen by a reader
polling every POLL_S, so up to that much is the reader's) and to WeCom (the sandbox's
record of the delivery).
"""

# A helper of a script that reports by printing.
# ruff: noqa: T201

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import select

from app import instances
from app.admin.models import Cohort, CohortGroup
from app.capability import NO_EXTENSIONS
from app.channels.deliver import ChannelDeliverer
from app.clock import SystemClock
from app.db import create_engine, create_sessionmaker
from app.instances import Identity
from app.models import Group, OutboxMessage
from app.sender import Sender
from app.wecom.client import WeComClient
from app.wecom_sandbox.server import sandbox_transport
from app.wecom_sandbox.state import SandboxState
from bench._support import fresh_schema, percentile
from schedules.models import Firing, FiringStatus, Schedule
from schedules.planner import plan_schedule
from schedules.scheduler import run_scheduler
from scripts_library.models import Script

CORP_ID, AGENT_ID, SECRET = "wwcampbotbench0003", 1000002, "bench-secret"
TZ = "Asia/Shanghai"
PUSHES = 60
SPREAD_S = 0.37  # between two due times: they fall at every fraction of a second
LEAD_S = 3.0  # the first due time after the scheduler starts
POLL_S = 0.02
TARGET_ROW_P99_S = 1.0
TARGET_WECOM_P99_S = 2.0
HOW = ("before the start", "this process, while running", "another instance, while running")


@dataclass(slots=True)
class Lateness:
    backend: str
    to_row: list[float] = field(default_factory=list)
    to_wecom: list[float] = field(default_factory=list)
    by_how: dict[str, list[float]] = field(default_factory=dict)
    missing: int = 0

    @property
    def correct(self) -> bool:
        return self.missing == 0 and len(self.to_wecom) == PUSHES


async def _seed(sessions, due: list[datetime]) -> list[int]:  # type: ignore[no-untyped-def]
    """A cohort, PUSHES robot groups and one schedule each (planned for the first third:
    the others are planned while the scheduler runs). The schedules' ids."""
    now = datetime.now(UTC)
    stamps = {"created_at": now, "updated_at": now}
    async with sessions.begin() as session:
        cohort = Cohort(
            name="1 期", camp="实战营", start_date=date.today(), days=7, channel_state="late",
            timezone=TZ, **stamps,
        )  # fmt: skip
        session.add(cohort)
        session.add(
            Script(
                key="live", title="直播", category="daily", msgtype="text",
                body="{{ group_name }}：直播马上开始！", attachments=[], schedule_hint=None,
                description="", version=1, **stamps,
            )
        )  # fmt: skip
        await session.flush()
        ids = []
        for n, at in enumerate(due):
            group = Group(name=f"{n}群", channel="robot", robot_key=f"late-{n}", **stamps)
            session.add(group)
            await session.flush()
            session.add(CohortGroup(group_id=group.id, cohort_id=cohort.id, linked_at=now))
            schedule = Schedule(
                script_key="live",
                cohort_id=cohort.id,
                trigger={"type": "at", "at": at.isoformat()},
                target={"type": "groups", "group_ids": [group.id]},
                enabled=n % 3 == 0,
                **stamps,
            )
            session.add(schedule)
            await session.flush()
            if schedule.enabled:
                await plan_schedule(session=session, schedule=schedule, now=now, default_tz=TZ)
            ids.append(schedule.id)
        return ids


async def _plan_while_running(sessions, ids: list[int], due: list[datetime]) -> None:  # type: ignore[no-untyped-def]
    """Plan the other two thirds 0.2–2 s before they are due: by this process (plan_schedule,
    whose commit wakes the scheduler) or as another instance (a plain insert)."""
    rng = random.Random(7)
    order = sorted((at - timedelta(seconds=rng.uniform(0.2, 2.0)), n) for n, at in enumerate(due))
    for when, n in order:
        if n % 3 == 0:
            continue
        await asyncio.sleep(max((when - datetime.now(UTC)).total_seconds(), 0.0))
        async with sessions.begin() as session:
            if n % 3 == 1:
                schedule = await session.get(Schedule, ids[n])
                schedule.enabled = True
                await plan_schedule(
                    session=session, schedule=schedule, now=datetime.now(UTC), default_tz=TZ
                )
            else:
                session.add(
                    Firing(
                        schedule_id=ids[n],
                        occurrence=f"other-{n}",
                        due_at=due[n],
                        status=FiringStatus.PLANNED,
                        enqueued=0,
                    )
                )


async def _watch(sessions, seen: dict[str, datetime], stop: asyncio.Event) -> None:  # type: ignore[no-untyped-def]
    last = 0
    while not stop.is_set():
        async with sessions() as session:
            rows = await session.execute(
                select(OutboxMessage.id, OutboxMessage.key).where(OutboxMessage.id > last)
            )
            now = datetime.now(UTC)
            for row_id, key in rows:
                seen.setdefault(key, now)
                last = max(last, row_id)
        await asyncio.sleep(POLL_S)


async def measure_lateness(backend: str, url: str, sqlite_file: Path | None) -> Lateness:
    await fresh_schema(url, sqlite_file)
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    clock = SystemClock()
    first = datetime.now(UTC) + timedelta(seconds=LEAD_S + 2)
    due = [first + timedelta(seconds=SPREAD_S * n) for n in range(PUSHES)]
    ids = await _seed(sessions, due)
    sandbox = SandboxState(corp_id=CORP_ID, apps={AGENT_ID: SECRET}, clock=clock)
    for n in range(PUSHES):
        sandbox.add_robot(f"late-{n}")
    identity = Identity.of_this_process("server")
    seen: dict[str, datetime] = {}
    stop = asyncio.Event()
    try:
        async with (
            httpx.AsyncClient(
                base_url="https://qyapi.weixin.qq.com", transport=sandbox_transport(sandbox)
            ) as http,
            instances.running(sessions=sessions, identity=identity, clock=clock),
        ):
            wecom = WeComClient(
                http=http, corp_id=CORP_ID, agent_id=AGENT_ID, secret=SECRET,
                sessions=sessions, clock=clock,
            )  # fmt: skip
            sender = Sender(
                sessions=sessions, deliver=ChannelDeliverer(wecom), clock=clock,
                instance=identity.id,
            )  # fmt: skip
            loops = [
                run_scheduler(
                    stop, engine=engine, sessions=sessions, clock=clock, default_tz=TZ,
                    extensions=NO_EXTENSIONS, instance=identity.id,
                ),
                sender.run_forever(stop),
                _watch(sessions, seen, stop),
            ]  # fmt: skip
            tasks = [asyncio.ensure_future(loop) for loop in loops]
            await _plan_while_running(sessions, ids, due)
            await _delivered(sandbox, until=due[-1] + timedelta(seconds=30))
            stop.set()
            await asyncio.gather(*tasks)
    finally:
        await engine.dispose()
    return _figures(backend, due, ids, seen, sandbox)


async def _delivered(sandbox: SandboxState, *, until: datetime) -> None:
    """Until every push reached the sandbox, or `until`."""
    while len(sandbox.deliveries) < PUSHES and datetime.now(UTC) < until:  # noqa: ASYNC110
        await asyncio.sleep(0.1)


def _figures(
    backend: str,
    due: list[datetime],
    ids: list[int],
    seen: dict[str, datetime],
    sandbox: SandboxState,
) -> Lateness:
    result = Lateness(backend, by_how={how: [] for how in HOW})
    by_schedule = {f"schedule:{schedule_id}:": n for n, schedule_id in enumerate(ids)}
    for key, when in seen.items():
        n = next((i for prefix, i in by_schedule.items() if key.startswith(prefix)), None)
        if n is not None:
            late = (when - due[n]).total_seconds()
            result.to_row.append(late)
            result.by_how[HOW[n % 3]].append(late)
    delivered = {d.target: d.at for d in sandbox.deliveries}
    for n, at in enumerate(due):
        got = delivered.get(f"late-{n}")
        if got is None:
            result.missing += 1
        else:
            result.to_wecom.append((got - at).total_seconds())
    return result


def report_lateness(r: Lateness, *, brief: bool = False) -> None:
    row_ok = "ok" if percentile(r.to_row, 99) < TARGET_ROW_P99_S else "MISSED"
    wecom_ok = "ok" if percentile(r.to_wecom, 99) < TARGET_WECOM_P99_S else "MISSED"
    if brief:
        print(
            f"  lateness {r.backend:<20} p99 due → row {percentile(r.to_row, 99):.2f} s "
            f"({row_ok}), due → WeCom {percentile(r.to_wecom, 99):.2f} s ({wecom_ok}); "
            f"missing {r.missing}"
        )
        return
    print(f"\n-- {r.backend}: {PUSHES} pushes due {SPREAD_S} s apart, each to an idle robot")
    print(
        f"  due → outbox row  p50 / p99 / max {percentile(r.to_row, 50):.3f} / "
        f"{percentile(r.to_row, 99):.3f} / {max(r.to_row, default=math.nan):.3f} s  "
        f"(target p99 < {TARGET_ROW_P99_S:.0f} s: {row_ok}; the reader polls every "
        f"{POLL_S * 1000:.0f} ms)"
    )
    for how, values in r.by_how.items():
        worst = max(values, default=math.nan)
        print(f"    planned {how:<32} p99 {percentile(values, 99):.3f} s, max {worst:.3f} s")
    print(
        f"  due → WeCom       p50 / p99 / max {percentile(r.to_wecom, 50):.3f} / "
        f"{percentile(r.to_wecom, 99):.3f} / {max(r.to_wecom, default=math.nan):.3f} s  "
        f"(target p99 < {TARGET_WECOM_P99_S:.0f} s: {wecom_ok})"
    )
    if r.missing:
        print(f"  PROBLEM: {r.missing} pushes never reached WeCom")
