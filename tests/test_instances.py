"""Instances and their heartbeats: work of a process that is gone is taken over at once (a
restart on the same machine) or within seconds (stale heartbeat); work of a live process,
and of this one, is left alone. Both backends; the process-level proof is in
test_welcome_storm_processes.py and test_outbox_processes.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from functools import partial

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import inbox, inbox_recovery, instances, outbox
from app.clock import ManualClock
from app.instances import Identity
from app.models import InboxEvent, Instance, OutboxMessage
from app.settings import Settings
from app.wecom.events import parse_event
from bots.dispatch import Context, Dispatcher, Router
from bots.dispatch.rules import ChangeType
from tests.support import Recorder, contact_added, inbox_rows, text_message

Sessions = async_sessionmaker[AsyncSession]
HERE = Identity.of_this_process("server")


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that ran here and ended (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def other(kind: str = "server", *, pid: int, pid_space: str = HERE.pid_space) -> Identity:
    """Another process's identity (a fresh id)."""
    return replace(Identity.of_this_process(kind), pid=pid, pid_space=pid_space)


async def live_ids(sessions: Sessions, clock: ManualClock) -> set[str]:
    async with sessions() as session:
        return set((await session.execute(instances.live_ids(clock.now()))).scalars())


async def claimed_by(sessions: Sessions, clock: ManualClock, owner: str) -> dict[str, int]:
    """Three rows of `owner`'s: claimed, sending (its request on the wire), and pending;
    their ids by status."""
    ids = {}
    async with sessions.begin() as session:
        for status in ("claimed", "sending", "pending"):
            row_id = await outbox.enqueue(
                session=session,
                key=f"{owner}:{status}",
                channel="appchat",
                target=f"chat-{status}",
                payload={"message": {"msgtype": "text", "content": status}},
                now=clock.now(),
            )
            assert row_id is not None
            if status != "pending":
                await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == row_id)
                    .values(
                        status=status,
                        claimed_by=f"{owner}-0",
                        instance_id=owner,
                        lease_until=clock.now() + outbox.LEASE,
                    )
                )
            ids[status] = row_id
    return ids


async def statuses(sessions: Sessions) -> dict[str, tuple[str, int]]:
    async with sessions() as session:
        rows = (await session.execute(select(OutboxMessage))).scalars()
        return {row.key: (row.status, row.in_doubt) for row in rows}


async def test_a_restart_takes_over_the_dead_process_claims_at_once(
    sessions: Sessions, clock: ManualClock, dead_pid: int
) -> None:
    killed = other(pid=dead_pid)
    await instances.register(sessions=sessions, identity=killed, now=clock.now())
    await claimed_by(sessions, clock, killed.id)

    clock.advance(timedelta(seconds=1))  # restarted a second later: its heartbeat is fresh
    ended = await instances.register(sessions=sessions, identity=HERE, now=clock.now())
    assert ended == [killed.id]
    assert await live_ids(sessions, clock) == {HERE.id}
    async with sessions.begin() as session:
        assert await outbox.recover_expired(session=session, now=clock.now(), me=HERE.id) == 2
    # The claimed row as it was; the one on the wire may have arrived: counted in doubt.
    assert await statuses(sessions) == {
        f"{killed.id}:claimed": ("pending", 0),
        f"{killed.id}:sending": ("pending", 1),
        f"{killed.id}:pending": ("pending", 0),
    }
    await instances.unregister(sessions=sessions, identity=HERE)


async def test_a_live_process_keeps_its_claims_until_its_heartbeat_stops(
    sessions: Sessions, clock: ManualClock
) -> None:
    # Another process of this machine that runs (our parent), or one on another machine.
    neighbour = other(pid=os.getppid())
    remote = other(pid=os.getpid(), pid_space="another-machine")
    for identity in (neighbour, remote):
        await instances.register(sessions=sessions, identity=identity, now=clock.now())
        await claimed_by(sessions, clock, identity.id)
    assert await instances.register(sessions=sessions, identity=HERE, now=clock.now()) == []

    clock.advance(instances.STALE_AFTER)
    async with sessions.begin() as session:
        await instances.beat(session=session, identity=neighbour, now=clock.now())
        assert await outbox.recover_expired(session=session, now=clock.now(), me=HERE.id) == 0

    clock.advance(timedelta(seconds=1))  # the remote one missed its beats for too long
    async with sessions.begin() as session:
        assert await outbox.recover_expired(session=session, now=clock.now(), me=HERE.id) == 2
    found = await statuses(sessions)
    assert found[f"{remote.id}:sending"] == ("pending", 1)
    assert found[f"{neighbour.id}:sending"] == ("sending", 0)
    assert found[f"{neighbour.id}:claimed"] == ("claimed", 0)
    await instances.unregister(sessions=sessions, identity=HERE)


