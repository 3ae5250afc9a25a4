"""Password hashes: argon2id (argon2-cffi's RFC 9106 low-memory profile: 64 MiB, 3 passes),
computed off the event loop.

One hash costs a few tenths of a second of CPU and 64 MiB: it runs on a thread of its own
(argon2-cffi releases the GIL), one at a time, so a burst of sign-ins keeps to one core —
the event loop keeps the others — cannot take the server's memory, and leaves the default
thread pool (storage reads, Q&A matching, image checks) to its users. At most
`MAX_WAITING_HASHES` wait their turn; past that a sign-in is refused (429) at once rather
than queued for seconds. Stored hashes carry their parameters: changing these never breaks
a login.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.admin.errors import AdminError, InvalidInput

PASSWORD_MIN = 10
PASSWORD_MAX = 128
MAX_WAITING_HASHES = 8

_hasher = PasswordHasher(parallelism=1)
_HASHER_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="password-hash")
_counting = threading.Lock()
_waiting = 0  # hashes submitted and not finished
# Verified against when the account does not exist, so the answer takes as long either way.
# A constant (`_hasher.hash("campbot-no-such-account")` with these parameters): computing it
# at import cost every process that imports the console 64 MiB and a tenth of a second.
_DUMMY = (
    "$argon2id$v=19$m=65536,t=3,p=1$tGuTp6KHfgwBnSeMPPoSsA"
    "$p64BrP8KOt3ORQvrBE5FAJab5a5KfO1FHNTDjKWd7oA"
)
_T = TypeVar("_T")


class HashesBusy(AdminError):
    """Too many password checks already waiting (429): try again in a moment."""

    status_code = 429

    def __init__(self) -> None:
        super().__init__("登录的人太多，请稍后再试。")


def check_password_rules(password: str, *, field: str = "password") -> None:
    """InvalidInput naming `field` when the password is too short, too long or not text."""
    if len(password) < PASSWORD_MIN:
        raise InvalidInput(field, f"密码至少 {PASSWORD_MIN} 个字符。")
    if len(password) > PASSWORD_MAX:
        raise InvalidInput(field, f"密码最多 {PASSWORD_MAX} 个字符。")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise InvalidInput(field, "密码不能包含控制字符。")


async def _on_hasher_thread(work: Callable[[], _T]) -> _T:
    global _waiting
    with _counting:
        if _waiting >= MAX_WAITING_HASHES:
            raise HashesBusy()
        _waiting += 1
    future = _HASHER_THREAD.submit(work)
    # Counted until the hash ends, not until its caller stops waiting (a client gone).
    future.add_done_callback(_finished)
    return await asyncio.wrap_future(future)


def _finished(_: Future[Any]) -> None:
    global _waiting
    with _counting:
        _waiting -= 1


async def hash_password(password: str) -> str:
    return await _on_hasher_thread(lambda: _hasher.hash(password))


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches; with no hash (no such account) the same work is done."""
    return await _on_hasher_thread(lambda: _verify(stored_hash or _DUMMY, password, stored_hash))


def _verify(stored_hash: str, password: str, real: str | None) -> bool:
    try:
        _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    return real is not None
