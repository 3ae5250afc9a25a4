"""Rolling-window counters for WeCom's frequency limits, driven by the injected clock."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from datetime import datetime, timedelta


class SlidingWindow:
    """At most `limit` events per key within any `span` (a rolling, not a fixed, window)."""

    def __init__(self, limit: int, span: timedelta) -> None:
        self.limit = limit
        self.span = span
        self._events: dict[Hashable, deque[datetime]] = {}

    def count(self, key: Hashable, now: datetime) -> int:
        events = self._events.get(key)
        if events is None:
            return 0
        while events and now - events[0] >= self.span:
            events.popleft()
        return len(events)

    def allows(self, key: Hashable, now: datetime) -> bool:
        return self.count(key, now) < self.limit

    def add(self, key: Hashable, now: datetime) -> None:
        self._events.setdefault(key, deque()).append(now)
