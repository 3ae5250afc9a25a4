"""The outbox across process boundaries, against the sandbox: a `campbot sender` killed
with kill -9 mid-way and restarted, and two senders draining one PostgreSQL outbox.
(A server killed in a storm of welcomes: test_welcome_storm_processes.py.)

The in-process tests (test_outbox.py) fake the crash by editing rows; here a real
process dies with requests on the wire, and real connections compete for the rows.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import outbox
from app.channels.deliver import ChannelDeliverer
from app.channels.messages import OutMessage
from app.channels.reach import Channel, Destination, enqueue_message
from app.clock import ManualClock
from app.migrations import upgrade
from app.models import Instance, OutboxMessage, OutboxStatus, RateSlot
from app.sender import SEND_CHUNK, Deliver, Sender
from app.wecom.client import WeComClient
from app.wecom_sandbox.server import sandbox_transport
from app.wecom_sandbox.state import SandboxState
from tests.processes import (
    AGENT_ID,
    CORP_ID,
    SECRET,
    Process,
    SandboxServer,
    campbot_env,
    database,
    deliveries,
    start_campbot,
    wait_until,
)
from tests.support import T0

APPCHAT = "/cgi-bin/appchat/send"
# `campbot sender` runs a Sender with its default concurrency: this many workers, each
# with at most one request on the wire.
SENDER_WORKERS = 4
# How long the sandbox holds an appchat send before answering: it is "in flight" meanwhile.
HOLD_S = 8.0
STOP_GRACE_S = 10.0
# How soon after the restarted sender registers the dead sender's rows must be on their
# way again (its claims name an instance that is gone: no lease to wait out).
RESUMED_WITHIN = timedelta(seconds=10)
# Robots in the two-sender test. A backlog of n rows per robot costs O(n²) claims (a row
# whose slot is taken is moved to that slot, where all but one lose again): 50 robots of
# 21 rows took 30 s here; 5 take a few seconds and still race for shared slots.
ROBOTS = 5


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}"
    upgrade(url)
    return url


def content(n: int) -> str:
    return f"第{n}条：今晚 8 点直播"


async def enqueue_all(
    sessions: async_sessionmaker[AsyncSession], routes: Sequence[Destination], now: datetime
) -> dict[str, str]:
    """One text per route, in order; the keys and their contents."""
    contents = {}
    async with sessions.begin() as session:
        for n, route in enumerate(routes):
            key = f"proc:{n:04d}"
            message = OutMessage("text", content(n))
            assert await enqueue_message(
                session=session, key=key, destination=route, message=message, now=now
            )
            contents[key] = message.content
    return contents


async def register(
    fake: httpx.AsyncClient, *, robots: Iterable[str] = (), chats: Iterable[str] = ()
) -> None:
    for key in robots:
        (await fake.post("/sandbox/robots", json={"key": key})).raise_for_status()
    for chatid in chats:
        body = {"chatid": chatid, "members": ["zhangsan", "lisi"]}
        (await fake.post("/sandbox/appchats", json=body)).raise_for_status()


def delivered_text(body: dict[str, Any]) -> str:
    return str(body["text"]["content"])


async def rows_by_key(sessions: async_sessionmaker[AsyncSession]) -> dict[str, OutboxMessage]:
    async with sessions() as session:
        rows = (await session.execute(select(OutboxMessage))).scalars()
        return {row.key: row for row in rows}


async def count_status(sessions: async_sessionmaker[AsyncSession], status: str) -> int:
    async with sessions() as session:
        count = select(func.count()).where(OutboxMessage.status == status)
        return int((await session.execute(count)).scalar_one())


async def sent_count_is(sessions: async_sessionmaker[AsyncSession], expected: int) -> bool:
    sent = await count_status(sessions, OutboxStatus.SENT)
    assert sent <= expected, f"{sent} rows sent, more than the {expected} expected"
    return sent == expected


async def held_at_the_fake(
    sessions: async_sessionmaker[AsyncSession], fake: httpx.AsyncClient
) -> bool:
    """Every worker of the sender is waiting for a held appchat answer, or holds nothing.

    Then no request is on its way that the sandbox has not recorded, so killing the sender
    now leaves a known state: the `sending` rows reached WeCom, the `claimed` ones did not.
    """
    statuses = (OutboxStatus.CLAIMED, OutboxStatus.SENDING)
    async with sessions() as session:
        held = (
            await session.execute(select(OutboxMessage).where(OutboxMessage.status.in_(statuses)))
        ).scalars()
        rows = list(held)
    sending = [row for row in rows if row.status == OutboxStatus.SENDING]
    workers = {row.claimed_by for row in sending}
    if not sending or any(row.claimed_by not in workers for row in rows):
        return False  # nothing on the wire yet, or a worker is about to send
    if any(row.channel != Channel.APPCHAT for row in sending):
        return False  # a robot send: answered at once, so the worker moves on
    reached = {d["target"] for d in await deliveries(fake)}
    return all(row.target in reached for row in sending)


async def registered_at(
    sessions: async_sessionmaker[AsyncSession], process: Process, *, after: datetime
) -> datetime | None:
    """When `process` registered as an instance (it is up, and takes over from here)."""
    query = select(func.max(Instance.started_at)).where(
        Instance.pid == process.pid, Instance.started_at >= after
    )
    async with sessions() as session:
        found: datetime | None = (await session.execute(query)).scalar_one()
        return found


def stop_all(processes: Iterable[Process]) -> list[int]:
    return [process.stop(timeout=STOP_GRACE_S) for process in processes]


async def test_a_sender_killed_mid_send_and_restarted_repeats_only_its_in_flight_rows(
    tmp_path: Path, sqlite_url: str, sandbox_server: SandboxServer
) -> None:
    # 120 robot rows (answered at once), then 200 appchat rows the sandbox holds: the
    # sender gets through the robots and is killed with an appchat send on each worker,
    # with more rows pending than its workers can have claimed (4 x Sender batch).
    robots = [f"crash-robot-{n:03d}" for n in range(120)]
    chats = [f"crashchat{n:03d}" for n in range(200)]
    routes = [Destination(Channel.ROBOT, key) for key in robots]
    routes += [Destination(Channel.APPCHAT, chatid) for chatid in chats]
    env = campbot_env(database_url=sqlite_url, api_base=sandbox_server.base_url)
    async with database(sqlite_url) as sessions, sandbox_server.client() as fake:
        await register(fake, robots=robots, chats=chats)
        (
            await fake.post("/sandbox/delay", json={"path": APPCHAT, "seconds": HOLD_S})
        ).raise_for_status()
        contents = await enqueue_all(sessions, routes, datetime.now(UTC))

        first = start_campbot(["sender"], env=env, cwd=tmp_path, name="sender-killed")
        try:
            await wait_until(
                lambda: held_at_the_fake(sessions, fake),
                what="every worker of the first sender to wait on a held send",
                watch=[first],
            )
        finally:
            first.kill()
        at_kill = {key: row.status for key, row in (await rows_by_key(sessions)).items()}
        in_flight = {key for key, status in at_kill.items() if status == OutboxStatus.SENDING}
        leased = in_flight | {k for k, s in at_kill.items() if s == OutboxStatus.CLAIMED}
        sent_before = {key for key, status in at_kill.items() if status == OutboxStatus.SENT}
        assert 0 < len(sent_before) < len(routes)
        # The rows that were sending are one chunk per worker (app.sender_steps): with
        # `campbot sender`'s four workers, up to 4 × SEND_CHUNK rows may reach WeCom twice.
        assert 1 <= len(in_flight) <= SENDER_WORKERS * SEND_CHUNK

        # Restarted: the new process finds the dead one's claims (their instance is gone)
        # and sends them with the rest at once, not after their lease.
        (await fake.post("/sandbox/clear-failures")).raise_for_status()
        restarted_at = datetime.now(UTC)
        second = start_campbot(["sender"], env=env, cwd=tmp_path, name="sender-restarted")
        try:

            async def second_registered() -> bool:
                return await registered_at(sessions, second, after=restarted_at) is not None

            await wait_until(second_registered, what="the restarted sender up", watch=[second])
            up_at = await registered_at(sessions, second, after=restarted_at)
            await wait_until(
                lambda: sent_count_is(sessions, len(routes)),
                what="the restarted sender to send every row, the dead one's included",
                watch=[second],
            )
        finally:
            stopped = await asyncio.to_thread(stop_all, [second])
        assert stopped == [0], second.log_tail()
        rows = await rows_by_key(sessions)
        seen = Counter(delivered_text(d["body"]) for d in await deliveries(fake))
    assert {row.status for row in rows.values()} == {OutboxStatus.SENT}
    # The dead one's rows went out within seconds of the restarted sender being up (its
    # interpreter's start not counted), not after their lease.
    resumed = {key: rows[key].sent_at for key in leased}
    assert up_at is not None
    deadline = up_at + RESUMED_WITHIN
    assert all(at is not None and at < deadline for at in resumed.values()), resumed
    # Each message reached WeCom once; only the rows on the wire at the kill came twice.
    assert seen == {contents[key]: 2 if key in in_flight else 1 for key in rows}
    assert {key: row.in_doubt for key, row in rows.items() if row.in_doubt} == dict.fromkeys(
        in_flight, 1
    )


class Counted:
    """A sender's deliver, remembering which rows this sender sent."""

    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self.keys: list[str] = []

    async def __call__(self, row: OutboxMessage) -> str | None:
        msgid = await self._deliver(row)
        self.keys.append(row.key)
        return msgid


