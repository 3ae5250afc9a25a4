"""The sender: sends the outbox's due rows through their channel, once (ARCHITECTURE §1).

Each worker claims a batch (`app.outbox.claim_due`: rate slots reserved, `FOR UPDATE SKIP
LOCKED`) and sends it a chunk at a time: it marks a chunk's rows `sending` just before their
requests and records their outcomes in the same commit as the next chunk's mark
(`app.sender_steps`), so each worker has at most one chunk on its way. WeCom's errors
decide what follows (`app.wecom.errors`): sent, retried after a backoff or the wait WeCom
asked for, or dead with the error shown to operators. A transport error leaves the row
`in_doubt`; a repeat that WeCom refuses as already done confirms the first send arrived.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import metrics
from app.background import sleep_or_stop
from app.clock import Clock
from app.models import OutboxMessage, OutboxStatus
from app.outbox import (
    ERROR_LIMIT,
    LEASE,
    LEASES,
    RATE_INTERVALS,
    RELEASED,
    SENDABLE,
    claim_due,
    claim_row,
    recover_expired,
)
from app.sender_steps import steps
from app.wecom.errors import (
    UndeliverableError,
    WeComAPIError,
    WeComError,
    WeComTransportError,
)

# Its lines keep the name they always had: operators filter the outbox's by it.
logger = logging.getLogger("app.outbox")

BACKOFF_BASE_S = 5.0
BACKOFF_CAP_S = 600.0
# Rows a worker sends at once (each to its own target). A `kill -9` can repeat at most
# this many rows per worker, each counted in_doubt.
SEND_CHUNK = 8
# How often each sender looks for claims to take back: a gone instance's rows wait
# at most this long after its heartbeat went stale.
RECOVER_EVERY = timedelta(seconds=1)

# The payload key of the targets WeCom refused in a task it accepted for the others.
FAILED_TARGETS = "failed_targets"


@dataclass(frozen=True, slots=True)
class PartlySent:
    """A task WeCom accepted for some of its targets only (a merged 群发's `fail_list`)."""

    msgid: str
    failed: tuple[str, ...]


Deliver = Callable[[OutboxMessage], Awaitable[str | PartlySent | None]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt did; applied to the row in the next commit."""

    row_id: int
    msgid: str | None = None
    error: WeComError | None = None
    failed: tuple[str, ...] = ()  # targets WeCom refused in the task it accepted


def _errcode(error: WeComError) -> str:
    if isinstance(error, WeComAPIError):
        return str(error.errcode)
    return "transport" if isinstance(error, WeComTransportError) else "refused"


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF_BASE_S * 2 ** max(attempts - 1, 0), BACKOFF_CAP_S))


async def _apply(session: AsyncSession, outcome: Outcome, *, worker: str, now: datetime) -> None:
    """A send WeCom refused (or that got no answer): retried, dead, or confirmed sent.
    (A send WeCom accepted is recorded by the worker's next step, `app.sender_steps`.)"""
    assert outcome.error is not None
    row = await session.get(OutboxMessage, outcome.row_id, with_for_update=True)
    if row is None or row.status != OutboxStatus.SENDING or row.claimed_by != worker:
        return  # recovered by another sender meanwhile; it owns the row now
    row.attempts += 1
    row.updated_at = now
    for column, value in RELEASED.items():
        setattr(row, column, value)
    error = outcome.error
    row.last_errcode = error.errcode if isinstance(error, WeComAPIError) else None
    if row.in_doubt and isinstance(error, WeComAPIError) and error.confirms_earlier_send:
        # The repeat of a send that may have arrived, refused as already done: it arrived.
        row.status, row.sent_at = OutboxStatus.SENT, now
        note = f"重发时企业微信答 {error.errcode}（{error.errmsg}）：上一次结果未知的发送已送达。"
        row.last_error = note[:ERROR_LIMIT]
        return
    row.last_error = f"{error} — {error.hint}"[:ERROR_LIMIT]
    if isinstance(error, WeComTransportError):
        row.in_doubt += 1  # the request may have arrived; a retry may repeat it
    if not error.retryable or row.attempts >= row.max_attempts:
        row.status = OutboxStatus.DEAD
        logger.warning(
            "outbox %s dead: %s", row.key, row.last_error, extra={"outbox_key": row.key}
        )
        return
    wait = timedelta(seconds=error.retry_after) if error.retry_after else _backoff(row.attempts)
    row.status, row.not_before = OutboxStatus.PENDING, now + wait


async def _keep_failed(session: AsyncSession, outcome: Outcome, *, worker: str) -> None:
    """Note on the row, while it is still `sending`, the targets WeCom refused: its result
    never lists them, so whoever follows the task must know not to wait for them."""
    row = await session.get(OutboxMessage, outcome.row_id, with_for_update=True)
    if row is None or row.status != OutboxStatus.SENDING or row.claimed_by != worker:
        return
    row.payload = {**row.payload, FAILED_TARGETS: list(outcome.failed)}


class Sender:
    """Claims and sends due rows. Several may run, in one process or many."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        deliver: Deliver,
        clock: Clock,
        batch: int = 25,
        concurrency: int = 4,
        lease: timedelta = LEASE,
        leases: Mapping[str, timedelta] = LEASES,
        intervals: Mapping[str, timedelta] = RATE_INTERVALS,
        instance: str | None = None,
    ) -> None:
        """`instance`: the id this process registered (app.instances), which its claims
        carry; without one, its rows are freed only by their leases."""
        self.sessions = sessions
        self._deliver = deliver
        self._clock = clock
        self._batch = batch
        self._concurrency = concurrency
        self._intervals = intervals
        self._lease = lease
        self._leases = leases
        self.instance = instance
        self.worker = instance or uuid.uuid4().hex[:12]
        self._recovered_at: datetime | None = None

    def _lease_for(self, channel: str) -> timedelta:
        return self._leases.get(channel, self._lease)

    async def run_once(self) -> int:
        """One round: recover dead senders' rows, then each worker sends a batch. Rows sent."""
        now = self._clock.now()
        if self._recovered_at is None or now - self._recovered_at >= RECOVER_EVERY:
            async with self.sessions.begin() as session:
                await recover_expired(session=session, now=now, me=self.instance)
            self._recovered_at = now
        counts = await asyncio.gather(
            *(self._work(f"{self.worker}-{n}") for n in range(self._concurrency))
        )
        return sum(counts)

    async def _work(self, worker: str) -> int:
        async with self.sessions.begin() as session:
            rows = await claim_due(
                session=session,
                now=self._clock.now(),
                worker=worker,
                limit=self._batch,
                intervals=self._intervals,
                lease=self._lease,
                leases=self._leases,
                instance=self.instance,
            )
        await self._send_claimed(rows, worker=worker)
        return len(rows)

    async def deliver_now(self, row_id: int) -> str:
        """Send one row at once if it is due (the welcome's fast path, `campbot send`).

        Answers the row's status afterwards; a row another sender holds is left to it.
        """
        worker = f"{self.worker}-now"
        async with self.sessions.begin() as session:
            rows = await claim_row(
                session=session,
                row_id=row_id,
                now=self._clock.now(),
                worker=worker,
                intervals=self._intervals,
                lease=self._lease,
                leases=self._leases,
                instance=self.instance,
            )
        await self._send_claimed(rows, worker=worker)
        async with self.sessions() as session:
            status = await session.scalar(
                select(OutboxMessage.status).where(OutboxMessage.id == row_id)
            )
        return str(status)

    async def _send_claimed(self, rows: Sequence[OutboxMessage], *, worker: str) -> None:
        """Send the claimed rows a chunk at a time (`app.sender_steps`): each step records
        the last chunk's outcomes and marks the next chunk `sending` in one commit, and
        nothing is held open in the database while WeCom answers."""
        done: list[Outcome] = []
        chunks = [rows[at : at + SEND_CHUNK] for at in range(0, len(rows), SEND_CHUNK)]
        async with steps(self.sessions, worker) as step:
            for chunk in [*chunks, []]:
                now = self._clock.now()
                refused = [outcome for outcome in done if outcome.error is not None]
                if refused:  # rare: recorded one by one, with their error codes
                    async with self.sessions.begin() as session:
                        for outcome in refused:
                            await _apply(session, outcome, worker=worker, now=now)
                partly = [outcome for outcome in done if outcome.failed]
                if partly:  # rare too, and committed before the row is seen `sent`
                    async with self.sessions.begin() as session:
                        for outcome in partly:
                            await _keep_failed(session, outcome, worker=worker)
                sent = [(o.row_id, o.msgid) for o in done if o.error is None]
                if not chunk and not sent:
                    break
                leases = [(row.id, now + self._lease_for(row.channel)) for row in chunk]
                marked = await step.step(sent=sent, next_rows=leases, now=now)
                done = await self._attempt_all([row for row in chunk if row.id in marked])

    async def _attempt_all(self, rows: Sequence[OutboxMessage]) -> list[Outcome]:
        """Send the rows at once, those to one target one after the other, in order."""
        by_target: dict[tuple[str, str], list[OutboxMessage]] = {}
        for row in rows:
            by_target.setdefault((row.channel, row.target), []).append(row)

        async def in_order(queue: list[OutboxMessage]) -> list[Outcome]:
            return [await self._attempt(row) for row in queue]

        sent = await asyncio.gather(*(in_order(queue) for queue in by_target.values()))
        return [outcome for outcomes in sent for outcome in outcomes]

    async def _attempt(self, row: OutboxMessage) -> Outcome:
        try:
            sent = await self._deliver(row)
            if isinstance(sent, PartlySent):
                outcome = Outcome(row.id, msgid=sent.msgid, failed=sent.failed)
            else:
                outcome = Outcome(row.id, msgid=sent)
            metrics.SENDS.labels(row.channel, "0").inc()
            return outcome
        except WeComError as exc:
            metrics.SENDS.labels(row.channel, _errcode(exc)).inc()
            return Outcome(row.id, error=exc)
        except Exception as exc:
            # A bug in building this row must not stall the sender or loop forever.
            metrics.SENDS.labels(row.channel, "internal").inc()
            logger.exception("outbox %s: delivery crashed", row.key)
            return Outcome(
                row.id, error=UndeliverableError(f"内部错误：{type(exc).__name__}: {exc}")
            )

    async def next_due(self) -> datetime | None:
        async with self.sessions() as session:
            return (
                await session.execute(
                    select(OutboxMessage.not_before)
                    .where(*SENDABLE)
                    .order_by(OutboxMessage.not_before)
                    .limit(1)
                )
            ).scalar_one_or_none()

    async def run_forever(self, stop: asyncio.Event, *, idle_poll: float = 1.0) -> None:
        """The sender loop started by the app's lifespan; returns once `stop` is set."""
        while not stop.is_set():
            try:
                if await self.run_once():
                    continue
                due = await self.next_due()
            except Exception:
                # A database hiccup must not end the loop; the rows wait in the outbox.
                logger.exception("outbox round failed")
                due = None
            wait = idle_poll
            if due is not None:  # wake for the next slot, not a poll tick later
                wait = min(wait, (due - self._clock.now()).total_seconds())
            await sleep_or_stop(stop, max(wait, 0.005))
