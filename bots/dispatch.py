"""Routing events to handlers: routers, rules, priority, block, and one Context.

Each capability module owns a `Router`; `bots.ROUTERS` lists them in precedence
order. For an event, every registration for its `kind` whose rules all match runs
in priority order (lower first, ties in registration order); a handler may
`raise SkipHandler` to let the next one try, and a `block=True` registration that
ran stops the chain. Handlers share one database transaction, committed together
with the inbox row's `handled` mark, so an event's effects land whole or not at all.

WeCom reads happen before that transaction opens. A registration may name a `prepare`
step (`router.on(..., prepare=fn)`): for an event its rules match, the dispatcher awaits
`fn(ctx)` before the first statement of the event's transaction, and what it returns is
merged into `ctx.matched` for that registration's handler. A prepare step may use
`ctx.wecom` (the WeComClient, None when unconfigured), the event, clock and settings, but
never `ctx.session` (a statement there would open the transaction and hold the database,
on SQLite its one pooled connection, for as long as WeCom takes: intake would stall behind
it, and a token refresh, which needs that connection, could not finish). Prepare steps
only read (they may run for an attempt that then turns out to be another worker's), and
bound their own time (the welcome's lookups keep 5 s of WeCom's 20 s window free).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol, cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import inbox
from app.clock import Clock
from app.db import backend, is_transient, session_scope
from app.settings import Settings
from app.wecom.client import WeComClient
from app.wecom.events import WeComEvent, parse_event
from app.wecom.passive import PassiveReply

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
# A committed passive reply: how long the callback (woken at once) has to take it.
PASSIVE_PICKUP_S = 1.0
# Tries at turning a passive reply the callback did not carry into an app message (a
# transient database error would otherwise lose it), and the pauses between them.
PASSIVE_FALLBACK_PAUSES_S = (0.2, 1.0)

RuleResult = bool | Mapping[str, Any]
Rule = Callable[["Context"], RuleResult]
Handler = Callable[["Context"], Awaitable[None]]
# A pre-transaction step: what it returns is added to its handler's `ctx.matched`.
Prepare = Callable[["Context"], Awaitable[Mapping[str, Any] | None]]


class SkipHandler(Exception):
    """Raised by a handler to pass the event to the next matching registration."""


class PassiveFallback(Protocol):
    """How a claimed passive reply goes out if the callback stops waiting before the
    event's commit: in a new transaction of its own, the outbox row to push (None: none)."""

    async def __call__(self, *, session: AsyncSession, now: datetime) -> int | None: ...


class Outbound(Protocol):
    """The outbox sender. Handlers enqueue rows in their own transaction
    (`app.channels.reach.enqueue_message(session=ctx.session, …)`); a time-critical row
    can then be pushed through at once with `ctx.deliver_after_commit(row_id)`."""

    async def deliver_now(self, row_id: int) -> str: ...


@dataclass(slots=True)
class Context:
    """Everything a handler may use; handlers take nothing else."""

    event: WeComEvent
    session: AsyncSession
    settings: Settings
    clock: Clock
    inbox_id: int
    late: bool = False  # run by the sweeper, after a crash, rather than right after intake
    outbound: Outbound | None = None
    # For WeCom reads, in prepare steps only (see the module docstring); sends go through
    # the outbox.
    wecom: WeComClient | None = None
    matched: dict[str, Any] = field(default_factory=dict)
    # Prepare steps' results by registration name (merged into `matched` for the handler).
    prepared: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    after_commit: list[Callable[[], Awaitable[object]]] = field(default_factory=list)
    # The callback still waiting for this event's answer (fresh app texts only).
    passive: PassiveReply | None = None
    # The claimed passive reply's other way, should the callback not carry it.
    passive_fallback: PassiveFallback | None = None

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def deliver_after_commit(self, row_id: int) -> None:
        """Send this outbox row right after the event's transaction commits (the welcome's
        20-second window); if that fails, the row is still in the outbox for the sender."""
        if self.outbound is not None:
            outbound = self.outbound
            self.after_commit.append(lambda: outbound.deliver_now(row_id))

    def passive_reply(self, text: str, *, fallback: PassiveFallback) -> bool:
        """Offer `text` as the passive reply to the member who wrote. True: the handler
        must not send it another way; the waiting callback carries it once this event's
        transaction commits, or, if the callback stopped waiting by then (WeCom's deadline,
        a cancelled request), the dispatcher runs `fallback` right after the commit and
        pushes the row it gives. False (no callback waits any more, or another handler
        already replied): send it as a message."""
        if self.passive is None or not self.passive.claim(text):
            return False
        self.passive_fallback = fallback
        return True


@dataclass(frozen=True, slots=True)
class Registration:
    kind: str
    rules: tuple[Rule, ...]
    handler: Handler
    priority: int
    block: bool
    # Time-critical handlers (WeCom's 20 s welcome window) are pointless after this.
    max_age: timedelta | None
    prepare: Prepare | None = None

    @property
    def name(self) -> str:
        return f"{self.handler.__module__}.{self.handler.__qualname__}"


