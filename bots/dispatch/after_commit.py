"""What follows an event's commit: its passive reply sent another way if the callback did
not carry it, then the after-commit actions its handlers queued (`Context.after_commit`)."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import inbox
from app.clock import Clock
from app.db import is_transient, session_scope
from app.wecom.events import WeComEvent
from app.wecom.passive import PassiveReply
from bots.dispatch.router import Context, Outbound, PassiveFallback

logger = logging.getLogger(__name__)

# A committed passive reply: how long the callback (woken at once) has to take it.
PASSIVE_PICKUP_S = 1.0
# Tries at turning a passive reply the callback did not carry into an app message (a
# transient database error would otherwise lose it), and the pauses between them.
PASSIVE_FALLBACK_PAUSES_S = (0.2, 1.0)


async def run(
    ctx: Context[WeComEvent],
    attempt: inbox.Attempt,
    passive: PassiveReply | None,
    *,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    outbound: Outbound | None,
) -> None:
    """After the commit of `ctx`'s event (`passive`: the callback that waited for it)."""
    if passive is not None and ctx.passive_fallback is not None:
        if not await passive.carried(PASSIVE_PICKUP_S):
            await _send_passive_otherwise(
                ctx,
                ctx.passive_fallback,
                attempt,
                sessions=sessions,
                clock=clock,
                outbound=outbound,
            )
    for action in ctx.after_commit:
        try:
            await action()
        except Exception:
            # The event is handled and the row durable; the sender loop will retry it.
            logger.exception("after-commit action failed for %s", attempt.dedupe_key)


async def _send_passive_otherwise(
    ctx: Context[WeComEvent],
    fallback: PassiveFallback,
    attempt: inbox.Attempt,
    *,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    outbound: Outbound | None,
) -> None:
    """The callback stopped waiting after a handler claimed the passive reply: the reply
    becomes an outbox row (a new short transaction), pushed before the event's other
    after-commit sends, as it is the event's first reply."""
    for pause in (*PASSIVE_FALLBACK_PAUSES_S, None):
        try:
            async with session_scope(sessions) as session:
                row_id = await fallback(session=session, now=clock.now())
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
    if row_id is not None and outbound is not None:
        sender = outbound
        ctx.after_commit.insert(0, lambda: sender.deliver_now(row_id))