@asynccontextmanager
async def sender_process_model(
    url: str, sandbox: SandboxState, clock: ManualClock
) -> AsyncIterator[tuple[Sender, Counted]]:
    """What one `campbot sender` process holds: its own engine (connection pool), HTTP
    client and token cache; only the database and WeCom are shared."""
    async with (
        database(url) as sessions,
        httpx.AsyncClient(
            base_url="https://qyapi.weixin.qq.com", transport=sandbox_transport(sandbox)
        ) as http,
    ):
        client = WeComClient(
            http=http,
            corp_id=CORP_ID,
            agent_id=AGENT_ID,
            secret=SECRET,
            sessions=sessions,
            clock=clock,
        )
        counted = Counted(ChannelDeliverer(client))
        yield Sender(sessions=sessions, deliver=counted, clock=clock), counted


async def drain_together(senders: Sequence[Sender], clock: ManualClock) -> None:
    """Run the senders side by side, moving the clock to the next due row when all idle."""
    for _ in range(10_000):
        if sum(await asyncio.gather(*(sender.run_once() for sender in senders))):
            continue
        due = await senders[0].next_due()
        if due is None:
            return
        clock.set(max(due, clock.now()))
    raise AssertionError("the senders did not drain the outbox")


def limit_held(times: Sequence[datetime], *, limit: int, window: timedelta) -> bool:
    """No `limit + 1` of these sends within any `window` (WeCom's rolling window)."""
    ordered = sorted(times)
    return all(ordered[i + limit] - ordered[i] >= window for i in range(len(ordered) - limit))


