"""Signing in: the password checked off the event loop, throttled per address and locked per
account after repeated failures, each refusal saying in Chinese until when.

- Per address (this process's memory, `AuthThrottle`): `ADDRESS_MAX_FAILURES` wrong
  passwords within `ADDRESS_WINDOW_S` and the address is refused until the oldest leaves the
  window, whichever account it tries.
- Per account (in the database, so every instance agrees): `ACCOUNT_MAX_FAILURES` wrong
  passwords in a row lock it for `ACCOUNT_LOCK`; a right password, or a password set by an
  administrator, starts the count again.

The transactions are short and never span the hash: the account is read, the session closed,
the password verified in a thread, and only then the outcome written.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.admin.throttle import AuthThrottle
from app.console.models import ConsoleAccount
from app.console.passwords import HashesBusy, verify_password

ACCOUNT_MAX_FAILURES = 5
ACCOUNT_LOCK = timedelta(minutes=15)
ADDRESS_MAX_FAILURES = 20
ADDRESS_WINDOW_S = 600.0
WRONG = "用户名或密码不正确。"


class SignInRefused(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def address_throttle() -> AuthThrottle:
    return AuthThrottle(max_failures=ADDRESS_MAX_FAILURES, window_s=ADDRESS_WINDOW_S)


def _until(now: datetime, until: datetime, tz: str) -> str:
    minutes = max(1, round((until - now).total_seconds() / 60))
    return f"{until.astimezone(ZoneInfo(tz)):%H:%M} 之后（约 {minutes} 分钟）"


async def sign_in(
    *,
    sessions: async_sessionmaker[AsyncSession],
    throttle: AuthThrottle,
    username: str,
    password: str,
    address: str,
    now: datetime,
    tz: str,
) -> ConsoleAccount:
    """The account, its failure count cleared; SignInRefused (Chinese, with a time) else."""
    wait = throttle.retry_after(address)
    if wait is not None:
        until = _until(now, now + timedelta(seconds=wait), tz)
        raise SignInRefused(f"这个地址登录失败次数过多，请在 {until}再试。", 429)
    async with sessions() as session:
        account = await session.scalar(
            select(ConsoleAccount).where(ConsoleAccount.username == username)
        )
    if account is not None and account.locked_until is not None and account.locked_until > now:
        until = _until(now, account.locked_until, tz)
        raise SignInRefused(f"密码错误次数过多，账号已锁定，请在 {until}再试。", 429)
    try:
        verified = await verify_password(account.password_hash if account else None, password)
    except HashesBusy as busy:
        raise SignInRefused(busy.message, 429) from None
    if not verified:
        throttle.failed(address)
        if account is not None:
            await _count_failure(sessions, account.id, now)
        raise SignInRefused(WRONG, 401)
    assert account is not None  # verify_password is False without one
    if account.disabled_at is not None:
        raise SignInRefused("这个账号已停用，请联系管理员。", 403)
    return account


async def _count_failure(
    sessions: async_sessionmaker[AsyncSession], account_id: int, now: datetime
) -> None:
    async with sessions.begin() as session:
        # One statement: concurrent failures each count.
        failures = await session.scalar(
            update(ConsoleAccount)
            .where(ConsoleAccount.id == account_id)
            .values(failed_logins=ConsoleAccount.failed_logins + 1)
            .returning(ConsoleAccount.failed_logins)
        )
        if failures is not None and failures >= ACCOUNT_MAX_FAILURES:
            await session.execute(
                update(ConsoleAccount)
                .where(ConsoleAccount.id == account_id)
                .values(failed_logins=0, locked_until=now + ACCOUNT_LOCK)
            )


async def clear_failures(*, session: AsyncSession, account_id: int) -> None:
    await session.execute(
        update(ConsoleAccount)
        .where(ConsoleAccount.id == account_id)
        .values(failed_logins=0, locked_until=None)
    )
