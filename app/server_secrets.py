"""Random keys the server makes for itself, by name, shared by every instance.

A key is 32 random bytes made on first use and kept in `server_secrets` (insert-or-ignore,
so instances starting together agree on one key). Each use has its own name (the H5 links,
sessions…), so one can be rotated — by deleting its row — without touching the others.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import ServerSecret
from app.db import dialect_insert


async def server_key(*, session: AsyncSession, name: str, now: datetime) -> bytes:
    """The key called `name`, made (once, for every instance) if there is none yet."""
    existing = await existing_key(session=session, name=name)
    if existing is not None:
        return existing
    insert = dialect_insert(session)
    await session.execute(
        insert(ServerSecret)
        .values(name=name, value=secrets.token_hex(32), created_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    made = await existing_key(session=session, name=name)
    assert made is not None  # just inserted or already there
    return made


async def existing_key(*, session: AsyncSession, name: str) -> bytes | None:
    value = await session.scalar(select(ServerSecret.value).where(ServerSecret.name == name))
    return bytes.fromhex(value) if value is not None else None
