"""The outbox: idempotent enqueue, retries by error kind, rate spacing, crash recovery."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import instances, outbox
from app.clock import ManualClock
from app.instances import Identity
from app.models import OutboxMessage, OutboxStatus
from app.sender import Sender
from app.wecom.errors import (
    RateLimitedError,
    SystemBusyError,
    WeComAPIError,
    WeComError,
    WeComTransportError,
)
from tests.support import T0


class ScriptedDeliver:
    """Stands in for the channel layer: records sends; fails as scripted per target."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.sent: list[tuple[str, datetime]] = []
        self.failures: dict[str, list[WeComError | Exception]] = defaultdict(list)
        self.calls = 0

    async def __call__(self, row: OutboxMessage) -> str | None:
        self.calls += 1
        if self.failures[row.target]:
            raise self.failures[row.target].pop(0)
        self.sent.append((row.key, self.clock.now()))
        return f"msg-{row.id}"


@pytest.fixture
def deliver(clock: ManualClock) -> ScriptedDeliver:
    return ScriptedDeliver(clock)


@pytest.fixture
def sender(
    sessions: async_sessionmaker[AsyncSession], deliver: ScriptedDeliver, clock: ManualClock
) -> Sender:
    return Sender(sessions=sessions, deliver=deliver, clock=clock)


async def _enqueue(
    sessions: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    key: str,
    target: str = "u1",
    channel: str = "appchat",
) -> int | None:
    async with sessions.begin() as session:
        return await outbox.enqueue(
            session=session,
            key=key,
            channel=channel,
            target=target,
            payload={"message": {"msgtype": "text", "content": key}},
            now=clock.now(),
        )


async def drain(sender: Sender, clock: ManualClock, *, rounds: int = 1000) -> None:
    """Run the sender, moving the clock to each next due time as its loop would sleep."""
    for _ in range(rounds):
        if await sender.run_once():
            continue
        due = await sender.next_due()
        if due is None:
            return
        clock.set(max(due, clock.now()))


async def _row(sessions: async_sessionmaker[AsyncSession], key: str) -> OutboxMessage:
    async with sessions() as session:
        return (
            await session.execute(select(OutboxMessage).where(OutboxMessage.key == key))
        ).scalar_one()


async def test_same_key_twice_sends_once(sessions, clock, sender, deliver) -> None:
    assert await _enqueue(sessions, clock, "welcome:wmA:code1") is not None
    assert await _enqueue(sessions, clock, "welcome:wmA:code1") is None
    await sender.run_once()
    await sender.run_once()
    assert [key for key, _ in deliver.sent] == ["welcome:wmA:code1"]
    row = await _row(sessions, "welcome:wmA:code1")
    assert (row.status, row.attempts, row.wecom_msgid) == ("sent", 1, f"msg-{row.id}")


async def test_busy_then_success_is_delivered_once(sessions, clock, sender, deliver) -> None:
    deliver.failures["u1"] = [SystemBusyError(-1, "system busy"), SystemBusyError(-1, "busy")]
    await _enqueue(sessions, clock, "k")
    for _ in range(3):
        await sender.run_once()
        clock.advance(timedelta(minutes=1))
    assert [key for key, _ in deliver.sent] == ["k"]
    row = await _row(sessions, "k")
    assert (row.status, row.attempts) == ("sent", 3)


async def test_rate_limited_row_waits_without_a_tight_loop(
    sessions, clock, sender, deliver
) -> None:
    deliver.failures["u1"] = [RateLimitedError(45009, "api freq out of limit")]
    await _enqueue(sessions, clock, "k")
    await sender.run_once()
    row = await _row(sessions, "k")
    assert row.status == "pending"
    assert row.not_before - clock.now() >= timedelta(seconds=60)
    for _ in range(50):  # the sender spins; the row must not be tried again before its time
        await sender.run_once()
        clock.advance(timedelta(seconds=1))
    assert deliver.calls == 1
    clock.advance(timedelta(seconds=11))
    await sender.run_once()
    assert (await _row(sessions, "k")).status == "sent"


@pytest.mark.parametrize(
    ("errcode", "errmsg"),
    [
        (41051, "customer and user are already chatting"),
        (93000, "invalid webhook url"),
        (45002, "content size out of limit"),
    ],
)
async def test_permanent_errors_are_dead_at_once_with_the_reason(
    sessions, clock, sender, deliver, errcode: int, errmsg: str
) -> None:
    deliver.failures["u1"] = [WeComAPIError(errcode, errmsg, path="/cgi-bin/x")]
    await _enqueue(sessions, clock, "k")
    await sender.run_once()
    row = await _row(sessions, "k")
    assert (row.status, row.attempts, row.last_errcode) == ("dead", 1, errcode)
    assert row.last_error is not None
    assert errmsg in row.last_error
    clock.advance(timedelta(hours=1))
    await sender.run_once()
    assert deliver.calls == 1


async def test_attempts_are_bounded(sessions, clock, sender, deliver) -> None:
    deliver.failures["u1"] = [SystemBusyError(-1, "busy") for _ in range(20)]
    await _enqueue(sessions, clock, "k")
    for _ in range(30):
        await sender.run_once()
        clock.advance(timedelta(minutes=15))
    row = await _row(sessions, "k")
    assert (row.status, row.attempts) == ("dead", outbox.MAX_ATTEMPTS)
    assert deliver.calls == outbox.MAX_ATTEMPTS


