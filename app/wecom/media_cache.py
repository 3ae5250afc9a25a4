"""Media ids by content hash, so the same poster is uploaded once, not once per send."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import dialect_insert
from app.models import WeComMedia


async def lookup(
    *, session: AsyncSession, scope: str, kind: str, content_hash: str, now: datetime
) -> str | None:
    statement = select(WeComMedia.media_id).where(
        WeComMedia.scope == scope,
        WeComMedia.kind == kind,
        WeComMedia.content_hash == content_hash,
        WeComMedia.expires_at > now,
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def remember(
    *,
    session: AsyncSession,
    scope: str,
    kind: str,
    content_hash: str,
    media_id: str,
    expires_at: datetime,
) -> None:
    insert = dialect_insert(session)
    values = {"media_id": media_id, "expires_at": expires_at}
    await session.execute(
        insert(WeComMedia)
        .values(scope=scope, kind=kind, content_hash=content_hash, **values)
        .on_conflict_do_update(index_elements=["scope", "kind", "content_hash"], set_=values)
    )
