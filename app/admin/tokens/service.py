"""Who may use the admin API: the ADMIN_TOKEN bootstrap and named operator tokens.

An operator token is shown once at creation; only its SHA-256 is stored, so a leaked
database does not leak usable tokens. Revoking sets `revoked_at` (the row stays, so the
audit log's actor names keep their meaning).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.audit import AuditTrail
from app.admin.common import Actor, Page, get_or_404, page_of, snapshot
from app.admin.errors import AuthError, Conflict, InvalidInput
from app.admin.models import OperatorToken

BOOTSTRAP_ACTOR = "admin"  # the actor name of requests made with ADMIN_TOKEN
TOKEN_PREFIX = "cbt_"
AUDIT = AuditTrail("tokens")
_NO_HASH = ("token_sha256",)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def authenticate(
    *, session: AsyncSession, presented: str | None, admin_token: str | None
) -> Actor:
    """The actor a bearer token names, or AuthError."""
    if not presented:
        raise AuthError("缺少管理令牌：请在请求头加上 Authorization: Bearer <令牌>。")
    if admin_token is not None and hmac.compare_digest(presented.encode(), admin_token.encode()):
        return Actor(BOOTSTRAP_ACTOR)
    if not presented.startswith(TOKEN_PREFIX):
        raise AuthError("管理令牌无效或已被吊销。")  # not even shaped like one: no lookup
    # The lookup is by hash: its timing can only tell an attacker about the digest of what
    # they sent, which does not help them guess a token.
    digest = token_sha256(presented)
    row = await session.scalar(
        select(OperatorToken).where(
            OperatorToken.token_sha256 == digest, OperatorToken.revoked_at.is_(None)
        )
    )
    if row is None or not hmac.compare_digest(row.token_sha256.encode(), digest.encode()):
        raise AuthError("管理令牌无效或已被吊销。")
    return Actor(row.name, row.id)


async def create_token(
    *, session: AsyncSession, name: str, actor: Actor, now: datetime
) -> tuple[OperatorToken, str]:
    """A new operator token and its plaintext (the only time it is available)."""
    if name == BOOTSTRAP_ACTOR:
        raise InvalidInput("name", f"名称「{BOOTSTRAP_ACTOR}」保留给 ADMIN_TOKEN，请换一个。")
    taken = await session.scalar(
        select(OperatorToken.id).where(
            OperatorToken.name == name, OperatorToken.revoked_at.is_(None)
        )
    )
    if taken is not None:
        raise Conflict(f"已有名为「{name}」的有效令牌（id {taken}）；请先吊销它或换一个名称。")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = OperatorToken(
        name=name,
        token_sha256=token_sha256(plaintext),
        prefix=plaintext[:10],
        created_by=actor.name,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    after = snapshot(row, exclude=_NO_HASH)
    await AUDIT.record("create", row.id, session=session, actor=actor, now=now, after=after)
    return row, plaintext


async def revoke_token(
    *, session: AsyncSession, token_id: int, actor: Actor, now: datetime
) -> OperatorToken:
    row = await get_or_404(OperatorToken, token_id, session=session, what="操作令牌")
    if row.revoked_at is not None:
        raise Conflict(f"操作令牌 {token_id} 已于 {row.revoked_at:%Y-%m-%d %H:%M} (UTC) 吊销。")
    before = snapshot(row, exclude=_NO_HASH)
    row.revoked_at = now
    await session.flush()
    after = snapshot(row, exclude=_NO_HASH)
    await AUDIT.record(
        "revoke", row.id, session=session, actor=actor, now=now, before=before, after=after
    )
    return row


async def list_tokens(
    *, session: AsyncSession, include_revoked: bool, limit: int, offset: int
) -> Page[OperatorToken]:
    statement = select(OperatorToken).order_by(OperatorToken.id)
    if not include_revoked:
        statement = statement.where(OperatorToken.revoked_at.is_(None))
    return await page_of(statement, session=session, limit=limit, offset=offset)
