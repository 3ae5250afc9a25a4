"""Personal H5 links (`/h5/m/{token}`): signed, and revocable one member at a time.

A token is `{member_id}.{version}.{mac}`, where `mac` is the first 22 base64url characters
(132 bits) of HMAC-SHA256(key, "campbot/h5/m/v1:{member_id}:{version}"). It names the member
(an id, nothing personal) and can only be made by the server. `member_h5.token_version` is the
version a valid token must carry: bumping it (`revoke`) kills every link the member had.

The key is the server key `h5_link_key` (`app.server_secrets`). It is deliberately not
derived from WECOM_SECRET or ADMIN_TOKEN: those get rotated for reasons that have nothing to
do with students (an operator leaves, the app secret is reset), and each rotation would
silently break every link already sent in welcome messages and reminders. To revoke every
link at once, delete the `h5_link_key` row; the next link made creates a new key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import MemberH5
from app.db import dialect_insert
from app.server_secrets import existing_key, server_key

KEY_NAME = "h5_link_key"
_LABEL = "campbot/h5/m/v1"
_MAC_CHARS = 22
# Canonical numbers only (no leading zeros), so each (member, version) has exactly one token.
_TOKEN_RE = re.compile(r"([1-9][0-9]{0,9})\.(0|[1-9][0-9]{0,8})\.([A-Za-z0-9_-]{22})")


def _mac(key: bytes, member_id: int, version: int) -> str:
    digest = hmac.new(key, f"{_LABEL}:{member_id}:{version}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:_MAC_CHARS]


def sign(key: bytes, member_id: int, version: int) -> str:
    """The token for this member at this version."""
    return f"{member_id}.{version}.{_mac(key, member_id, version)}"


def parse(key: bytes, token: str) -> tuple[int, int] | None:
    """(member_id, version) when the server signed `token`; None for anything else.

    Says nothing about revocation: `verify` checks the version against the database.
    """
    match = _TOKEN_RE.fullmatch(token)
    if match is None:
        return None
    member_id, version = int(match[1]), int(match[2])
    if not hmac.compare_digest(match[3].encode(), _mac(key, member_id, version).encode()):
        return None
    return member_id, version


async def link_key(*, session: AsyncSession, now: datetime) -> bytes:
    """The signing key, made (once, for every instance) if there is none yet."""
    return await server_key(session=session, name=KEY_NAME, now=now)


async def versions(*, session: AsyncSession, member_ids: Sequence[int]) -> dict[int, int]:
    """The current token version of each member (0 when never revoked)."""
    if not member_ids:
        return {}
    rows = await session.execute(
        select(MemberH5.member_id, MemberH5.token_version).where(
            MemberH5.member_id.in_(member_ids)
        )
    )
    found = dict(rows.all())
    return {member_id: found.get(member_id, 0) for member_id in member_ids}


async def tokens_for(
    *, session: AsyncSession, member_ids: Sequence[int], now: datetime
) -> dict[int, str]:
    """Each member's current token (one key read for the lot)."""
    if not member_ids:
        return {}
    key = await link_key(session=session, now=now)
    current = await versions(session=session, member_ids=member_ids)
    return {member_id: sign(key, member_id, current[member_id]) for member_id in member_ids}


async def verify(*, session: AsyncSession, token: str) -> int | None:
    """The member id a valid, unrevoked token names; None otherwise (never raises on input)."""
    if len(token) > 64:
        return None
    key = await existing_key(session=session, name=KEY_NAME)
    if key is None:
        return None  # no link was ever made
    parsed = parse(key, token)
    if parsed is None:
        return None
    member_id, version = parsed
    current = await versions(session=session, member_ids=[member_id])
    return member_id if current[member_id] == version else None


async def revoke(*, session: AsyncSession, member_id: int, now: datetime) -> int:
    """Invalidate every link the member had; answers the new version."""
    insert = dialect_insert(session)
    statement = insert(MemberH5).values(member_id=member_id, token_version=1, updated_at=now)
    statement = statement.on_conflict_do_update(
        index_elements=["member_id"],
        set_={
            "token_version": MemberH5.token_version + statement.excluded.token_version,
            "updated_at": statement.excluded.updated_at,
        },
    ).returning(MemberH5.token_version)
    return int((await session.execute(statement)).scalar_one())


def h5_url(public_base_url: str, token: str) -> str:
    return f"{public_base_url}/h5/m/{token}"


async def member_url(
    *, session: AsyncSession, member_id: int, public_base_url: str, now: datetime
) -> str:
    """The member's personal link as it goes into a welcome message or a reminder."""
    tokens = await tokens_for(session=session, member_ids=[member_id], now=now)
    return h5_url(public_base_url, tokens[member_id])
