"""Routing rules, priority, block, SkipHandler; failures recorded; the sweeper's bounds."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app import inbox, inbox_recovery
from app.clock import ManualClock
from app.models import InboxEvent
from app.settings import Settings
from app.wecom.events import parse_event
from app.wecom_sandbox.callbacks import CallbackBuilder
from bots.dispatch import Context, Dispatcher, Router, SkipHandler, run_handlers
from bots.dispatch.rules import ChangeType, FromUser, Keyword, Regex
from tests.bots.dispatch.conftest import DispatcherOf, claimed
from tests.support import T0, Recorder, contact_added, inbox_rows, running_app, text_message


async def _sweep(
    sessions: async_sessionmaker[AsyncSession], dispatcher: Dispatcher, clock: ManualClock
) -> int:
    """One pass of the sweeper; how many orphaned rows it ran."""
    return await inbox_recovery.sweep_once(sessions=sessions, processor=dispatcher, clock=clock)


def _ctx(xml: str, session: AsyncSession, settings: Settings, clock: ManualClock) -> Context:
    return Context(
        event=parse_event(xml), session=session, settings=settings, clock=clock, inbox_id=1
    )


async def test_priority_block_and_skip(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> None:
    calls: list[str] = []
    first, second = Router("first"), Router("second")

    @second.on_message("text", priority=5, block=False)
    async def audit(ctx: Context) -> None:
        calls.append("audit")

    @first.on_message("text", Keyword(("打卡",)), priority=20)
    async def checkin(ctx: Context) -> None:
        calls.append(f"checkin:{ctx.matched['keyword']}")
        raise SkipHandler

    @first.on_message("text", Regex(re.compile(r"第(\d+)天")), priority=30)
    async def day(ctx: Context) -> None:
        calls.append(f"day:{ctx.matched['match'].group(1)}")

    @first.on_message("text", priority=90)
    async def fallback(ctx: Context) -> None:
        calls.append("fallback")

    async with sessions() as session:
        ctx = _ctx(text_message("1", "打卡 第3天"), session, settings, clock)
        ran = await run_handlers(ctx, [first, second])
    assert calls == ["audit", "checkin:打卡", "day:3"]  # day blocks the fallback
    assert [name.rsplit(".", 1)[-1] for name in ran] == ["audit", "day"]


async def test_rules_are_and_ed_and_can_refuse(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> None:
    router = Router("r")
    calls: list[str] = []

    @router.on_event("change_external_contact", ChangeType("del_follow_user"))
    async def lost(ctx: Context) -> None:
        calls.append("lost")

    @router.on_event(
        "change_external_contact", ChangeType("add_external_contact"), FromUser("someone-else")
    )
    async def never(ctx: Context) -> None:
        calls.append("never")

    @router.on_event("change_external_contact", ChangeType("add_external_contact"))
    async def added(ctx: Context) -> None:
        calls.append("added")

    async with sessions() as session:
        await run_handlers(_ctx(contact_added("wm1"), session, settings, clock), [router])
    assert calls == ["added"]


async def test_time_critical_handler_skipped_when_too_old(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> None:
    router = Router("welcome")
    calls: list[str] = []

    @router.on_event("change_external_contact", max_age=timedelta(seconds=20), block=False)
    async def welcome(ctx: Context) -> None:
        calls.append("welcome")

    @router.on_event("change_external_contact")
    async def record(ctx: Context) -> None:
        calls.append("record")

    async with sessions() as session:
        clock.set(T0 + timedelta(seconds=5))
        await run_handlers(_ctx(contact_added("wm1", at=T0), session, settings, clock), [router])
        clock.set(T0 + timedelta(minutes=3))
        await run_handlers(_ctx(contact_added("wm1", at=T0), session, settings, clock), [router])
    assert calls == ["welcome", "record", "record"]


async def test_failing_handler_marks_row_failed_and_server_stays_up(
    settings: Settings,
    clock: ManualClock,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    wecom: CallbackBuilder,
) -> None:
    broken = Recorder("text", fail_with=RuntimeError("数据库里没有这个学员"))
    async with running_app(
        settings=settings, clock=clock, engine=engine, routers=[broken.router]
    ) as app:
        first = await app.deliver(wecom.post(text_message("7001"), at=T0))
        assert first.status_code == 200
        assert (await app.client.get("/healthz")).status_code == 200
    [row] = await inbox_rows(sessions)
    assert row.status == "failed"
    assert row.last_error == "RuntimeError: 数据库里没有这个学员"
    assert row.attempts == 1


async def test_handler_writes_roll_back_with_the_failure(
    clock: ManualClock,
    sessions: async_sessionmaker[AsyncSession],
    dispatcher_of: DispatcherOf,
) -> None:
    from app.models import Member
    from tests.support import count_rows

    router = Router("half")

    @router.on_event("change_external_contact")
    async def half_done(ctx: Context) -> None:
        ctx.session.add(
            Member(
                external_userid="wmHalf", status="active", created_at=ctx.now, updated_at=ctx.now
            )
        )
        await ctx.session.flush()
        raise ValueError("boom after a write")

    async with sessions.begin() as session:
        event = parse_event(contact_added("wmHalf"))
        row_id = await inbox.claim(
            session=session, event=event, body=contact_added("wmHalf"), now=clock.now()
        )
    assert row_id is not None
    dispatcher = dispatcher_of(router)
    await dispatcher.process(row_id, expected_attempts=0, late=False)
    assert await count_rows(sessions, Member) == 0
    [row] = await inbox_rows(sessions)
    assert row.status == "failed"


async def _claim_orphan(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, msg_id: str, attempts: int = 0
) -> int:
    """A row left `received`, as after a crash between the answer and the handler."""
    async with sessions.begin() as session:
        body = text_message(msg_id)
        row_id = await inbox.claim(
            session=session, event=parse_event(body), body=body, now=clock.now()
        )
        assert row_id is not None
        await session.execute(
            update(InboxEvent).where(InboxEvent.id == row_id).values(attempts=attempts)
        )
    return row_id


async def test_sweeper_runs_orphaned_rows_once(
    clock: ManualClock,
    sessions: async_sessionmaker[AsyncSession],
    dispatcher_of: DispatcherOf,
) -> None:
    recorder = Recorder("text")
    dispatcher = dispatcher_of(recorder.router)
    await _claim_orphan(sessions, clock, "8001", attempts=1)

    # Too fresh: the original worker may still be running it.
    assert await _sweep(sessions, dispatcher, clock) == 0
    clock.advance(inbox.STUCK_AFTER + timedelta(seconds=1))
    assert await _sweep(sessions, dispatcher, clock) == 1
    assert await _sweep(sessions, dispatcher, clock) == 0
    assert recorder.seen == ["msg:8001"]
    [row] = await inbox_rows(sessions)
    assert (row.status, row.attempts) == ("handled", 2)


async def test_sweeper_gives_up_after_max_attempts(
    clock: ManualClock,
    sessions: async_sessionmaker[AsyncSession],
    dispatcher_of: DispatcherOf,
) -> None:
    recorder = Recorder("text")
    dispatcher = dispatcher_of(recorder.router)
    await _claim_orphan(sessions, clock, "8002", attempts=inbox.MAX_ATTEMPTS)
    clock.advance(inbox.STUCK_AFTER + timedelta(seconds=1))
    assert await _sweep(sessions, dispatcher, clock) == 0
    [row] = await inbox_rows(sessions)
    assert row.status == "failed"
    assert row.last_error is not None
    assert f"{inbox.MAX_ATTEMPTS} attempts" in row.last_error
    assert recorder.seen == []


async def test_two_workers_never_run_one_row_twice(
    clock: ManualClock,
    sessions: async_sessionmaker[AsyncSession],
    dispatcher_of: DispatcherOf,
) -> None:
    recorder = Recorder("text")
    dispatcher = dispatcher_of(recorder.router)
    row_id = await _claim_orphan(sessions, clock, "8003", attempts=1)
    # Both saw attempts=1; only the first to count its attempt runs the handlers.
    await dispatcher.process(row_id, expected_attempts=1, late=True)
    await dispatcher.process(row_id, expected_attempts=1, late=True)
    assert recorder.seen == ["msg:8003"]


async def test_purge_forgets_only_old_handled_rows(
    clock: ManualClock,
    sessions: async_sessionmaker[AsyncSession],
    dispatcher_of: DispatcherOf,
) -> None:
    recorder = Recorder("text")
    dispatcher = dispatcher_of(recorder.router)
    handled = await _claim_orphan(sessions, clock, "8004")
    await dispatcher.process(handled, expected_attempts=0, late=False)
    async with sessions.begin() as session:
        await inbox.mark_failed(
            session=session,
            row_id=await _claim_orphan(sessions, clock, "8005"),
            error="x",
            now=clock.now(),
        )
    clock.advance(inbox.KEY_RETENTION + timedelta(hours=1))
    await _sweep(sessions, dispatcher, clock)
    assert [r.dedupe_key for r in await inbox_rows(sessions)] == ["msg:8005"]


# --------------------------------------------------------------------------- the fresh path


def _locked() -> OperationalError:
    return OperationalError("UPDATE inbox", {}, Exception("database is locked"))


async def test_fresh_row_runs_in_one_transaction_with_its_mark(
    clock: ManualClock, sessions: async_sessionmaker[AsyncSession], dispatcher_of: DispatcherOf
) -> None:
    recorder = Recorder("text")
    dispatcher = dispatcher_of(recorder.router)
    attempt, event = await claimed(sessions, clock, "9001")
    await dispatcher.process_claimed(attempt, event)
    assert recorder.seen == ["msg:9001"]
    [row] = await inbox_rows(sessions)
    assert (row.status, row.attempts, row.last_error) == ("handled", 1, None)


async def test_transient_error_in_a_handler_leaves_the_row_for_the_sweeper(
    clock: ManualClock, sessions: async_sessionmaker[AsyncSession], dispatcher_of: DispatcherOf
) -> None:
    flaky = Recorder("text", fail_with=_locked())
    dispatcher = dispatcher_of(flaky.router)
    attempt, event = await claimed(sessions, clock, "9002")
    await dispatcher.process_claimed(attempt, event)
    [row] = await inbox_rows(sessions)
    assert (row.status, row.attempts, row.last_error) == ("received", 1, None)

    flaky.fail_with = None  # the lock is gone by the time the sweeper comes
    clock.advance(inbox.STUCK_AFTER + timedelta(seconds=1))
    assert await _sweep(sessions, dispatcher, clock) == 1
    [row] = await inbox_rows(sessions)
    assert (row.status, row.attempts) == ("handled", 2)
    assert flaky.seen == ["msg:9002", "msg:9002"]


async def test_transient_error_starting_a_sweeper_attempt_does_not_escape(
    clock: ManualClock,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
    dispatcher_of: DispatcherOf,
) -> None:
    recorder = Recorder("text")
    dispatcher = dispatcher_of(recorder.router)
    row_id = await _claim_orphan(sessions, clock, "9003", attempts=1)

    async def locked(**_: object) -> None:
        raise _locked()

    monkeypatch.setattr(inbox, "begin_attempt", locked)
    await dispatcher.process(row_id, expected_attempts=1, late=True)  # no exception
    [row] = await inbox_rows(sessions)
    assert (row.status, row.attempts) == ("received", 1)
    assert recorder.seen == []


async def test_a_run_the_sweeper_took_over_changes_nothing(
    clock: ManualClock, sessions: async_sessionmaker[AsyncSession], dispatcher_of: DispatcherOf
) -> None:
    recorder = Recorder("text")
    dispatcher = dispatcher_of(recorder.router)
    attempt, event = await claimed(sessions, clock, "9004")
    # The sweeper presumed the first run dead and counted an attempt of its own.
    async with sessions.begin() as session:
        taken = await inbox.begin_attempt(
            session=session, row_id=attempt.id, expected_attempts=1, now=clock.now()
        )
    assert taken is not None
    await dispatcher.process_claimed(attempt, event)  # the stale run
    assert recorder.seen == []
    [row] = await inbox_rows(sessions)
    assert (row.status, row.attempts) == ("received", 2)


async def test_a_stale_run_that_fails_does_not_mark_the_row_failed(
    settings: Settings, clock: ManualClock, sessions: async_sessionmaker[AsyncSession]
) -> None:
    attempt, _ = await claimed(sessions, clock, "9005")
    async with sessions.begin() as session:
        assert not await inbox.mark_failed(
            session=session, row_id=attempt.id, attempts=2, error="stale", now=clock.now()
        )
    [row] = await inbox_rows(sessions)
    assert (row.status, row.last_error) == ("received", None)


async def test_time_critical_events_overtake_a_backlog(
    clock: ManualClock, sessions: async_sessionmaker[AsyncSession], dispatcher_of: DispatcherOf
) -> None:
    order: list[str] = []
    gate = asyncio.Event()
    router = Router("r")

    @router.on_message("text")
    async def text(ctx: Context) -> None:
        if ctx.event.dedupe_key == "msg:blocker":
            await gate.wait()
        order.append(ctx.event.dedupe_key)

    @router.on_event("change_external_contact", max_age=timedelta(seconds=20))
    async def welcome(ctx: Context) -> None:
        order.append("welcome")

    dispatcher = dispatcher_of(router, concurrency=1)
    claims = [await claimed(sessions, clock, n) for n in ("blocker", "t1", "t2")]
    body = contact_added("wmUrgent")
    urgent = await inbox.Intake(sessions).claim(
        event=parse_event(body), body=body, now=clock.now()
    )
    assert urgent is not None
    runs = [asyncio.ensure_future(dispatcher.process_claimed(*claims[0]))]
    await asyncio.sleep(0.05)  # the blocker holds the only worker (a batch of one) …
    runs += [asyncio.ensure_future(dispatcher.process_claimed(a, e)) for a, e in claims[1:]]
    await asyncio.sleep(0.05)  # … and t1, t2 wait behind it
    assert dispatcher.waiting == 2
    runs.append(asyncio.ensure_future(dispatcher.process_claimed(urgent)))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*runs)
    assert order == ["msg:blocker", "welcome", "msg:t1", "msg:t2"]


async def test_past_the_backlog_limit_intake_stops_following_its_runs(
    clock: ManualClock,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
    dispatcher_of: DispatcherOf,
) -> None:
    from bots.dispatch import dispatcher as dispatch

    recorder = Recorder("text")
    dispatcher = dispatcher_of(recorder.router)
    monkeypatch.setattr(dispatch, "FOLLOW_BACKLOG", 0)
    attempt, event = await claimed(sessions, clock, "9006")
    await dispatcher.process_claimed(attempt, event)  # returns at once: queued
    assert recorder.seen == []
    await dispatcher.drain()
    assert recorder.seen == ["msg:9006"]
    assert [r.status for r in await inbox_rows(sessions)] == ["handled"]


async def test_a_drain_cut_short_by_a_timeout_cancels_no_run(
    clock: ManualClock,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
    dispatcher_of: DispatcherOf,
) -> None:
    from bots.dispatch import dispatcher as dispatch

    gate = asyncio.Event()
    router = Router("slow")

    @router.on_message("text")
    async def slow(ctx: Context) -> None:
        await gate.wait()

    dispatcher = dispatcher_of(router)
    monkeypatch.setattr(dispatch, "FOLLOW_BACKLOG", 0)
    attempt, event = await claimed(sessions, clock, "9007")
    await dispatcher.process_claimed(attempt, event)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await dispatcher.drain()
    gate.set()
    await dispatcher.drain()
    assert [r.status for r in await inbox_rows(sessions)] == ["handled"]
