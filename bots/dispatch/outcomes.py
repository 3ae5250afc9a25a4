"""How a run ended, counted, logged and recorded the same way whether it ran alone or in a
batch."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import inbox, metrics
from app.db import is_transient, session_scope

logger = logging.getLogger("bots.dispatch.dispatcher")  # where these lines always came from


def taken(attempt: inbox.Attempt) -> None:
    """A run that found its row taken over by another worker: nothing ran."""
    metrics.EVENTS.labels("taken").inc()
    logger.warning("inbox %s: taken over by another worker", attempt.dedupe_key)


def handled(attempt: inbox.Attempt, ran: list[str]) -> None:
    """A run committed: its row handled by the handlers `ran`."""
    metrics.EVENTS.labels("handled").inc()
    # Counted in campbot_events_total and campbot_handler_runs_total; a line per event
    # at INFO cost about 6% of an event's CPU (bench/callback_ingest.py under py-spy).
    logger.debug(
        "inbox %s handled by %s",
        attempt.dedupe_key,
        ran or "no handler",
        extra={"dedupe_key": attempt.dedupe_key},
    )


async def mark_failed(
    attempt: inbox.Attempt,
    error: str,
    *,
    sessions: async_sessionmaker[AsyncSession],
    now: datetime,
) -> None:
    """Record the run's error on its row (`failed`), unless another worker took it."""
    try:
        async with session_scope(sessions) as session:
            await inbox.mark_failed(
                session=session,
                row_id=attempt.id,
                attempts=attempt.attempts,
                error=error,
                now=now,
            )
    except Exception as exc:
        log_error(attempt.dedupe_key, exc, "could not be marked failed")


def log_error(what: str, exc: Exception, outcome: str) -> None:
    """A run that did not get through: a warning when it may later, else the traceback."""
    if is_transient(exc):
        logger.warning("%s: %s (transient: %s)", what, outcome, exc)
    else:
        logger.error("%s: %s", what, outcome, exc_info=exc)
