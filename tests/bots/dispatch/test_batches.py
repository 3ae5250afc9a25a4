"""Fresh runs in batches (on SQLite): runs queued behind a busy worker share one transaction
(one commit, one `handled` statement), run as if alone; a batch that fails rolls back whole
and each of its events runs again alone, so one event's error costs no other its run,
nothing is done twice, and a passive reply claimed in the rolled-back batch is claimed
again. On PostgreSQL each run keeps its own transaction: a batch holding its events' row
locks until one commit would deadlock against other transactions taking them in another
order. Each test states what it expects of both."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app import inbox
from app.clock import ManualClock
from app.db import backend
from app.models import InboxEvent
from app.wecom.events import WeComEvent
from app.wecom.passive import PassiveReply
from bots.dispatch import Context, Dispatcher, Router
from bots.qa.models import QaUnanswered
from bots.qa.service import record_unanswered
from tests.bots.dispatch.conftest import DispatcherOf, claimed
from tests.support import contact_added, inbox_rows

Sessions = async_sessionmaker[AsyncSession]


class Counting:
    """A router that counts each text under its content (one transactional row per event,
    `qa_unanswered`), holds the worker on 「等」 until released, and fails on 「坏」."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.ran: list[str] = []
        self.router = Router("counting")
        self.router.on_message("text")(self.handle)

    async def handle(self, ctx: Context) -> None:
        content = ctx.event.content  # type: ignore[attr-defined]
        self.ran.append(content)
        if content == "等":
            await self.gate.wait()
        await record_unanswered(session=ctx.session, question=content, now=ctx.now)
        if content == "坏":
            raise ValueError("这条消息的处理出错了")


def batches(sessions: Sessions) -> bool:
    return backend(sessions) == "sqlite"


@contextmanager
def commits(engine: AsyncEngine) -> Iterator[list[int]]:
    """Counts the transactions committed while open (one list item each)."""
    seen: list[int] = []

    def on_commit(_connection: object) -> None:
        seen.append(1)

    sa_event.listen(engine.sync_engine, "commit", on_commit)
    try:
        yield seen
    finally:
        sa_event.remove(engine.sync_engine, "commit", on_commit)


async def counts(sessions: Sessions) -> dict[str, int]:
    async with sessions() as session:
        rows = await session.execute(select(QaUnanswered.example, QaUnanswered.count))
        return {row.example: row.count for row in rows}


async def behind_a_busy_worker(
    dispatcher: Dispatcher,
    sessions: Sessions,
    clock: ManualClock,
    contents: list[str],
    before: Callable[[], Awaitable[None]] | None = None,
) -> tuple[asyncio.Future[None], list[asyncio.Future[None]]]:
    """「等」 holding the only worker (and SQLite's one connection), then `contents` queued
    behind it. Every row is claimed first, and `before` runs then, as nothing can use the
    database while 「等」 holds it."""
    rows = [await claimed(sessions, clock, str(n), c) for n, c in enumerate(["等", *contents])]
    if before is not None:
        await before()
    blocker = asyncio.ensure_future(dispatcher.process_claimed(*rows[0]))
    await asyncio.sleep(0.05)
    runs = [asyncio.ensure_future(dispatcher.process_claimed(*row)) for row in rows[1:]]
    await asyncio.sleep(0.05)
    assert dispatcher.waiting == len(contents)
    return blocker, runs


async def test_runs_queued_behind_a_busy_worker_share_one_commit(
    engine: AsyncEngine, sessions: Sessions, dispatcher_of: DispatcherOf, clock: ManualClock
) -> None:
    counting = Counting()
    worker = dispatcher_of(counting.router, concurrency=1)
    contents = [f"问题{n}" for n in range(6)]
    blocker, runs = await behind_a_busy_worker(worker, sessions, clock, contents)
    with commits(engine) as committed:
        counting.gate.set()
        await asyncio.gather(blocker, *runs)
    # The blocker's own transaction, then the six waiting events in one (or each its own).
    assert len(committed) == (2 if batches(sessions) else 7)
    assert counting.ran == ["等", *contents]
    assert await counts(sessions) == dict.fromkeys(["等", *contents], 1)
    assert {row.status for row in await inbox_rows(sessions)} == {"handled"}


