"""The admin route class: authenticate, run, commit once — before the answer is sent.

Every admin route is an `AdminRoute` (declare it on `app.api.admin.deps.admin_resource_router`).
Its handler refuses an address that sent too many wrong tokens (429, `app.api.admin.throttle`),
opens the request's one session, authenticates the bearer token before the body is even read
(`app.api.admin.auth`; so any unauthenticated request is a 401, malformed or not), runs the
endpoint and commits only if the endpoint answered < 400. Anything else rolls the whole
request back: no half-written rows. Errors become the JSON bodies of `app.api.admin.errors`;
a database constraint that still fires (a race the services' checks lost) is a 409, a value
the database refuses a 422.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.common import Actor
from app.admin.errors import AdminError, Conflict, InvalidInput, TooManyFailures
from app.api.admin.auth import authenticated
from app.api.admin.errors import error_response, validation_response
from app.api.admin.throttle import admin_throttle, client_address
from app.deps import get_runtime

logger = logging.getLogger(__name__)

_SESSION = "admin_session"
_ACTOR = "admin_actor"


def request_actor(request: Request) -> Actor | None:
    """Who the AdminRoute authenticated; None on any other route."""
    actor = getattr(request.state, _ACTOR, None)
    return actor if isinstance(actor, Actor) else None


def request_session(request: Request) -> AsyncSession:
    """The session the AdminRoute opened for this request (it commits or rolls it back)."""
    session: AsyncSession = getattr(request.state, _SESSION)
    return session


async def _run(
    request: Request, handler: Callable[[Request], Coroutine[Any, Any, Response]]
) -> Response:
    throttle, address = admin_throttle(request), client_address(request)
    wait = throttle.retry_after(address)
    if wait is not None:
        return error_response(TooManyFailures(wait))
    async with get_runtime(request).sessions() as session:
        try:
            actor = await authenticated(request, session, throttle=throttle, address=address)
            setattr(request.state, _SESSION, session)
            setattr(request.state, _ACTOR, actor)
            response = await handler(request)
            if response.status_code < 400:
                await session.commit()
            else:
                await session.rollback()
            return response
        except Exception as exc:  # cancellation passes; closing the session rolls back
            await session.rollback()
            mapped = _as_admin_error(exc)
            if mapped is None:
                raise
            return mapped


def _as_admin_error(exc: BaseException) -> Response | None:
    if isinstance(exc, RequestValidationError):
        return validation_response(exc)
    if isinstance(exc, AdminError):
        return error_response(exc)
    if isinstance(exc, IntegrityError):
        logger.info("admin write refused by a constraint: %s", exc.orig)
        return error_response(Conflict("与已有数据冲突（可能有人同时修改了它），请刷新后重试。"))
    if isinstance(exc, DataError) or _is_data_exception(exc):
        logger.info("admin write refused by the database: %s", getattr(exc, "orig", exc))
        return error_response(InvalidInput("body", "数据库拒绝了这个值（超出范围或格式不对）。"))
    return None


def _is_data_exception(exc: BaseException) -> bool:
    """SQLSTATE class 22 (data exception: a NUL byte, a bad encoding, a value out of range)
    that the driver reports as a plain DBAPIError rather than a DataError (asyncpg does)."""
    if not isinstance(exc, DBAPIError):
        return False
    code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
    return isinstance(code, str) and code.startswith("22")


class AdminRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def admin_handler(request: Request) -> Response:
            return await _run(request, handler)

        return admin_handler
