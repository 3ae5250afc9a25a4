"""The outbox: every message CampBot sends, written first, sent once (ARCHITECTURE §1 rules 3–5).

`enqueue` is insert-or-ignore on the idempotency key (`enqueue_many` for a fan-out). A
sender (`app.sender.Sender`) claims due rows here (`FOR UPDATE SKIP LOCKED` on PostgreSQL),
reserving each row's rate slot in the database (limits hold across instances), and marks a
chunk `sending` just before its requests (`app.sender_steps`: the chunk's outcomes and the
next chunk's marks in one commit). Claims name their instance (app.instances): after a
`kill -9` the rows of a gone instance, or of a claim past its lease (a welcome's ends well
inside its 20 s), go back to `pending` within seconds. Claimed rows go back untouched; only
a `sending` row may have reached WeCom: it is sent again and counted `in_doubt` (WeCom's
duplicate check drops an app message's repeat; a welcome's is refused with 41051, which
confirms the first arrived). A kill repeats ≤ concurrency × SEND_CHUNK rows, each counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, or_, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.types import TypeEngine

from app import metrics
from app.db import dialect_insert
from app.instances import gone
from app.models import OutboxMessage, OutboxStatus, RateSlot

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
LEASE = timedelta(seconds=60)  # longer than any one WeCom request may take
# Leases of channels whose sends expire: a welcome's code works 20 s after the event, so
# a claim stuck in a live sender must be freed, and the row sent by another, well before.
LEASES: Mapping[str, timedelta] = {"welcome": timedelta(seconds=8)}
# WeCom's per-target limits as the spacing between two sends; a little over the exact
# quotient so a rolling window never sees one too many (20/min per robot, 30/min per member).
RATE_INTERVALS: Mapping[str, timedelta] = {
    "robot": timedelta(seconds=60 / 20 * 1.02),
    "app_message": timedelta(seconds=60 / 30 * 1.02),
}
ERROR_LIMIT = 2000  # characters of an error kept on its row
# Rows a person sends, not the sender: 群SOP items wait for their staff member to post them
# from the chat toolbar (`app.channels.staff`); the sender never claims them (SENDABLE).
STAFF_CHANNEL = "staff"
SENDABLE: tuple[ColumnElement[bool], ...] = (
    OutboxMessage.status == OutboxStatus.PENDING,
    OutboxMessage.channel != STAFF_CHANNEL,
)


def rate_key(channel: str, target: str) -> str | None:
    return f"{channel}:{target}" if channel in RATE_INTERVALS else None


async def enqueue(
    *,
    session: AsyncSession,
    key: str,
    channel: str,
    target: str,
    payload: Mapping[str, Any],
    now: datetime,
    not_before: datetime | None = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> int | None:
    """Write the intent to send; the new row's id, or None when the key was already there."""
    insert = dialect_insert(session)
    statement = (
        insert(OutboxMessage)
        .values(
            key=key,
            channel=channel,
            target=target,
            payload=dict(payload),
            rate_key=rate_key(channel, target),
            status=OutboxStatus.PENDING,
            attempts=0,
            max_attempts=max_attempts,
            not_before=not_before or now,
            in_doubt=0,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(OutboxMessage.id)
    )
    return (await session.execute(statement)).scalar_one_or_none()


class NewMessage(NamedTuple):
    """One row for `enqueue_many`: what `enqueue` takes besides the session and the time.

    A NamedTuple, as fan-outs build them by the hundred thousand: a frozen dataclass
    costs ~4× as much to make."""

    key: str
    channel: str
    target: str
    payload: Mapping[str, Any]
    not_before: datetime | None = None
    max_attempts: int = MAX_ATTEMPTS


# Rows per INSERT: bigger statements gain nothing measurable (bench/scheduler.py).
ENQUEUE_BATCH = 500
# The columns `enqueue_many` writes, in its statements' order; the rest keep their defaults.
_MANY_COLUMNS = (
    "key",
    "channel",
    "target",
    "payload",
    "rate_key",
    "max_attempts",
    "not_before",
    "status",
    "attempts",
    "in_doubt",
    "created_at",
    "updated_at",
)
# PostgreSQL: one array per varying column, unnested into rows; the constants bound once.
_UNNEST_INSERT = f"""
INSERT INTO {OutboxMessage.__tablename__} ({", ".join(_MANY_COLUMNS)})
SELECT key, channel, target, payload::json, rate_key, max_attempts, not_before, $8, 0, 0, $9, $9
FROM unnest(
    $1::varchar[], $2::varchar[], $3::varchar[], $4::text[], $5::varchar[], $6::int[],
    $7::timestamptz[]
) AS new (key, channel, target, payload, rate_key, max_attempts, not_before)
ON CONFLICT (key) DO NOTHING RETURNING id
"""


@lru_cache(maxsize=8)
def _values_insert(rows: int) -> str:
    """SQLite: a multi-row VALUES for `rows` rows. ?1 is the time and ?2 the status, bound
    once; each row takes the next seven (numbered: SQLite allows up to 32,766)."""
    varying = 7
    values = ", ".join(
        "(" + ", ".join(f"?{3 + n * varying + c}" for c in range(varying)) + ", ?2, 0, 0, ?1, ?1)"
        for n in range(rows)
    )
    return (
        f"INSERT INTO {OutboxMessage.__tablename__} ({', '.join(_MANY_COLUMNS)}) "
        f"VALUES {values} ON CONFLICT (key) DO NOTHING RETURNING id"
    )


class _DriverValues:
    """Values as the driver takes them, converted by the columns' own types (JSON, UTC
    datetimes), so the rows are those `enqueue` writes. Each distinct payload is converted
    once: a fan-out's rows mostly share a handful of payload objects."""

    def __init__(self, dialect: Dialect, now: datetime) -> None:
        columns = OutboxMessage.__table__.c
        self._json = self._processor(columns.payload.type, dialect)
        self._time = self._processor(columns.not_before.type, dialect)
        self.now = self._time(now)
        self._payloads: dict[int, Any] = {}

    @staticmethod
    def _processor(type_: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any]:
        process = type_.dialect_impl(dialect).bind_processor(dialect)
        return process or (lambda value: value)

    def payload(self, message: NewMessage) -> Any:
        # By identity: the rows being written keep their payloads alive meanwhile.
        found = self._payloads.get(id(message.payload))
        if found is None:
            found = self._payloads[id(message.payload)] = self._json(dict(message.payload))
        return found

    def not_before(self, message: NewMessage) -> Any:
        return self.now if message.not_before is None else self._time(message.not_before)


async def _insert_unnest(
    connection: AsyncConnection, values: _DriverValues, rows: Sequence[NewMessage]
) -> int:
    arrays: tuple[list[Any], ...] = ([], [], [], [], [], [], [])
    keys, channels, targets, payloads, rate_keys, max_attempts, not_befores = arrays
    for message in rows:
        keys.append(message.key)
        channels.append(message.channel)
        targets.append(message.target)
        payloads.append(values.payload(message))
        rate_keys.append(rate_key(message.channel, message.target))
        max_attempts.append(message.max_attempts)
        not_befores.append(values.not_before(message))
    parameters = (*arrays, str(OutboxStatus.PENDING), values.now)
    return len((await connection.exec_driver_sql(_UNNEST_INSERT, parameters)).all())


async def _insert_values(
    connection: AsyncConnection, values: _DriverValues, rows: Sequence[NewMessage]
) -> int:
    parameters: list[Any] = [values.now, str(OutboxStatus.PENDING)]
    for message in rows:
        parameters += (
            message.key,
            message.channel,
            message.target,
            values.payload(message),
            rate_key(message.channel, message.target),
            message.max_attempts,
            values.not_before(message),
        )
    statement = _values_insert(len(rows))
    return len((await connection.exec_driver_sql(statement, tuple(parameters))).all())


async def enqueue_many(*, session: AsyncSession, rows: Sequence[NewMessage], now: datetime) -> int:
    """`enqueue` for many rows: one multi-row INSERT … ON CONFLICT DO NOTHING per
    ENQUEUE_BATCH rows. A key already there, or repeated in `rows` (the first one wins),
    is skipped. Answers how many rows were created.

    The statements are written for the driver: through the ORM, building and binding a
    row costs more than the database's work on it (~40 µs against ~5), and a scheduler
    tick may write 100,000 rows.
    """
    if not rows:
        return 0
    connection = await session.connection()
    write = _insert_unnest if connection.dialect.name == "postgresql" else _insert_values
    values = _DriverValues(connection.dialect, now)
    created = 0
    for start in range(0, len(rows), ENQUEUE_BATCH):
        created += await write(connection, values, rows[start : start + ENQUEUE_BATCH])
    return created


async def _reserve_slot(
    session: AsyncSession, key: str, interval: timedelta, now: datetime
) -> datetime | None:
    """Take the bucket's next slot if it is free now; else when it will be."""
    insert = dialect_insert(session)
    await session.execute(
        insert(RateSlot)
        .values(rate_key=key, next_free_at=now)
        .on_conflict_do_nothing(index_elements=["rate_key"])
    )
    taken = await session.execute(
        update(RateSlot)
        .where(RateSlot.rate_key == key, RateSlot.next_free_at <= now)
        .values(next_free_at=now + interval)
        .returning(RateSlot.rate_key)
    )
    if taken.first() is not None:
        return None
    return (
        await session.execute(select(RateSlot.next_free_at).where(RateSlot.rate_key == key))
    ).scalar_one()


def _due(now: datetime) -> Select[OutboxMessage]:
    return (
        select(OutboxMessage)
        .where(*SENDABLE, OutboxMessage.not_before <= now)
        .order_by(OutboxMessage.not_before, OutboxMessage.id)
        .with_for_update(skip_locked=True)
    )


async def _claim(
    session: AsyncSession,
    rows: Sequence[OutboxMessage],
    *,
    now: datetime,
    worker: str,
    intervals: Mapping[str, timedelta],
    lease: timedelta = LEASE,
    leases: Mapping[str, timedelta] = LEASES,
    instance: str | None = None,
) -> list[OutboxMessage]:
    """Claim the rows whose rate slot is free now; move the others to their coming slot."""
    claimed = []
    # Per bucket: the time the next row of it may go, so rows of one busy bucket are
    # spread over its coming slots instead of all retrying the same one.
    next_slot: dict[str, datetime] = {}
    # Buckets are locked in key order, so two claims never wait on each other's slots.
    for row in sorted(rows, key=lambda r: r.rate_key or ""):
        interval = intervals.get(row.channel)
        if row.rate_key and interval:
            if row.rate_key in next_slot:
                next_slot[row.rate_key] += interval
                row.not_before = next_slot[row.rate_key]
                metrics.RATE_LIMIT_WAITS.labels(row.channel).inc()
                continue
            busy_until = await _reserve_slot(session, row.rate_key, interval, now)
            next_slot[row.rate_key] = busy_until or now
            if busy_until is not None:
                row.not_before = busy_until
                metrics.RATE_LIMIT_WAITS.labels(row.channel).inc()
                continue
        row.status, row.claimed_by, row.instance_id = OutboxStatus.CLAIMED, worker, instance
        row.lease_until, row.updated_at = now + leases.get(row.channel, lease), now
        claimed.append(row)
    return sorted(claimed, key=lambda r: (r.not_before, r.id))


async def claim_due(
    *,
    session: AsyncSession,
    now: datetime,
    worker: str,
    limit: int,
    intervals: Mapping[str, timedelta] = RATE_INTERVALS,
    lease: timedelta = LEASE,
    leases: Mapping[str, timedelta] = LEASES,
    instance: str | None = None,
) -> list[OutboxMessage]:
    """Rows this worker may send now (FOR UPDATE SKIP LOCKED keeps workers apart)."""
    due = (await session.execute(_due(now).limit(limit))).scalars().all()
    return await _claim(
        session,
        due,
        now=now,
        worker=worker,
        intervals=intervals,
        lease=lease,
        leases=leases,
        instance=instance,
    )


async def claim_row(
    *,
    session: AsyncSession,
    row_id: int,
    now: datetime,
    worker: str,
    intervals: Mapping[str, timedelta],
    lease: timedelta,
    leases: Mapping[str, timedelta],
    instance: str | None,
) -> list[OutboxMessage]:
    """The row, claimed, if it is due and its rate slot is free now (else none)."""
    due = (await session.execute(_due(now).where(OutboxMessage.id == row_id))).scalars()
    return await _claim(
        session,
        due.all(),
        now=now,
        worker=worker,
        intervals=intervals,
        lease=lease,
        leases=leases,
        instance=instance,
    )


def _abandoned(now: datetime, me: str | None) -> ColumnElement[bool]:
    """Claims no one will finish: past their lease, or held by an instance that is gone."""
    return or_(OutboxMessage.lease_until < now, gone(OutboxMessage.instance_id, now=now, me=me))


# What a claim holds; cleared when the row is released.
RELEASED = {"claimed_by": None, "instance_id": None, "lease_until": None}


async def recover_expired(*, session: AsyncSession, now: datetime, me: str | None = None) -> int:
    """Give the rows of senders that died (or whose claim outlived its lease) back to
    `pending` (see the module docstring); `me` is the caller's instance, never gone."""
    abandoned = _abandoned(now, me)
    # Usually nothing is abandoned: a read (the status index) spares the write lock.
    held = OutboxMessage.status.in_((OutboxStatus.CLAIMED, OutboxStatus.SENDING))
    if not await session.scalar(select(OutboxMessage.id).where(held, abandoned).limit(1)):
        return 0
    untouched = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.status == OutboxStatus.CLAIMED, abandoned)
        .values(status=OutboxStatus.PENDING, updated_at=now, **RELEASED)
        .execution_options(synchronize_session=False)
    )
    in_flight = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.status == OutboxStatus.SENDING, abandoned)
        .values(
            status=OutboxStatus.PENDING,
            updated_at=now,
            in_doubt=OutboxMessage.in_doubt + 1,
            last_error="the sender stopped during this send; it may have been delivered",
            **RELEASED,
        )
        .execution_options(synchronize_session=False)
    )
    recovered = int(untouched.rowcount or 0) + int(in_flight.rowcount or 0)  # type: ignore[attr-defined]
    if recovered:
        logger.warning("outbox: %d rows of a stopped sender are due again", recovered)
    return recovered


async def statuses(*, session: AsyncSession, keys: Sequence[str]) -> dict[str, str]:
    rows = await session.execute(
        select(OutboxMessage.key, OutboxMessage.status).where(OutboxMessage.key.in_(keys))
    )
    return dict(rows.all())