async def test_a_failing_event_costs_the_rest_of_its_batch_nothing(
    sessions: Sessions, dispatcher_of: DispatcherOf, clock: ManualClock
) -> None:
    counting = Counting()
    worker = dispatcher_of(counting.router, concurrency=1)
    blocker, runs = await behind_a_busy_worker(worker, sessions, clock, ["甲", "坏", "乙"])
    counting.gate.set()
    await asyncio.gather(blocker, *runs)
    # The batch ran and rolled back; then each event alone.
    if batches(sessions):
        assert counting.ran == ["等", "甲", "坏", "甲", "坏", "乙"]
    else:
        assert counting.ran == ["等", "甲", "坏", "乙"]
    # Nothing of the rolled-back batch stayed, nothing was counted twice.
    assert await counts(sessions) == {"等": 1, "甲": 1, "乙": 1}
    rows = {row.dedupe_key: row for row in await inbox_rows(sessions)}
    assert [rows[k].status for k in ("msg:1", "msg:2", "msg:3")] == [
        "handled",
        "failed",
        "handled",
    ]
    assert "这条消息的处理出错了" in (rows["msg:2"].last_error or "")


async def test_a_row_another_worker_took_is_left_to_it(
    sessions: Sessions, dispatcher_of: DispatcherOf, clock: ManualClock
) -> None:
    counting = Counting()
    worker = dispatcher_of(counting.router, concurrency=1)

    async def sweeper_takes_the_second() -> None:
        async with sessions() as session, session.begin():
            await session.execute(
                update(InboxEvent).where(InboxEvent.dedupe_key == "msg:2").values(attempts=2)
            )

    blocker, runs = await behind_a_busy_worker(
        worker, sessions, clock, ["甲", "乙", "丙"], before=sweeper_takes_the_second
    )
    counting.gate.set()
    await asyncio.gather(blocker, *runs)
    assert counting.ran == ["等", "甲", "丙"]
    rows = {row.dedupe_key: row.status for row in await inbox_rows(sessions)}
    assert rows == {
        "msg:0": "handled",
        "msg:1": "handled",
        "msg:2": "received",
        "msg:3": "handled",
    }


async def test_a_passive_reply_claimed_in_a_rolled_back_batch_is_claimed_again(
    sessions: Sessions, dispatcher_of: DispatcherOf, clock: ManualClock
) -> None:
    gate = asyncio.Event()
    claims: list[bool] = []
    router = Router("replying")

    @router.on_message("text")
    async def reply(ctx: Context) -> None:
        content = ctx.event.content  # type: ignore[attr-defined]
        if content == "等":
            await gate.wait()
        if content == "问":

            async def never(*, session: AsyncSession, now: object) -> int | None:
                raise AssertionError("the callback carries the reply")

            claims.append(ctx.passive_reply("答", fallback=never))
        if content == "坏":
            raise ValueError("坏了")

    worker = dispatcher_of(router, concurrency=1)
    first, asked, broken = [
        await claimed(sessions, clock, str(n), c) for n, c in enumerate(["等", "问", "坏"])
    ]
    blocker = asyncio.ensure_future(worker.process_claimed(*first))
    await asyncio.sleep(0.05)
    passive = PassiveReply()
    done = worker.submit_replying(*asked, passive)
    assert done is not None
    bad = asyncio.ensure_future(worker.process_claimed(*broken))
    await asyncio.sleep(0.05)
    gate.set()
    text = await passive.wait(5.0, deadline=asyncio.get_running_loop().time() + 5.0)
    await asyncio.gather(blocker, done, bad)
    # Claimed in the batch (rolled back by 坏), claimed again when run alone, carried once.
    assert claims == ([True, True] if batches(sessions) else [True])
    assert text == "答"
    rows = {row.dedupe_key: row.status for row in await inbox_rows(sessions)}
    assert rows == {"msg:0": "handled", "msg:1": "handled", "msg:2": "failed"}


async def test_one_run_waiting_runs_alone(
    engine: AsyncEngine, sessions: Sessions, dispatcher_of: DispatcherOf, clock: ManualClock
) -> None:
    """No batch without company: the single path (its own `handled` mark) is unchanged."""
    counting = Counting()
    worker = dispatcher_of(counting.router, concurrency=1)
    row = await claimed(sessions, clock, "1", "独")
    with commits(engine) as committed:
        await worker.process_claimed(*row)
    assert len(committed) == 1
    assert await counts(sessions) == {"独": 1}


