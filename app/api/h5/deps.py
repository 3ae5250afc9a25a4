"""Dependencies of the H5 routes: the member a token names, and the upload storage."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin import h5_tokens
from app.admin.models import MemberH5, ServerSecret
from app.deps import SessionDep
from app.runtime import Runtime
from app.storage import Storage, app_storage

# `member_h5.member_id` is a 32-bit column: a larger id (no member has one) must not reach
# PostgreSQL as a parameter, where it would fail the request instead of refusing the token.
_MAX_MEMBER_ID = 2**31 - 1


# The link key and one member's token version (NULL: no row, version 0), in one statement
# built once: it runs before every H5 request.
_KEY_AND_VERSION = select(
    ServerSecret.value,
    select(MemberH5.token_version)
    .where(MemberH5.member_id == bindparam("member_id"))
    .scalar_subquery(),
).where(ServerSecret.name == h5_tokens.KEY_NAME)


class TokenRefused(Exception):
    """A token that is malformed, not signed by this server, or revoked. Deliberately
    carries nothing: the answer must not tell which of these it was."""


async def verify_token(*, session: AsyncSession, token: str) -> int | None:
    """`h5_tokens.verify` in one statement: every page view and check-in starts here.

    The key and the member's token version are read together (the member id is taken from
    the token before its MAC is checked: it only picks the row, the MAC then decides).
    Neither is cached in the process: deleting the key or bumping a version must take
    effect in every instance at once.
    """
    if len(token) > 64:
        return None
    claimed = token.split(".", 1)[0]
    if not claimed.isascii() or not claimed.isdigit() or int(claimed) > _MAX_MEMBER_ID:
        return None
    member_id = int(claimed)
    row = (await session.execute(_KEY_AND_VERSION, {"member_id": member_id})).first()
    if row is None:
        return None  # no link was ever made
    parsed = h5_tokens.parse(bytes.fromhex(row[0]), token)
    if parsed is None or parsed[0] != member_id:
        return None
    current = row[1] if row[1] is not None else 0  # no row: never revoked
    return parsed[0] if parsed[1] == current else None


async def h5_member(token: str, session: SessionDep) -> int:
    """The member id the path's `{token}` names; TokenRefused (→ 403) otherwise."""
    member_id = await verify_token(session=session, token=token)
    if member_id is None:
        raise TokenRefused
    return member_id


async def get_storage(request: Request) -> Storage:
    """`app.state.storage` when the app was given one (tests, another backend), else
    `app_storage()`: the one event handlers store into too (`use_storage`), by default the
    folder `uploads/` in the working directory. (`async` only so FastAPI calls it in place:
    a plain `def` dependency costs a trip to the thread pool per request.)"""
    storage: Storage | None = getattr(request.app.state, "storage", None)
    return storage if storage is not None else app_storage()


async def get_h5_runtime(request: Request) -> Runtime:
    """`app.deps.get_runtime`, but a coroutine, for the same reason as `get_storage`."""
    runtime: Runtime = request.app.state.runtime
    return runtime


MemberIdDep = Annotated[int, Depends(h5_member)]
H5RuntimeDep = Annotated[Runtime, Depends(get_h5_runtime)]
StorageDep = Annotated[Storage, Depends(get_storage)]