async def test_own_claims_are_never_taken_back_even_when_the_own_beat_is_late(
    sessions: Sessions, clock: ManualClock
) -> None:
    await instances.register(sessions=sessions, identity=HERE, now=clock.now())
    await claimed_by(sessions, clock, HERE.id)
    clock.advance(instances.STALE_AFTER * 3)
    async with sessions.begin() as session:
        assert await outbox.recover_expired(session=session, now=clock.now(), me=HERE.id) == 0
    # Another process, though, takes them once the lease is out (outbox.LEASE).
    clock.advance(outbox.LEASE)
    async with sessions.begin() as session:
        assert await outbox.recover_expired(session=session, now=clock.now(), me="other") == 2
    await instances.unregister(sessions=sessions, identity=HERE)


async def test_an_earlier_process_with_our_pid_is_a_previous_incarnation(
    sessions: Sessions, clock: ManualClock
) -> None:
    # A container restarted: the new process has the pid the crashed one had (pid 1).
    crashed = other(pid=HERE.pid)
    async with sessions.begin() as session:
        await instances.beat(session=session, identity=crashed, now=clock.now())  # its row
    assert await instances.register(sessions=sessions, identity=HERE, now=clock.now()) == [
        crashed.id
    ]
    # A second instance of this same process (tests run several) is not taken for one.
    sibling = other(pid=HERE.pid)
    assert await instances.register(sessions=sessions, identity=sibling, now=clock.now()) == []
    assert await live_ids(sessions, clock) == {HERE.id, sibling.id}
    for identity in (HERE, sibling):
        await instances.unregister(sessions=sessions, identity=identity)


ZOMBIE_WITHIN_S = 30.0  # an interpreter that runs "pass", on a busy shared box


def _is_zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "Z"


def test_a_killed_process_not_yet_reaped_is_not_running() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + ZOMBIE_WITHIN_S
        while not _is_zombie(child.pid):  # exited, but a zombie until waited for
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        assert not instances.pid_running(child.pid)
    finally:
        child.wait()
    assert not instances.pid_running(child.pid)
    assert instances.pid_running(os.getpid())


async def test_the_heartbeat_keeps_the_instance_and_a_clean_stop_unregisters(
    sessions: Sessions, clock: ManualClock
) -> None:
    identity = other(pid=os.getpid(), pid_space="elsewhere")
    async with instances.running(sessions=sessions, identity=identity, clock=clock):
        async with sessions.begin() as session:  # taken for gone by mistake, then it beats
            await session.execute(delete(Instance))
            await instances.beat(session=session, identity=identity, now=clock.now())
        assert await live_ids(sessions, clock) == {identity.id}
    assert await live_ids(sessions, clock) == set()


# --------------------------------------------------------------------------- the inbox


def _dispatcher(
    sessions: Sessions, settings: Settings, clock: ManualClock
) -> tuple[Dispatcher, Recorder, list[str]]:
    """A dispatcher with a text recorder and a time-critical contact handler."""
    texts = Recorder("text")
    urgent = Router("urgent")
    welcomed: list[str] = []

    @urgent.on_event(
        "change_external_contact",
        ChangeType("add_external_contact"),
        max_age=timedelta(seconds=20),
    )
    async def welcome(ctx: Context) -> None:
        welcomed.append(ctx.event.dedupe_key)

    dispatcher = Dispatcher(
        routers=[texts.router, urgent],
        sessions=sessions,
        settings=settings,
        clock=clock,
        instance=HERE.id,
    )
    return dispatcher, texts, welcomed


async def _received(
    sessions: Sessions, clock: ManualClock, body: str, *, instance_id: str | None
) -> int:
    async with sessions.begin() as session:
        row_id = await inbox.claim(
            session=session,
            event=parse_event(body),
            body=body,
            now=clock.now(),
            attempts=1,
            instance_id=instance_id,
        )
    assert row_id is not None
    return row_id


