"""Dependencies of the H5 routes: the member a token names, and the upload storage."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.admin import h5_tokens
from app.deps import SessionDep
from app.storage import Storage, default_storage


class TokenRefused(Exception):
    """A token that is malformed, not signed by this server, or revoked. Deliberately
    carries nothing: the answer must not tell which of these it was."""


async def h5_member(token: str, session: SessionDep) -> int:
    """The member id the path's `{token}` names; TokenRefused (→ 403) otherwise."""
    member_id = await h5_tokens.verify(session=session, token=token)
    if member_id is None:
        raise TokenRefused
    return member_id


def get_storage(request: Request) -> Storage:
    """`app.state.storage` when the app was given one (tests, another backend), else the
    default folder `uploads/` in the working directory."""
    storage: Storage | None = getattr(request.app.state, "storage", None)
    return storage if storage is not None else default_storage()


MemberIdDep = Annotated[int, Depends(h5_member)]
StorageDep = Annotated[Storage, Depends(get_storage)]
