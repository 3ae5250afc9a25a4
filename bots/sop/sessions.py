"""Who is using the sidebar: a signed cookie naming the staff member WeCom's OAuth vouched for.

The cookie is `userid.expiry.mac` (HMAC-SHA256 with the server key `sidebar_session_key`,
`app.server_secrets`: made once, shared by every instance; deleting its row signs everyone
out, within `KEY_TTL` seconds, as each process keeps it that long). The OAuth round trip
carries a random `state` whose MAC rides in a short-lived cookie, so a code minted for
someone else's sign-in cannot be replayed into this browser.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.server_secrets import server_key

KEY_NAME = "sidebar_session_key"
COOKIE = "campbot_sidebar"
STATE_COOKIE = "campbot_sidebar_state"
HARNESS_COOKIE = "campbot_sidebar_harness"
LIFETIME = timedelta(hours=12)
STATE_LIFETIME = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Staff:
    userid: str


def _mac(key: bytes, text: str) -> str:
    digest = hmac.new(key, text.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


# The key as this process last read it, per database: every sidebar request needs it, and a
# transaction each is a round trip for what changes only when an operator deletes its row
# (signing everyone out: within KEY_TTL seconds here).
KEY_TTL = 5.0
_keys: weakref.WeakKeyDictionary[async_sessionmaker[AsyncSession], tuple[float, bytes]] = (
    weakref.WeakKeyDictionary()
)


async def key_of(sessions: async_sessionmaker[AsyncSession], now: datetime) -> bytes:
    cached = _keys.get(sessions)
    if cached is not None and time.monotonic() - cached[0] < KEY_TTL:
        return cached[1]
    async with sessions.begin() as session:
        key = await server_key(session=session, name=KEY_NAME, now=now)
    _keys[sessions] = (time.monotonic(), key)
    return key


def issue(key: bytes, userid: str, now: datetime) -> str:
    body = f"{_b64(userid)}.{int((now + LIFETIME).timestamp())}"
    return f"{body}.{_mac(key, body)}"


def verify(key: bytes, cookie: str | None, now: datetime) -> Staff | None:
    """The staff member a cookie names, or None (absent, tampered, expired)."""
    if not cookie or len(cookie) > 400 or cookie.count(".") != 2:
        return None
    encoded, expiry, mac = cookie.split(".")
    if not hmac.compare_digest(mac, _mac(key, f"{encoded}.{expiry}")):
        return None
    if not expiry.isdigit() or int(expiry) < now.timestamp():
        return None
    userid = _unb64(encoded)
    return Staff(userid) if userid else None


def new_state(key: bytes, now: datetime) -> tuple[str, str]:
    """(the OAuth `state`, letters and digits as WeCom wants; the cookie that vouches for it)."""
    state = secrets.token_hex(16)
    body = f"{state}.{int((now + STATE_LIFETIME).timestamp())}"
    return state, f"{body}.{_mac(key, body)}"


def state_ok(key: bytes, state: str, cookie: str | None, now: datetime) -> bool:
    if not cookie or cookie.count(".") != 2:
        return False
    expected, expiry, mac = cookie.split(".")
    return (
        hmac.compare_digest(mac, _mac(key, f"{expected}.{expiry}"))
        and hmac.compare_digest(expected, state)
        and expiry.isdigit()
        and int(expiry) >= now.timestamp()
    )
