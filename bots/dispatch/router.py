"""What handlers use: a `Router` per capability, registrations with rules, priority and
block, and the one `Context` a handler gets.

A registration names the event class it handles (`router.on(ExternalContactEvent, …)`), so
its handler gets a `Context[ExternalContactEvent]`: `ctx.event` is typed, no cast. For an
event, every registration for its kind whose rules all match runs in priority order (lower
first, ties in registration order); a handler may `raise SkipHandler` to let the next one
try, and a `block=True` registration that ran stops the chain. Handlers share one database
transaction, committed together with the inbox row's `handled` mark, so an event's effects
land whole or not at all.

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

import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar, overload

from sqlalchemy.ext.asyncio import AsyncSession

from app import metrics
from app.admin.cohorts.service import CohortHook
from app.clock import Clock
from app.settings import Settings
from app.wecom.client import WeComClient
from app.wecom.events import WeComEvent, kind_of
from app.wecom.passive import PassiveReply

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=WeComEvent)

RuleResult = bool | Mapping[str, Any]
Rule = Callable[["Context[Any]"], RuleResult]
Handler = Callable[["Context[E]"], Awaitable[None]]
# A pre-transaction step: what it returns is added to its handler's `ctx.matched`.
Prepare = Callable[["Context[E]"], Awaitable[Mapping[str, Any] | None]]


class SkipHandler(Exception):
    """Raised by a handler to pass the event to the next matching registration."""


class PassiveFallback(Protocol):
    """How a claimed passive reply goes out if the callback stops waiting before the
    event's commit: in a new transaction of its own, the outbox row to push (None: none)."""

    async def __call__(self, *, session: AsyncSession, now: datetime) -> int | None: ...


class Outbound(Protocol):
    """The outbox's fast path (`app.outbox.Sender`). Handlers enqueue rows in their own
    transaction (`app.channels.reach.enqueue_message(session=ctx.session, …)`); a
    time-critical row can then be pushed through at once with `ctx.deliver_after_commit`."""

    async def deliver_now(self, row_id: int) -> str: ...


@dataclass(slots=True)
class Context(Generic[E]):
    """Everything a handler may use; handlers take nothing else."""

    event: E
    session: AsyncSession
    settings: Settings
    clock: Clock
    inbox_id: int
    late: bool = False  # run by the sweeper, after a crash, rather than right after intake
    outbound: Outbound | None = None
    # For WeCom reads, in prepare steps only (see the module docstring); sends go through
    # the outbox.
    wecom: WeComClient | None = None
    # What hears a member join a cohort (member-day schedules re-plan): for the enrolment.
    cohort_hooks: Collection[CohortHook] = ()
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
    handler: Handler[Any]
    priority: int
    block: bool
    # Time-critical handlers (WeCom's 20 s welcome window) are pointless after this.
    max_age: timedelta | None
    prepare: Prepare[Any] | None = None
    # Whether the handler may offer a passive reply to this event (`Context.passive_reply`):
    # pure and quick, no I/O. The callback waits for the run only if one may.
    replies: Callable[[Any], bool] | None = None

    @property
    def name(self) -> str:
        return f"{self.handler.__module__}.{self.handler.__qualname__}"


class Router:
    def __init__(self, name: str) -> None:
        self.name = name
        self.registrations: list[Registration] = []

    @overload
    def on(
        self,
        event: type[E],
        *rules: Rule,
        priority: int = 50,
        block: bool = True,
        max_age: timedelta | None = None,
        replies: Callable[[E], bool] | None = None,
        prepare: Prepare[E] | None = None,
    ) -> Callable[[Handler[E]], Handler[E]]: ...

    @overload
    def on(
        self,
        event: str,
        *rules: Rule,
        priority: int = 50,
        block: bool = True,
        max_age: timedelta | None = None,
        replies: Callable[[WeComEvent], bool] | None = None,
        prepare: Prepare[WeComEvent] | None = None,
    ) -> Callable[[Handler[WeComEvent]], Handler[WeComEvent]]: ...

    def on(
        self,
        event: type[Any] | str,
        *rules: Rule,
        priority: int = 50,
        block: bool = True,
        max_age: timedelta | None = None,
        replies: Callable[[Any], bool] | None = None,
        prepare: Prepare[Any] | None = None,
    ) -> Callable[[Handler[Any]], Handler[Any]]:
        """Register for an event class (its handler's `ctx.event` has that type), or for a
        kind no class models (`"event.view"`: the handler sees a `WeComEvent`). A handler
        that may answer with a passive reply says for which events (`replies`)."""
        kind = event if isinstance(event, str) else kind_of(event)

        def register(handler: Handler[Any]) -> Handler[Any]:
            self.registrations.append(
                Registration(kind, rules, handler, priority, block, max_age, prepare, replies)
            )
            return handler

        return register

    def on_message(
        self, msg_type: str, *rules: Rule, **options: Any
    ) -> Callable[[Handler[WeComEvent]], Handler[WeComEvent]]:
        return self.on(msg_type, *rules, **options)

    def on_event(
        self, event: str, *rules: Rule, **options: Any
    ) -> Callable[[Handler[WeComEvent]], Handler[WeComEvent]]:
        return self.on(f"event.{event.lower()}", *rules, **options)


def _match(rules: tuple[Rule, ...], ctx: Context[Any]) -> dict[str, Any] | None:
    found: dict[str, Any] = {}
    for rule in rules:
        result = rule(ctx)
        if not result:
            return None
        if isinstance(result, Mapping):
            found.update(result)
    return found


def _too_old(registration: Registration, ctx: Context[Any]) -> bool:
    created = ctx.event.created_at
    if registration.max_age is None or created is None:
        return False
    return bool(ctx.now - created > registration.max_age)


def candidates(routers: Iterable[Router], kind: str) -> list[Registration]:
    found = [r for router in routers for r in router.registrations if r.kind == kind]
    return sorted(found, key=lambda r: r.priority)  # stable: ties keep router order


async def prepare_handlers(ctx: Context[Any], routers: Iterable[Router]) -> None:
    """Run the prepare steps of the registrations that match ctx.event, one after another,
    before its transaction (see the module docstring); results land in `ctx.prepared`."""
    for registration in candidates(routers, ctx.event.kind):
        if registration.prepare is None or _match(registration.rules, ctx) is None:
            continue
        if _too_old(registration, ctx):
            continue
        ctx.prepared[registration.name] = dict(await registration.prepare(ctx) or {})


async def run_handlers(ctx: Context[Any], routers: Iterable[Router]) -> list[str]:
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
        started = time.perf_counter()
        outcome = "error"
        try:
            await registration.handler(ctx)
            outcome = "ok"
        except SkipHandler:
            outcome = "skipped"
            continue
        finally:
            metrics.HANDLER_SECONDS.labels(registration.name).observe(
                time.perf_counter() - started
            )
            metrics.HANDLER_RUNS.labels(registration.name, outcome).inc()
        ran.append(registration.name)
        if registration.block:
            break
    return ran
