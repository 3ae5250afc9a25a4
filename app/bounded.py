"""Best-effort calls: an answer within a time bound, or None (logged) — for reads a caller
can do without (a student's name in the welcome, a group's roster), never for writes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def bounded(call: Callable[[], Awaitable[T]], *, seconds: float, what: str) -> T | None:
    """`call()`'s answer if it comes within `seconds` and succeeds; else None (logged)."""
    if seconds <= 0:
        return None
    try:
        return await asyncio.wait_for(call(), seconds)
    except TimeoutError:
        logger.warning("%s: no answer within %.1f s, going on without it", what, seconds)
    except Exception as exc:  # best effort by design: the caller has a fallback
        logger.warning("%s failed, going on without it: %s: %s", what, type(exc).__name__, exc)
    return None
