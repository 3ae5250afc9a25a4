"""The dispatcher: runs inbox rows through the routers (`app.inbox.InboxProcessor`), one
transaction per event (or per batch of fresh events under a burst), through the run queue;
and passive replies, carried by the waiting callback or, when it stopped waiting, sent as a
message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import inbox, metrics
from app.admin.cohorts.service import CohortHook
from app.clock import Clock
from app.db import backend, is_transient, session_scope
from app.settings import Settings
from app.wecom.client import WeComClient
from app.wecom.events import WeComEvent, parse_event
from app.wecom.passive import PassiveReply
from bots.dispatch import after_commit, batch, outcomes, overflow
from bots.dispatch.batch import FreshRun, FreshRuns
from bots.dispatch.queue import RunQueue
from bots.dispatch.router import (
    Context,
    Outbound,
    Router,
    prepare_handlers,
    run_handlers,
)

logger = logging.getLogger(__name__)

# Handler runs at once (see default_concurrency).
SQLITE_CONCURRENCY = 2
SERVER_DB_CONCURRENCY = 4
# Queue order under a backlog (seconds of slack, earliest deadline first): events a
# time-critical handler (`max_age`) may take go first (resumed after a crash too), other
# events may wait up to 10 s longer, other re-runs after a crash a minute longer.
SLACK_URGENT_S, SLACK_NORMAL_S, SLACK_LATE_S = 0.0, 10.0, 60.0
# Beyond this many queued runs, intake's background tasks stop following theirs.
FOLLOW_BACKLOG = 64
# Beyond this many, a fresh run is not queued (a time-critical one still is): only its row
# id waits (`overflow`), and the row is read back once the queue is down to half. Under an
# overload that lasts, memory stays bounded (a queued run holds its event, ~4 KB).
MAX_QUEUED = 10_000
# Rows read back at once, parsed and queued in one step of the loop (~30 µs a row: ≪ 100 ms).
READ_BACK_CHUNK = 500


def default_concurrency(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Handler runs at once: SQLite has one connection and one write lock, so more would
    only queue in the pool in front of intake's commits; PostgreSQL runs them in parallel."""
    return SQLITE_CONCURRENCY if backend(sessions) == "sqlite" else SERVER_DB_CONCURRENCY