class Router:
    def __init__(self, name: str) -> None:
        self.name = name
        self.registrations: list[Registration] = []

    def on(
        self,
        kind: str,
        *rules: Rule,
        priority: int = 50,
        block: bool = True,
        max_age: timedelta | None = None,
        prepare: Prepare | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.registrations.append(
                Registration(kind, rules, handler, priority, block, max_age, prepare)
            )
            return handler

        return register

    def on_message(
        self, msg_type: str, *rules: Rule, **options: Any
    ) -> Callable[[Handler], Handler]:
        return self.on(msg_type, *rules, **options)

    def on_event(self, event: str, *rules: Rule, **options: Any) -> Callable[[Handler], Handler]:
        return self.on(f"event.{event.lower()}", *rules, **options)


def _match(rules: tuple[Rule, ...], ctx: Context) -> dict[str, Any] | None:
    found: dict[str, Any] = {}
    for rule in rules:
        result = rule(ctx)
        if not result:
            return None
        if isinstance(result, Mapping):
            found.update(result)
    return found


def _too_old(registration: Registration, ctx: Context) -> bool:
    created = ctx.event.created_at
    if registration.max_age is None or created is None:
        return False
    return ctx.now - created > registration.max_age


def candidates(routers: Iterable[Router], kind: str) -> list[Registration]:
    found = [r for router in routers for r in router.registrations if r.kind == kind]
    return sorted(found, key=lambda r: r.priority)  # stable: ties keep router order


async def prepare_handlers(ctx: Context, routers: Iterable[Router]) -> None:
    """Run the prepare steps of the registrations that match ctx.event, one after another,
    before its transaction (see the module docstring); results land in `ctx.prepared`."""
    for registration in candidates(routers, ctx.event.kind):
        if registration.prepare is None or _match(registration.rules, ctx) is None:
            continue
        if _too_old(registration, ctx):
            continue
        ctx.prepared[registration.name] = dict(await registration.prepare(ctx) or {})


async def run_handlers(ctx: Context, routers: Iterable[Router]) -> list[str]:
    """Run the matching handlers for ctx.event; the names of those that ran."""
    ran: list[str] = []
    for registration in candidates(routers, ctx.event.kind):
        found = _match(registration.rules, ctx)
        if found is None:
            continue
        if _too_old(registration, ctx):
            logger.warning("skipping %s: event too old", registration.name)
            continue
        ctx.matched = {**found, **ctx.prepared.get(registration.name, {})}
        try:
            await registration.handler(ctx)
        except SkipHandler:
            continue
        ran.append(registration.name)
        if registration.block:
            break
    return ran


@dataclass(frozen=True, slots=True)
class _Job:
    run: Callable[[], Awaitable[None]]
    done: asyncio.Future[None]


class _RunQueue:
    """Runs jobs with at most `size` at once, earliest deadline first (a deadline is the
    time queued plus the job's slack), so a job with less slack overtakes the others, but
    never by more than the difference. Workers are tasks started on demand that end when
    the queue is empty, so there is nothing to start or stop."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("need at least one worker")
        self.size = size
        self._heap: list[tuple[float, int, _Job]] = []
        self._arrivals = itertools.count()
        self._workers: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._heap)

    def submit(self, slack: float, run: Callable[[], Awaitable[None]]) -> asyncio.Future[None]:
        """Queue `run`; the future is done when it has run (whatever it raised)."""
        loop = asyncio.get_running_loop()
        job = _Job(run, loop.create_future())
        heapq.heappush(self._heap, (loop.time() + slack, next(self._arrivals), job))
        if len(self._workers) < self.size:
            self._workers.add(asyncio.create_task(self._work()))
        return job.done

    async def _work(self) -> None:
        try:
            while self._heap:
                *_, job = heapq.heappop(self._heap)
                try:
                    await job.run()
                except Exception:
                    logger.exception("dispatcher job crashed")
                finally:
                    if not job.done.done():
                        job.done.set_result(None)
        finally:
            # In the same step as the empty check: a job queued after it gets a new worker.
            self._workers.discard(cast("asyncio.Task[None]", asyncio.current_task()))

    async def drain(self) -> None:
        """Wait until every queued job has run. Cancelling the wait (a caller's timeout)
        cancels no job: asyncio.wait, unlike gather, leaves the workers running."""
        while self._workers:
            await asyncio.wait(set(self._workers))


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
        concurrency: int | None = None,
        instance: str | None = None,
    ) -> None:
        self.routers = tuple(routers)
        self.sessions = sessions
        self.settings = settings
        self.clock = clock
        self.outbound = outbound
        # The handler outbound carries the client too (app.channels.outbound), until
        # app.main passes it here itself.
        self.wecom = wecom
        self._queue = _RunQueue(concurrency or default_concurrency(sessions))
        self.instance = instance  # what re-runs record as the row's runner (app.instances)
        self.time_critical_kinds = frozenset(
            r.kind
            for router in self.routers
            for r in router.registrations
            if r.max_age is not None
        )

    @property
    def waiting(self) -> int:
        """Runs queued and not started yet (a measure of handler lag)."""
        return len(self._queue)

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
        following = len(self._queue) < FOLLOW_BACKLOG
        run = partial(self._run, attempt, event, late=False)
        done = self._queue.submit(self._slack(event.kind), run)
        if following:
            await done

    def submit_replying(
        self, attempt: inbox.Attempt, event: WeComEvent, passive: PassiveReply
    ) -> asyncio.Future[None] | None:
        """Queue a fresh row whose callback waits to carry a passive reply (see
        `app.wecom.passive`); it goes first, as a request is waiting. The future is done
        when the run ended; None (and the slot closed) behind a backlog, where the run
        could not answer in time: it stays queued and replies another way."""
        if len(self._queue) >= FOLLOW_BACKLOG:
            passive.close()
            self._queue.submit(self._slack(event.kind), partial(self._run, attempt, event))
            return None
        run = partial(self._run, attempt, event, late=False, passive=passive)
        return self._queue.submit(SLACK_URGENT_S, run)

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

    async def _attempt(self, row_id: int, expected_attempts: int, late: bool) -> None:
        try:
            attempt = await self._begin(row_id, expected_attempts)
        except Exception as exc:
            # Nothing ran and nothing changed: the sweeper will find the row again.
            self._log_error(f"inbox row {row_id}", exc, "could not start an attempt")
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
                self._log_error(attempt.dedupe_key, exc, "left received for the sweeper")
            else:
                logger.exception("inbox %s failed", attempt.dedupe_key)
                await self._mark_failed(attempt, f"{type(exc).__name__}: {exc}")

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
        if ctx is None:
            return
        if passive is not None and ctx.passive_fallback is not None:
            if not await passive.carried(PASSIVE_PICKUP_S):
                await self._send_passive_otherwise(ctx, ctx.passive_fallback, attempt)
        for action in ctx.after_commit:
            try:
                await action()
            except Exception:
                # The event is handled and the row durable; the sender loop will retry it.
                logger.exception("after-commit action failed for %s", attempt.dedupe_key)

    async def _send_passive_otherwise(
        self, ctx: Context, fallback: PassiveFallback, attempt: inbox.Attempt
    ) -> None:
        """The callback stopped waiting after a handler claimed the passive reply: the reply
        becomes an outbox row (a new short transaction), pushed before the event's other
        after-commit sends, as it is the event's first reply."""
        for pause in (*PASSIVE_FALLBACK_PAUSES_S, None):
            try:
                async with session_scope(self.sessions) as session:
                    row_id = await fallback(session=session, now=self.clock.now())
                break
            except Exception as exc:
                if pause is None or not is_transient(exc):
                    logger.error("inbox %s: passive reply lost", attempt.dedupe_key, exc_info=exc)
                    return
                await asyncio.sleep(pause)
        logger.warning(
            "inbox %s: the callback stopped waiting, the passive reply goes as a message",
            attempt.dedupe_key,
            extra={"dedupe_key": attempt.dedupe_key, "outbox_id": row_id},
        )
        if row_id is not None and self.outbound is not None:
            outbound = self.outbound
            ctx.after_commit.insert(0, lambda: outbound.deliver_now(row_id))

    async def _handle_in_transaction(
        self,
        attempt: inbox.Attempt,
        event: WeComEvent,
        *,
        late: bool,
        passive: PassiveReply | None,
    ) -> Context | None:
        """Run the handlers and commit; the context, or None when another worker had
        taken the row over."""
        async with self.sessions() as session:
            ctx = Context(
                event=event,
                session=session,
                settings=self.settings,
                clock=self.clock,
                inbox_id=attempt.id,
                late=late,
                outbound=self.outbound,
                wecom=self.wecom,
                passive=passive,
            )
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
                logger.warning("inbox %s: taken over by another worker", attempt.dedupe_key)
                return None
            ran = await run_handlers(ctx, self.routers)
            await session.commit()
        logger.info(
            "inbox %s handled by %s",
            attempt.dedupe_key,
            ran or "no handler",
            extra={"dedupe_key": attempt.dedupe_key},
        )
        return ctx

    async def _mark_failed(self, attempt: inbox.Attempt, error: str) -> None:
        try:
            async with session_scope(self.sessions) as session:
                await inbox.mark_failed(
                    session=session,
                    row_id=attempt.id,
                    attempts=attempt.attempts,
                    error=error,
                    now=self.clock.now(),
                )
        except Exception as exc:
            self._log_error(attempt.dedupe_key, exc, "could not be marked failed")

    @staticmethod
    def _log_error(what: str, exc: Exception, outcome: str) -> None:
        if is_transient(exc):
            logger.warning("%s: %s (transient: %s)", what, outcome, exc)
        else:
            logger.error("%s: %s", what, outcome, exc_info=exc)