async def test_a_reply_waits_behind_runs_nobody_waits_for_not_behind_other_replies(
    sessions: Sessions,
    dispatcher_of: DispatcherOf,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run whose callback waits overtakes the queued runs nobody waits for, so those are
    no reason to give its passive reply up; only other waiting replies are."""
    from bots.dispatch import dispatcher as dispatch

    monkeypatch.setattr(dispatch, "FOLLOW_BACKLOG", 2)
    router = Router("replying")
    gate = asyncio.Event()

    @router.on_message("text")
    async def reply(ctx: Context) -> None:
        content = ctx.event.content  # type: ignore[attr-defined]
        if content == "等":
            await gate.wait()
        elif content.startswith("问"):

            async def never(*, session: AsyncSession, now: object) -> int | None:
                raise AssertionError("the callback carries the reply")

            ctx.passive_reply(f"答{content}", fallback=never)

    worker = dispatcher_of(router, concurrency=1)
    contents = ["等", "甲", "乙", "丙", "问1", "问2", "问3"]
    rows = [await claimed(sessions, clock, str(n), c) for n, c in enumerate(contents)]
    blocker = asyncio.ensure_future(worker.process_claimed(*rows[0]))
    await asyncio.sleep(0.05)
    quiet = [asyncio.ensure_future(worker.process_claimed(*row)) for row in rows[1:4]]
    await asyncio.sleep(0.05)
    assert worker.waiting == 3  # past FOLLOW_BACKLOG, none of them waited for
    passives = [PassiveReply() for _ in range(3)]
    done = [worker.submit_replying(*row, p) for row, p in zip(rows[4:], passives, strict=True)]
    assert done[0] is not None
    assert done[1] is not None
    assert done[2] is None  # behind two waiting replies: this callback does not wait
    deadline = asyncio.get_running_loop().time() + 5
    waits = [asyncio.ensure_future(p.wait(5.0, deadline=deadline)) for p in passives]
    gate.set()
    await asyncio.gather(blocker, *quiet, *(d for d in done if d is not None))
    assert await asyncio.gather(*waits) == ["答问1", "答问2", None]


async def test_past_the_queue_cap_a_run_waits_as_its_row_a_welcome_does_not(
    sessions: Sessions,
    dispatcher_of: DispatcherOf,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under an overload that lasts, the in-memory queue stops growing: past MAX_QUEUED a
    fresh run waits as its row id only, and its row is read back and run once the queue is
    down to half; a time-critical one (the welcome's 20 s) is queued all the same."""
    from bots.dispatch import dispatcher as dispatch

    monkeypatch.setattr(dispatch, "MAX_QUEUED", 2)
    counting = Counting()
    urgent = Router("urgent")
    welcomed: list[str] = []

    @urgent.on_event("change_external_contact", max_age=timedelta(seconds=20))
    async def welcome(ctx: Context) -> None:
        welcomed.append(ctx.event.dedupe_key)

    worker = dispatcher_of(counting.router, urgent, concurrency=1)
    more: list[tuple[inbox.Attempt, WeComEvent]] = []
    body = contact_added("wmUrgent")

    async def claim_more() -> None:  # before 等 holds SQLite's one connection
        more.append(await claimed(sessions, clock, "3", "丙"))
        more.append(await claimed(sessions, clock, "", body=body))

    blocker, runs = await behind_a_busy_worker(
        worker, sessions, clock, ["甲", "乙"], before=claim_more
    )
    late, (new_contact, contact_event) = more
    async with asyncio.timeout(5):  # past the cap: returns at once, nothing queued
        await worker.process_claimed(*late)
    assert worker.waiting == 2
    welcoming = asyncio.ensure_future(worker.process_claimed(new_contact, contact_event))
    await asyncio.sleep(0.05)
    assert worker.waiting == 3  # the welcome is queued all the same
    counting.gate.set()
    await asyncio.gather(blocker, *runs, welcoming)
    await worker.drain()
    assert counting.ran == ["等", "甲", "乙", "丙"]  # 丙 read back once there was room
    assert welcomed == [new_contact.dedupe_key]
    assert {row.status for row in await inbox_rows(sessions)} == {"handled"}
