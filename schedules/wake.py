"""Waking this process's scheduler when firings were planned or moved.

The scheduler sleeps until the next due firing. When this process plans or re-plans
firings (a schedule saved, a cohort's start date moved, a member joined), the session's
commit wakes it, so it re-reads the next due time at once; firings another instance
planned are seen by the scheduler's short re-read (`schedules.scheduler.RECHECK_S`).
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession

from app.commit_hooks import call_after_commit

# The schedulers of this process waiting for a change (one, or several in tests).
_listeners: set[asyncio.Event] = set()


def listen() -> asyncio.Event:
    """An event set whenever firings change in this process; `unlisten` it when done."""
    changed = asyncio.Event()
    _listeners.add(changed)
    return changed


def unlisten(changed: asyncio.Event) -> None:
    _listeners.discard(changed)


def firings_changed() -> None:
    for changed in _listeners:
        changed.set()


def after_commit(session: AsyncSession) -> None:
    """Wake the schedulers once this session's transaction commits (not before: the
    firings must be visible when they look)."""
    call_after_commit(session, firings_changed)