async def test_events_of_a_gone_instance_are_resumed_at_once_the_urgent_first(
    sessions: Sessions, settings: Settings, clock: ManualClock, dead_pid: int
) -> None:
    dispatcher, texts, welcomed = _dispatcher(sessions, settings, clock)
    killed, neighbour = other(pid=dead_pid), other(pid=os.getppid())
    for identity in (killed, neighbour):
        await instances.register(sessions=sessions, identity=identity, now=clock.now())
    await _received(sessions, clock, text_message("7001"), instance_id=killed.id)
    await _received(sessions, clock, contact_added("wmNew", at=clock.now()), instance_id=killed.id)
    await _received(sessions, clock, text_message("7002"), instance_id=neighbour.id)
    await _received(sessions, clock, text_message("7003"), instance_id=HERE.id)
    await _received(sessions, clock, text_message("7004"), instance_id=None)  # pre-instances
    clock.advance(timedelta(seconds=2))
    await instances.register(sessions=sessions, identity=HERE, now=clock.now())

    async with sessions() as session:
        found = await inbox_recovery.find_orphaned(
            session=session, now=clock.now(), me=HERE.id, first=dispatcher.time_critical_kinds
        )
    assert [kind for _, _, kind in found] == ["event.change_external_contact", "text"]
    resumed = await inbox_recovery.resume_orphaned(
        sessions=sessions, processor=dispatcher, clock=clock, me=HERE.id
    )
    assert resumed == 2
    assert (len(welcomed), texts.seen) == (1, ["msg:7001"])  # in time for the welcome
    rows = {row.dedupe_key: row for row in await inbox_rows(sessions)}
    assert (rows["msg:7001"].status, rows["msg:7001"].attempts) == ("handled", 2)
    assert rows["msg:7001"].instance_id == HERE.id
    # A live neighbour's, our own, and an unowned row are not this pass's to run.
    assert {k: rows[k].status for k in ("msg:7002", "msg:7003", "msg:7004")} == dict.fromkeys(
        ("msg:7002", "msg:7003", "msg:7004"), "received"
    )
    assert (
        await inbox_recovery.resume_orphaned(
            sessions=sessions, processor=dispatcher, clock=clock, me=HERE.id
        )
        == 0
    )
    await instances.unregister(sessions=sessions, identity=HERE)


async def test_a_resumer_runs_the_rows_an_instance_left_when_it_stops(
    sessions: Sessions, settings: Settings, clock: ManualClock
) -> None:
    dispatcher, texts, _ = _dispatcher(sessions, settings, clock)
    neighbour = other(pid=os.getppid())
    for identity in (neighbour, HERE):
        await instances.register(sessions=sessions, identity=identity, now=clock.now())
    resume = partial(
        inbox_recovery.resume_when_needed,
        inbox_recovery.ResumeWatch(),
        sessions=sessions,
        processor=dispatcher,
        clock=clock,
        me=HERE.id,
    )
    await _received(sessions, clock, text_message("7201"), instance_id=neighbour.id)
    assert await resume() == 0  # the neighbour lives: its row is its own
    await instances.unregister(sessions=sessions, identity=neighbour)  # it stopped
    assert await resume() == 1
    assert texts.seen == ["msg:7201"]
    await instances.unregister(sessions=sessions, identity=HERE)


def test_a_resume_pass_reads_the_inbox_only_when_it_may_find_something() -> None:
    watch = inbox_recovery.ResumeWatch()
    two, one = frozenset({"a", "b"}), frozenset({"a"})
    assert watch.needs_scan(two, now=0.0)  # the first pass
    watch.scanned(two, 0, now=0.0)
    assert not watch.needs_scan(two, now=1.0)  # nobody left: nothing new to find
    assert watch.needs_scan(one, now=2.0)  # "b" stopped or went stale
    watch.scanned(one, inbox_recovery.RESUME_BATCH, now=2.0)
    assert watch.needs_scan(one, now=3.0)  # a full pass left more
    watch.scanned(one, 3, now=3.0)
    assert not watch.needs_scan(one, now=4.0)
    assert watch.needs_scan(one, now=3.0 + inbox_recovery.RESUME_AT_LEAST_S)  # now and then


async def test_an_event_that_keeps_killing_its_process_is_resumed_a_bounded_number_of_times(
    sessions: Sessions, settings: Settings, clock: ManualClock
) -> None:
    dispatcher, texts, _ = _dispatcher(sessions, settings, clock)
    row_id = await _received(sessions, clock, text_message("7101"), instance_id="crashed")
    async with sessions.begin() as session:
        await session.execute(
            update(InboxEvent).where(InboxEvent.id == row_id).values(attempts=inbox.MAX_ATTEMPTS)
        )
    assert (
        await inbox_recovery.resume_orphaned(
            sessions=sessions, processor=dispatcher, clock=clock, me=HERE.id
        )
        == 0
    )
    assert texts.seen == []  # left to give_up_exhausted, which shows it as failed