async def test_lost_answer_is_retried_and_recorded(sessions, clock, sender, deliver) -> None:
    deliver.failures["u1"] = [WeComTransportError("/cgi-bin/appchat/send: ReadTimeout")]
    await _enqueue(sessions, clock, "k")
    await sender.run_once()
    clock.advance(timedelta(minutes=1))
    await sender.run_once()
    row = await _row(sessions, "k")
    assert (row.status, row.in_doubt, row.attempts) == ("sent", 1, 2)


async def test_a_crashing_row_is_dead_not_stuck(sessions, clock, sender, deliver) -> None:
    deliver.failures["u1"] = [KeyError("message")]
    await _enqueue(sessions, clock, "k")
    await _enqueue(sessions, clock, "other", target="u2")
    await sender.run_once()
    row = await _row(sessions, "k")
    assert row.status == "dead"
    assert "内部错误" in (row.last_error or "")
    assert [key for key, _ in deliver.sent] == ["other"]


async def test_crash_recovery_resends_only_the_in_flight_row_in_doubt(
    sessions, clock, sender, deliver
) -> None:
    for n in range(5):
        await _enqueue(sessions, clock, f"k{n}", target=f"u{n}")
    # A sender died: it had claimed k0..k3 and was sending k0.
    async with sessions.begin() as session:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.key.in_(["k0", "k1", "k2", "k3"]))
            .values(
                status=OutboxStatus.CLAIMED,
                claimed_by="dead",
                lease_until=clock.now() + outbox.LEASE,
            )
        )
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.key == "k0")
            .values(status=OutboxStatus.SENDING)
        )
    await sender.run_once()
    assert [key for key, _ in deliver.sent] == ["k4"]  # the others are leased
    clock.advance(outbox.LEASE + timedelta(seconds=1))
    await sender.run_once()
    assert sorted(key for key, _ in deliver.sent) == ["k0", "k1", "k2", "k3", "k4"]
    in_doubt = {n: (await _row(sessions, f"k{n}")).in_doubt for n in range(5)}
    assert in_doubt == {0: 1, 1: 0, 2: 0, 3: 0, 4: 0}


async def test_robot_limit_is_planned_not_discovered(sessions, clock, sender, deliver) -> None:
    for n in range(100):
        await _enqueue(sessions, clock, f"robot-msg-{n}", target="robotkey", channel="robot")
    await _enqueue(sessions, clock, "other-robot", target="otherkey", channel="robot")
    start = clock.now()
    await drain(sender, clock)
    times = [at for key, at in deliver.sent if key.startswith("robot-msg")]
    assert len(times) == 100
    for i in range(len(times) - 20):
        assert times[i + 20] - times[i] > timedelta(seconds=60), "21 sends in one minute"
    # Close to the lower bound the limit sets: 99 gaps of 3 s.
    assert times[-1] - start <= timedelta(seconds=99 * 3 * 1.1)
    assert ("other-robot", start) in deliver.sent  # another robot is not held up


async def test_41051_on_the_repeat_of_a_send_cut_off_by_a_crash_means_it_was_sent(
    sessions: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    sender: Sender,
    deliver: ScriptedDeliver,
) -> None:
    # A sender died with this welcome on the wire (it had reached WeCom); its instance is
    # gone, so the row is sent again, and WeCom refuses the used code: it arrived.
    deliver.failures["code1"] = [WeComAPIError(41051, "customer and user has started chat")]
    await _enqueue(sessions, clock, "welcome:wmA:code1", target="code1", channel="welcome")
    async with sessions.begin() as session:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.key == "welcome:wmA:code1")
            .values(
                status=OutboxStatus.SENDING,
                claimed_by="killed-0",
                instance_id="killed",
                lease_until=clock.now() + outbox.LEASE,
            )
        )
    await sender.run_once()
    row = await _row(sessions, "welcome:wmA:code1")
    assert (row.status, row.in_doubt, row.attempts, row.last_errcode) == ("sent", 1, 1, 41051)
    assert "上一次结果未知的发送已送达" in (row.last_error or "")
    assert deliver.calls == 1


async def test_a_stuck_welcome_claim_is_freed_well_inside_the_20_s_window(
    sessions: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    sender: Sender,
    deliver: ScriptedDeliver,
) -> None:
    await _enqueue(sessions, clock, "welcome:wmB:code2", target="code2", channel="welcome")
    await _enqueue(sessions, clock, "broadcast", target="chat1")
    # A sender took both and got stuck before sending either; it still beats.
    stuck = Identity.of_this_process("sender")
    async with sessions.begin() as session:
        claimed = await outbox.claim_due(
            session=session, now=clock.now(), worker="stuck-0", limit=10, instance=stuck.id
        )
    assert len(claimed) == 2
    clock.advance(outbox.LEASES["welcome"] + timedelta(seconds=1))
    async with sessions.begin() as session:
        await instances.beat(session=session, identity=stuck, now=clock.now())
    await sender.run_once()
    assert [key for key, _ in deliver.sent] == ["welcome:wmB:code2"]
    assert clock.now() - T0 < timedelta(seconds=10)  # time left to send it elsewhere
    assert (await _row(sessions, "broadcast")).status == "claimed"  # its lease is a minute