@pytest.mark.postgres
async def test_two_senders_on_postgresql_send_each_row_once_within_the_robot_limit(
    pg_url: str,
) -> None:
    clock = ManualClock(T0)
    state = SandboxState(corp_id=CORP_ID, apps={AGENT_ID: SECRET}, clock=clock)
    robots = [f"pg-robot-{n:02d}" for n in range(ROBOTS)]
    chats = [f"pgchat{n:03d}" for n in range(100)]
    for key in robots:
        state.add_robot(key)
    for chatid in chats:
        state.add_appchat(chatid, ["zhangsan", "lisi"])
    # 1,000 appchat rows (no per-target limit: the race is all about claiming), and 21
    # rows per robot, one more than WeCom lets a robot send in a minute, interleaved as a
    # fan-out to groups enqueues them.
    routes = [Destination(Channel.APPCHAT, chats[n % len(chats)]) for n in range(1000)]
    routes += [
        Destination(Channel.ROBOT, robots[n % len(robots)]) for n in range(21 * len(robots))
    ]
    async with AsyncExitStack() as stack:
        sessions = await stack.enter_async_context(database(pg_url))
        contents = await enqueue_all(sessions, routes, clock.now())
        models = [
            await stack.enter_async_context(sender_process_model(pg_url, state, clock))
            for _ in range(2)
        ]
        await drain_together([sender for sender, _ in models], clock)
        rows = await rows_by_key(sessions)

    first, second = (counted.keys for _, counted in models)
    assert first, "both senders took part"
    assert second, "both senders took part"
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(contents)
    assert {(row.status, row.attempts, row.in_doubt) for row in rows.values()} == {
        (OutboxStatus.SENT, 1, 0)
    }
    seen = Counter(delivered_text(d.body) for d in state.deliveries)
    assert seen == Counter(contents.values())
    assert [c for c in state.calls if c.errcode] == []  # no 45009, nor any other refusal
    for key in robots:
        times = [d.at for d in state.deliveries if d.channel == "webhook" and d.target == key]
        assert len(times) == 21
        assert limit_held(times, limit=20, window=timedelta(minutes=1)), key


