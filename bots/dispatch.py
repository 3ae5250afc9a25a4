"""Routing events to handlers: routers, rules, priority, block, and one Context.

Each capability module owns a `Router`; `bots.ROUTERS` lists them in precedence
order. For an event, every registration for its `kind` whose rules all match runs
in priority order (lower first, ties in registration order); a handler may
`raise SkipHandler` to let the next one try, and a `block=True` registration that
ran stops the chain. Handlers share one database transaction, committed together
with the inbox row's `handled` mark, so an event's effects land whole or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import inbox
from app.clock import Clock
from app.db import session_scope
from app.settings import Settings
from app.wecom.events import WeComEvent, parse_event

logger = logging.getLogger(__name__)

RuleResult = bool | Mapping[str, Any]
Rule = Callable[["Context"], RuleResult]
Handler = Callable[["Context"], Awaitable[None]]


class SkipHandler(Exception):
    """Raised by a handler to pass the event to the next matching registration."""


class Outbound(Protocol):
    """The outbox sender. Handlers enqueue rows in their own transaction
    (`app.channels.routes.enqueue_message(session=ctx.session, …)`); a time-critical row
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
    matched: dict[str, Any] = field(default_factory=dict)
    after_commit: list[Callable[[], Awaitable[object]]] = field(default_factory=list)

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def deliver_after_commit(self, row_id: int) -> None:
        """Send this outbox row right after the event's transaction commits (the welcome's
        20-second window); if that fails, the row is still in the outbox for the sender."""
        if self.outbound is not None:
            outbound = self.outbound
            self.after_commit.append(lambda: outbound.deliver_now(row_id))


@dataclass(frozen=True, slots=True)
class Registration:
    kind: str
    rules: tuple[Rule, ...]
    handler: Handler
    priority: int
    block: bool
    # Time-critical handlers (WeCom's 20 s welcome window) are pointless after this.
    max_age: timedelta | None

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
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.registrations.append(Registration(kind, rules, handler, priority, block, max_age))
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
        ctx.matched = found
        try:
            await registration.handler(ctx)
        except SkipHandler:
            continue
        ran.append(registration.name)
        if registration.block:
            break
    return ran


class Dispatcher:
    """Runs inbox rows through the routers; implements `app.inbox.InboxProcessor`."""

    def __init__(
        self,
        *,
        routers: Iterable[Router],
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        clock: Clock,
        outbound: Outbound | None = None,
    ) -> None:
        self.routers = tuple(routers)
        self.sessions = sessions
        self.settings = settings
        self.clock = clock
        self.outbound = outbound

    async def process(self, row_id: int, *, expected_attempts: int, late: bool) -> None:
        async with session_scope(self.sessions) as session:
            attempt = await inbox.begin_attempt(
                session=session,
                row_id=row_id,
                expected_attempts=expected_attempts,
                now=self.clock.now(),
            )
        if attempt is None:
            return  # another worker has it, or it is already done
        try:
            await self._handle(attempt, late=late)
        except Exception as exc:
            # The edge of handler land: record, never propagate into the server.
            logger.exception("inbox %s failed", attempt.dedupe_key)
            async with session_scope(self.sessions) as session:
                await inbox.mark_failed(
                    session=session,
                    row_id=row_id,
                    error=f"{type(exc).__name__}: {exc}",
                    now=self.clock.now(),
                )

    async def _handle(self, attempt: inbox.Attempt, *, late: bool) -> None:
        event = parse_event(attempt.body)
        async with session_scope(self.sessions) as session:
            ctx = Context(
                event=event,
                session=session,
                settings=self.settings,
                clock=self.clock,
                inbox_id=attempt.id,
                late=late,
                outbound=self.outbound,
            )
            ran = await run_handlers(ctx, self.routers)
            await inbox.mark_handled(session=session, row_id=attempt.id, now=self.clock.now())
        logger.info(
            "inbox %s handled by %s",
            attempt.dedupe_key,
            ran or "no handler",
            extra={"dedupe_key": attempt.dedupe_key},
        )
        for action in ctx.after_commit:
            try:
                await action()
            except Exception:
                # The event is handled and the row durable; the sender loop will retry it.
                logger.exception("after-commit action failed for %s", attempt.dedupe_key)