class Dispatcher:
    """Runs inbox rows through the routers; implements `app.inbox.InboxProcessor`.

    Runs go through an in-memory queue served by `concurrency` workers, so a burst
    cannot take the database (and SQLite's one connection) away from intake. Under a
    backlog, events a time-critical registration (`max_age`) may take go first, others
    within SLACK_NORMAL_S, sweeper re-runs last. The inbox stays the durable queue: a run
    lost with the process is a `received` row the sweeper finds.

    Each run is one transaction: the row's `handled` mark (only while the row is still
    this attempt's: the sweeper may have taken it over) and the handlers' writes commit
    together. A transient database error leaves the row `received` for the sweeper; any
    other exception marks it `failed` with the error.

    On SQLite, fresh runs (rows intake just claimed) of events without a prepare step wait
    in `FreshRuns` too: the worker that starts one takes up to MAX_BATCH of those waiting
    into the same transaction, run one after another as if alone (each event's reads
    afresh), marked handled in one statement and committed once. If anything in a batch
    fails, it rolls back whole and each of its events runs again alone. Past MAX_QUEUED
    runs, fresh ones wait as row ids only (`overflow`).
    """

    def __init__(
        self,
        *,
        routers: Iterable[Router],
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        clock: Clock,
        outbound: Outbound | None = None,
        wecom: WeComClient | None = None,
        cohort_hooks: Collection[CohortHook] = (),
        concurrency: int | None = None,
        instance: str | None = None,
    ) -> None:
        self.routers = tuple(routers)
        self.sessions = sessions
        self.settings = settings
        self.clock = clock
        self.outbound = outbound
        self.wecom = wecom
        self.cohort_hooks = cohort_hooks
        self._queue = RunQueue(concurrency or default_concurrency(sessions))
        self.instance = instance  # what re-runs record as the row's runner (app.instances)
        registrations = [r for router in self.routers for r in router.registrations]
        self.handled_kinds = frozenset(r.kind for r in registrations)
        self.time_critical_kinds = frozenset(
            r.kind for r in registrations if r.max_age is not None
        )
        # Prepare steps read WeCom before the transaction: such events run alone, so a slow
        # read never holds a batch's other events.
        self._alone_kinds = frozenset(r.kind for r in registrations if r.prepare)
        self._fresh = FreshRuns()
        # Batches on SQLite only: its one write lock serialises transactions anyway, while on
        # PostgreSQL a batch holding its events' row locks (a question's counter, a rule's
        # hits) until one commit deadlocks against another batch or a lone run (another
        # instance's too) that takes them in another order.
        self._max_batch = batch.MAX_BATCH if backend(sessions) == "sqlite" else 1
        self._stale = 0  # queue entries of runs an earlier batch took along
        self._overflow = overflow.Overflow(sessions, chunk=READ_BACK_CHUNK)
        self._replies: dict[str, list[Callable[[WeComEvent], bool]]] = {}
        for r in registrations:
            if r.replies is not None:
                self._replies.setdefault(r.kind, []).append(r.replies)

    @property
    def waiting(self) -> int:
        """Runs queued and not started yet (a measure of handler lag)."""
        return len(self._queue) - self._stale

    def _slack(self, kind: str) -> float:
        return SLACK_URGENT_S if kind in self.time_critical_kinds else SLACK_NORMAL_S

    async def process_claimed(
        self, attempt: inbox.Attempt, event: WeComEvent | None = None
    ) -> None:
        """Run a row whose attempt intake already counted (`inbox.Intake.claim`).

        Follows the run to its end (so the caller, e.g. the request's background task,
        finishes after it), unless FOLLOW_BACKLOG runs are already waiting: then the run
        stays queued and the caller returns at once. Under overload this lets each request
        go instead of keeping its state (hundreds of objects) alive in the backlog, which
        would make every full garbage collection of the process slower.
        """
        event = event or parse_event(attempt.body)
        following = self.waiting < FOLLOW_BACKLOG
        done = self._submit_fresh(attempt, event, self._slack(event.kind))
        if following and done is not None:
            await done

    def may_reply(self, event: WeComEvent) -> bool:
        """Whether a handler may answer `event` with a passive reply (its registration's
        `replies`): only then is its callback worth holding while it runs."""
        return any(replies(event) for replies in self._replies.get(event.kind, ()))

    def submit_replying(
        self, attempt: inbox.Attempt, event: WeComEvent, passive: PassiveReply
    ) -> asyncio.Future[None] | None:
        """Queue a fresh row whose callback waits to carry a passive reply (see
        `app.wecom.passive`); it goes first, as a request is waiting. The future is done
        when the run ended; None (and the slot closed) behind FOLLOW_BACKLOG other runs
        whose callbacks wait, where it could not answer in time: it stays queued and
        replies another way. Runs nobody waits for are no backlog for it: it overtakes
        them (and the batch it starts takes the oldest of them along)."""
        if self._fresh.replying >= FOLLOW_BACKLOG:
            passive.close()
            self._submit_fresh(attempt, event, self._slack(event.kind))
            return None
        done = self._submit_fresh(attempt, event, SLACK_URGENT_S, passive)
        if done is None:
            passive.close()
        return done

    def _submit_fresh(
        self,
        attempt: inbox.Attempt,
        event: WeComEvent,
        slack: float,
        passive: PassiveReply | None = None,
        *,
        read_back: bool = False,
    ) -> asyncio.Future[None] | None:
        """The run queued (None: deferred past MAX_QUEUED, behind those deferred before)."""
        full = self.waiting >= MAX_QUEUED or len(self._overflow) > 0
        if full and not read_back and event.kind not in self.time_critical_kinds:
            metrics.EVENTS.labels("deferred").inc()
            self._overflow.defer(attempt.id)
            return None
        if event.kind in self._alone_kinds:
            return self._queue.submit(
                slack, partial(self._run, attempt, event, late=False, passive=passive)
            )
        run = self._fresh.add(attempt, event, passive)
        self._queue.submit(slack, partial(self._run_fresh, run))
        return run.done

    async def _run_fresh(self, first: FreshRun) -> None:
        """Run `first` with the fresh runs waiting behind it (nothing if an earlier batch
        took it); each run's future is done once it ran."""
        runs = self._fresh.take(first, self._max_batch)
        self._stale += len(runs) - 1  # -1 when `first` was taken along: its entry is stale
        try:
            if len(runs) == 1:
                await self._run(first.attempt, first.event, passive=first.passive)
            elif runs:
                await self._run_batch(runs)
        finally:
            for run in runs:
                run.finish()
            if self.waiting <= MAX_QUEUED // 2:
                self._overflow.read_back(self._resubmit)

    def _resubmit(self, attempt: inbox.Attempt, event: WeComEvent) -> None:
        self._submit_fresh(attempt, event, self._slack(event.kind), read_back=True)

    async def process(
        self, row_id: int, *, expected_attempts: int, late: bool, kind: str | None = None
    ) -> None:
        """Count one more attempt on the row, unless another worker took it, then run it
        (the sweeper's path, and rows claimed with `inbox.claim`). Returns once it ran.
        An event of a time-critical `kind` goes first even when `late` (resumed after a
        crash, its window may still be open)."""
        if kind in self.time_critical_kinds:
            slack = SLACK_URGENT_S
        else:
            slack = SLACK_LATE_S if late else SLACK_NORMAL_S
        await self._queue.submit(slack, partial(self._attempt, row_id, expected_attempts, late))

    async def drain(self) -> None:
        """Wait until every queued run has finished (a clean shutdown; bound it with
        `asyncio.timeout`: runs still queued then are `received` rows for the sweeper)."""
        await self._queue.drain()
        await self._overflow.wait()  # rows the last runs read back, then their runs
        await self._queue.drain()

    async def _attempt(self, row_id: int, expected_attempts: int, late: bool) -> None:
        try:
            attempt = await self._begin(row_id, expected_attempts)
        except Exception as exc:
            # Nothing ran and nothing changed: the sweeper will find the row again.
            outcomes.log_error(f"inbox row {row_id}", exc, "could not start an attempt")
            return
        if attempt is not None:
            await self._run(attempt, parse_event(attempt.body), late=late)

    async def _begin(self, row_id: int, expected_attempts: int) -> inbox.Attempt | None:
        async with session_scope(self.sessions) as session:
            return await inbox.begin_attempt(
                session=session,
                row_id=row_id,
                expected_attempts=expected_attempts,
                now=self.clock.now(),
                instance_id=self.instance,
            )

    async def _run(
        self,
        attempt: inbox.Attempt,
        event: WeComEvent,
        *,
        late: bool = False,
        passive: PassiveReply | None = None,
    ) -> None:
        try:
            await self._handle(attempt, event, late=late, passive=passive)
        except Exception as exc:
            # The edge of handler land: record, never propagate into the server.
            if is_transient(exc):
                metrics.EVENTS.labels("retry").inc()
                outcomes.log_error(attempt.dedupe_key, exc, "left received for the sweeper")
            else:
                metrics.EVENTS.labels("failed").inc()
                logger.exception("inbox %s failed", attempt.dedupe_key)
                await outcomes.mark_failed(
                    attempt,
                    f"{type(exc).__name__}: {exc}",
                    sessions=self.sessions,
                    now=self.clock.now(),
                )

    async def _handle(
        self,
        attempt: inbox.Attempt,
        event: WeComEvent,
        *,
        late: bool,
        passive: PassiveReply | None,
    ) -> None:
        committed = False
        try:
            ctx = await self._handle_in_transaction(attempt, event, late=late, passive=passive)
            committed = ctx is not None
        finally:
            # Whatever happened, the waiting callback gets its answer now: a claimed reply
            # only once committed (else the event runs again later and replies otherwise).
            if passive is not None:
                passive.settle(committed=committed)
        if ctx is not None:
            await self._after_commit(ctx, attempt, passive)

    async def _handle_in_transaction(
        self,
        attempt: inbox.Attempt,
        event: WeComEvent,
        *,
        late: bool,
        passive: PassiveReply | None,
    ) -> Context[WeComEvent] | None:
        """Run the handlers and commit; the context, or None when another worker had
        taken the row over."""
        async with self.sessions() as session:
            ctx = self._context(session, attempt, event, late=late, passive=passive)
            # WeCom reads first, with no statement run yet: the session holds no connection.
            await prepare_handlers(ctx, self.routers)
            # The mark comes first: it proves the row is still this attempt's (the sweeper
            # may have presumed this run dead and taken it over) before any handler runs,
            # and from here the transaction holds the row (SQLite's write lock, PostgreSQL's
            # row lock) until it commits together with the handlers' writes.
            marked = await inbox.mark_handled(
                session=session, row_id=attempt.id, attempts=attempt.attempts, now=self.clock.now()
            )
            if not marked:
                outcomes.taken(attempt)
                return None
            ran = await run_handlers(ctx, self.routers)
            await session.commit()
        outcomes.handled(attempt, ran)
        return ctx

    def _context(
        self,
        session: AsyncSession,
        attempt: inbox.Attempt,
        event: WeComEvent,
        *,
        late: bool,
        passive: PassiveReply | None,
    ) -> Context[WeComEvent]:
        return Context(
            event=event,
            session=session,
            settings=self.settings,
            clock=self.clock,
            inbox_id=attempt.id,
            late=late,
            outbound=self.outbound,
            wecom=self.wecom,
            cohort_hooks=self.cohort_hooks,
            passive=passive,
        )

    async def _after_commit(
        self, ctx: Context[WeComEvent], attempt: inbox.Attempt, passive: PassiveReply | None
    ) -> None:
        await after_commit.run(
            ctx, attempt, passive, sessions=self.sessions, clock=self.clock, outbound=self.outbound
        )

    async def _run_batch(self, runs: list[FreshRun]) -> None:
        """Fresh runs in one transaction; if it fails, each runs again alone. Each run's
        after-commit steps (a WeCom send, a passive reply's pickup) go at once, side by
        side, each run done when its own are."""
        try:
            done = await batch.handle(
                runs,
                sessions=self.sessions,
                routers=self.routers,
                now=self.clock.now(),
                context=lambda session, run: self._context(
                    session, run.attempt, run.event, late=False, passive=run.passive
                ),
            )
        except asyncio.CancelledError:
            # A shutdown before the commit: every waiting callback answers now.
            for run in runs:
                if run.passive is not None:
                    run.passive.settle(committed=False)
            raise
        except Exception as exc:
            logger.warning(
                "a batch of %d events rolled back (%s: %s); each runs again alone",
                len(runs),
                type(exc).__name__,
                exc,
            )
            for run in runs:
                if run.passive is not None:
                    run.passive.reopen()
                await self._run(run.attempt, run.event, passive=run.passive)
            return
        for run, ctx in done:
            if run.passive is not None:
                run.passive.settle(committed=ctx is not None)
        await asyncio.gather(*(self._finish(run, ctx) for run, ctx in done))

    async def _finish(self, run: FreshRun, ctx: Context[WeComEvent] | None) -> None:
        try:
            if ctx is not None:
                await self._after_commit(ctx, run.attempt, run.passive)
        finally:
            run.finish()
