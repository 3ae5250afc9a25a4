"""Who makes an admin request: the bearer token, ADMIN_TOKEN or an operator token.

A wrong token counts against the address that sent it (`app.api.admin.throttle`); a missing
header guesses nothing and is not counted.
"""

from __future__ import annotations

import logging

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.common import Actor
from app.admin.errors import AuthError
from app.admin.tokens.service import authenticate
from app.api.admin.throttle import AuthThrottle
from app.deps import get_runtime

logger = logging.getLogger(__name__)


def _presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthError("Authorization 请求头的格式应为：Bearer <令牌>。")
    return value.strip() or None


async def authenticated(
    request: Request, session: AsyncSession, *, throttle: AuthThrottle, address: str
) -> Actor:
    """The actor; AuthError (a wrong token counted against `address`) otherwise."""
    admin_token = get_runtime(request).settings.admin_token
    presented = _presented_token(request)
    try:
        return await authenticate(
            session=session,
            presented=presented,
            admin_token=admin_token.get_secret_value() if admin_token else None,
        )
    except AuthError:
        # Only a token that was compared counts: a missing header guesses nothing.
        if presented is not None and throttle.failed(address):
            logger.warning(
                "admin API: %d wrong tokens from %s within %.0f s: refusing it for a while",
                throttle.max_failures,
                address,
                throttle.window_s,
                extra={"client": address},
            )
        raise