async def _lock_waiters(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Connections to this database blocked on a lock held by another transaction."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with sessions() as session:
        return int((await session.execute(query)).scalar_one())


async def _claim_targets(
    sessions: async_sessionmaker[AsyncSession], *, worker: str, limit: int
) -> list[str]:
    async with sessions.begin() as session:
        rows = await outbox.claim_due(session=session, now=T0, worker=worker, limit=limit)
        return [row.target for row in rows]


async def _all_blocked_or_done(
    tasks: Sequence[asyncio.Task[list[str]]], watcher: async_sessionmaker[AsyncSession]
) -> bool:
    return await _lock_waiters(watcher) >= sum(not task.done() for task in tasks)


@pytest.mark.postgres
async def test_claims_naming_robots_in_opposite_orders_do_not_deadlock(pg_url: str) -> None:
    """Two senders whose due rows name the same robots in opposite orders (a fan-out over
    robots, claimed in batches). Seen in the two-sender test as `deadlock detected`."""
    async with database(pg_url) as a, database(pg_url) as b, database(pg_url) as other:
        async with a.begin() as session:
            # A's batch names robots r0, rX, r1; the next batch (B's) r1, r0.
            for n, robot in enumerate(["r0", "rX", "r1", "r1", "r0"]):
                await outbox.enqueue(
                    session=session,
                    key=f"fanout:{n}",
                    channel=Channel.ROBOT,
                    target=robot,
                    payload={"message": {"msgtype": "text", "content": str(n)}},
                    now=T0,
                )
            free = T0 - timedelta(minutes=1)
            session.add_all(
                RateSlot(rate_key=f"robot:{r}", next_free_at=free) for r in ("r0", "rX", "r1")
            )
        # Another sender is busy with robot rX's slot, so A stops there holding r0's.
        async with other.begin() as busy:
            slot = select(RateSlot).where(RateSlot.rate_key == "robot:rX").with_for_update()
            await busy.execute(slot)
            tasks = [asyncio.create_task(_claim_targets(a, worker="A", limit=3))]
            await wait_until(lambda: _all_blocked_or_done(tasks, other), what="A to block")
            tasks.append(asyncio.create_task(_claim_targets(b, worker="B", limit=2)))
            await wait_until(lambda: _all_blocked_or_done(tasks, other), what="B to block")
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [r for r in results if isinstance(r, BaseException)] == []
    claimed = Counter(t for r in results if not isinstance(r, BaseException) for t in r)
    assert claimed["rX"] == 1
    assert max(claimed.values()) == 1  # one send per robot per slot


@pytest.mark.postgres
async def test_two_sender_processes_on_postgresql_send_each_row_once(
    tmp_path: Path, pg_url: str, sandbox_server: SandboxServer
) -> None:
    chats = [f"procchat{n:03d}" for n in range(100)]
    routes = [Destination(Channel.APPCHAT, chats[n % len(chats)]) for n in range(1000)]
    env = campbot_env(database_url=pg_url, api_base=sandbox_server.base_url)
    async with database(pg_url) as sessions, sandbox_server.client() as fake:
        await register(fake, chats=chats)
        contents = await enqueue_all(sessions, routes, datetime.now(UTC))
        senders = [
            start_campbot(["sender"], env=env, cwd=tmp_path, name=f"sender-{n}") for n in range(2)
        ]
        try:
            await wait_until(
                lambda: sent_count_is(sessions, len(routes)),
                what="two sender processes to send every row",
                within=60,
                watch=senders,
            )
        finally:
            stopped = await asyncio.to_thread(stop_all, senders)
        rows = await rows_by_key(sessions)
        seen = Counter(delivered_text(d["body"]) for d in await deliveries(fake))
        sends = (await fake.get("/sandbox/calls", params={"path": APPCHAT})).json()["calls"]
        tokens = (await fake.get("/sandbox/calls", params={"path": "gettoken"})).json()["calls"]
    assert stopped == [0, 0], "\n".join(s.log_tail() for s in senders)
    assert {(row.status, row.attempts, row.in_doubt) for row in rows.values()} == {
        (OutboxStatus.SENT, 1, 0)
    }
    assert seen == Counter(contents.values())
    assert len(sends) == len(routes)
    assert {call["response"]["errcode"] for call in sends} == {0}
    # The processes share the access token through the database: one gettoken, not two.
    assert len(tokens) == 1
