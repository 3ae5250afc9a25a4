"""Signed-in browsers: a cookie naming a server-side session row, and who it is (`Viewer`).

The cookie is `<secret>.<HMAC-SHA256 of it>` under the server key `console_session_key`
(`app.server_secrets`, made once and shared by every instance): a forged or mangled cookie
is refused before the database is asked. The row is keyed by the secret's SHA-256, so the
table holds nothing a browser could present. A session ends when it is signed out, when the
account's password is set or the account disabled (`app.console.accounts.end_sessions`),
after `IDLE` without a request, or `LIFETIME` after sign-in. Each session has its CSRF token,
which every form and htmx request must send back (`app.console.route`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.common import Actor
from app.console.models import AccountCohort, ConsoleAccount, ConsoleSession, Role
from app.server_secrets import server_key

COOKIE = "campbot_console"
KEY_NAME = "console_session_key"
IDLE = timedelta(hours=24)
LIFETIME = timedelta(days=7)
TOUCH_EVERY = timedelta(minutes=5)  # last_seen_at is written at most this often
_RANK = {Role.ASSISTANT: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in account behind a request, as the console's pages see it."""

    account_id: int
    username: str
    display_name: str
    role: Role
    wecom_userid: str | None
    # An assistant's cohorts; None for the roles that see every cohort.
    cohort_ids: frozenset[int] | None
    session_id: str
    csrf_token: str

    @property
    def actor(self) -> Actor:
        """Who the audit log names for this account's changes."""
        return Actor(self.username)

    def at_least(self, role: Role) -> bool:
        return _RANK[self.role] >= _RANK[role]

    def sees(self, cohort_id: int | None) -> bool:
        return self.cohort_ids is None or cohort_id in self.cohort_ids


def _mac(key: bytes, secret: str) -> str:
    digest = hmac.new(key, secret.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def session_id_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def cookie_value(key: bytes, secret: str) -> str:
    return f"{secret}.{_mac(key, secret)}"


def secret_of(key: bytes, cookie: str | None) -> str | None:
    """The secret a cookie carries if its signature holds, else None."""
    if not cookie or len(cookie) > 200:
        return None
    secret, _, mac = cookie.rpartition(".")
    if not secret or not hmac.compare_digest(mac.encode(), _mac(key, secret).encode()):
        return None
    return secret


async def signing_key(*, session: AsyncSession, cache: dict[str, bytes], now: datetime) -> bytes:
    """The session key, read (or made) once per process and kept in `cache`."""
    key = cache.get(KEY_NAME)
    if key is None:
        key = cache[KEY_NAME] = await server_key(session=session, name=KEY_NAME, now=now)
    return key


async def open_session(
    *, session: AsyncSession, account: ConsoleAccount, now: datetime, address: str, key: bytes
) -> str:
    """A new session for `account`; answers the cookie value."""
    secret = secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            id=session_id_of(secret),
            account_id=account.id,
            csrf_token=secrets.token_urlsafe(32),
            address=address[:64],
            created_at=now,
            last_seen_at=now,
            expires_at=now + LIFETIME,
        )
    )
    await session.flush()
    return cookie_value(key, secret)


async def viewer_for(
    *, session: AsyncSession, cookie: str | None, key: bytes, now: datetime
) -> Viewer | None:
    """Who a cookie names, if its session is live and its account usable."""
    secret = secret_of(key, cookie)
    if secret is None:
        return None
    row = (
        await session.execute(
            select(ConsoleSession, ConsoleAccount)
            .join(ConsoleAccount, ConsoleAccount.id == ConsoleSession.account_id)
            .where(ConsoleSession.id == session_id_of(secret))
        )
    ).first()
    if row is None:
        return None
    live, account = row
    if not _usable(live, account, now):
        return None
    if now - live.last_seen_at >= TOUCH_EVERY:
        await session.execute(
            update(ConsoleSession).where(ConsoleSession.id == live.id).values(last_seen_at=now)
        )
    return await _viewer(session, live, account)


def _usable(live: ConsoleSession, account: ConsoleAccount, now: datetime) -> bool:
    return (
        live.revoked_at is None
        and account.disabled_at is None
        and now < live.expires_at
        and now - live.last_seen_at < IDLE
    )


async def _viewer(session: AsyncSession, live: ConsoleSession, account: ConsoleAccount) -> Viewer:
    cohorts: frozenset[int] | None = None
    if account.role == Role.ASSISTANT:
        cohorts = frozenset(
            await session.scalars(
                select(AccountCohort.cohort_id).where(AccountCohort.account_id == account.id)
            )
        )
    return Viewer(
        account_id=account.id,
        username=account.username,
        display_name=account.display_name,
        role=Role(account.role),
        wecom_userid=account.wecom_userid,
        cohort_ids=cohorts,
        session_id=live.id,
        csrf_token=live.csrf_token,
    )


async def close_session(*, session: AsyncSession, session_id: str, now: datetime) -> None:
    await session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.id == session_id, ConsoleSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
