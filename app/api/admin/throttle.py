"""Failed admin authentications, counted per client address in a sliding window.

An address that presented `MAX_FAILURES` wrong tokens within `WINDOW_S` gets 429 with
`Retry-After` — its token is not even checked, and no database session is opened — until the
oldest of those failures leaves the window. Successful requests are neither counted nor
slowed. Memory is bounded: at most `max_failures` times per address, and at most
`max_addresses` addresses (the one that failed longest ago is forgotten first).

This is defence in depth, and per instance: each process counts its own failures (N
instances let an address try N × MAX_FAILURES tokens a window). What makes guessing hopeless
is the tokens' length: ADMIN_TOKEN has at least 16 characters outside the sandbox, operator
tokens 256 random bits. The address is the ASGI client's: behind a reverse proxy run uvicorn
with `--proxy-headers --forwarded-allow-ips=<the proxy>`, or every client shares the proxy's
address and one guesser throttles them all.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from fastapi import Request

MAX_FAILURES = 10
WINDOW_S = 60.0
MAX_ADDRESSES = 10_000


class AuthThrottle:
    def __init__(
        self,
        *,
        max_failures: int = MAX_FAILURES,
        window_s: float = WINDOW_S,
        max_addresses: int = MAX_ADDRESSES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_addresses = max_addresses
        self._monotonic = monotonic
        # Least recently failed first; each deque holds the failure times still in the window.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until `address` may try again; None when it may now."""
        failures = self._failures.get(address)
        if failures is None:
            return None
        now = self._monotonic()
        self._expire(failures, now)
        if not failures:
            del self._failures[address]
            return None
        if len(failures) < self.max_failures:
            return None
        return max(1, math.ceil(failures[0] + self.window_s - now))

    def failed(self, address: str) -> bool:
        """Count a wrong token from `address`; True when this one reached the limit."""
        now = self._monotonic()
        failures = self._failures.pop(address, None)
        if failures is None:
            failures = deque(maxlen=self.max_failures)
        self._expire(failures, now)
        failures.append(now)
        self._failures[address] = failures
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
        return len(failures) >= self.max_failures

    def addresses(self) -> int:
        """How many addresses are remembered (for tests: the table stays bounded)."""
        return len(self._failures)

    def _expire(self, failures: deque[float], now: float) -> None:
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def admin_throttle(request: Request) -> AuthThrottle:
    """The app's throttle (`create_app` makes one per app)."""
    throttle: AuthThrottle = request.app.state.admin_throttle
    return throttle
