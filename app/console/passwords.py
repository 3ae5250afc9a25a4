"""Password hashes: argon2id (argon2-cffi's RFC 9106 low-memory profile: 64 MiB, 3 passes),
computed off the event loop.

One hash costs a few tenths of a second of CPU and 64 MiB: it runs in a worker thread
(argon2-cffi releases the GIL) on one lane, and one at a time (`CONCURRENT_HASHES`), so a
burst of sign-ins keeps to one core — the event loop keeps the others — and cannot take the
server's memory. Stored hashes carry their parameters: changing these never breaks a login.
"""

from __future__ import annotations

import asyncio
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.admin.errors import InvalidInput

PASSWORD_MIN = 10
PASSWORD_MAX = 128
CONCURRENT_HASHES = 1

_hasher = PasswordHasher(parallelism=1)
# Taken in the worker thread (not the loop): works whatever event loop calls.
_slots = threading.BoundedSemaphore(CONCURRENT_HASHES)
# Verified against when the account does not exist, so the answer takes as long either way.
_DUMMY = _hasher.hash("campbot-no-such-account")


def check_password_rules(password: str, *, field: str = "password") -> None:
    """InvalidInput naming `field` when the password is too short, too long or not text."""
    if len(password) < PASSWORD_MIN:
        raise InvalidInput(field, f"密码至少 {PASSWORD_MIN} 个字符。")
    if len(password) > PASSWORD_MAX:
        raise InvalidInput(field, f"密码最多 {PASSWORD_MAX} 个字符。")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise InvalidInput(field, "密码不能包含控制字符。")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hash, password)


def _hash(password: str) -> str:
    with _slots:
        return _hasher.hash(password)


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when `password` matches; with no hash (no such account) the same work is done."""
    return await asyncio.to_thread(_verify, stored_hash or _DUMMY, password, stored_hash)


def _verify(stored_hash: str, password: str, real: str | None) -> bool:
    try:
        with _slots:
            _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    return real is not None
