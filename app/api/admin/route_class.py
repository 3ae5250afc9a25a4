"""The admin request: authenticate, run, commit once — before the answer is sent.

Every admin route is an `AdminRoute` (use `admin_resource_router`). Its handler refuses an
address that sent too many wrong tokens (429, `app.api.admin.throttle`), opens the
request's one session, authenticates the bearer token before the body is even read (so any
unauthenticated request is a 401, malformed or not), runs the endpoint and commits only if
the endpoint answered < 400. Anything else rolls the whole request back: no half-written
rows. Errors become the JSON bodies of `app.api.admin.errors`; a database constraint that
still fires (a race the services' checks lost) is a 409, a value the database refuses a 422.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.common import Actor
from app.admin.errors import AdminError, AuthError, Conflict, InvalidInput, TooManyFailures
from app.admin.service_tokens import authenticate
from app.api.admin.errors import error_response, validation_response
from app.api.admin.schemas import ERRORS_401, ERRORS_422, ERRORS_429
from app.api.admin.throttle import AuthThrottle, admin_throttle, client_address
from app.deps import get_runtime

logger = logging.getLogger(__name__)

_SESSION = "admin_session"
_ACTOR = "admin_actor"


def _presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthError("Authorization 请求头的格式应为：Bearer <令牌>。")
    return value.strip() or None


async def _authenticated(
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


async def _run(
    request: Request, handler: Callable[[Request], Coroutine[Any, Any, Response]]
) -> Response:
    throttle, address = admin_throttle(request), client_address(request)
    wait = throttle.retry_after(address)
    if wait is not None:
        return error_response(TooManyFailures(wait))
    async with get_runtime(request).sessions() as session:
        try:
            actor = await _authenticated(request, session, throttle=throttle, address=address)
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


_bearer_doc = HTTPBearer(auto_error=False, description="ADMIN_TOKEN 或操作员令牌")


def require_admin(
    request: Request,
    _doc: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_doc)],
) -> Actor:
    """The authenticated actor; fails closed (401) on a route that is not an AdminRoute.

    `_doc` only puts the bearer scheme into the OpenAPI document: AdminRoute checks the token.
    """
    actor = getattr(request.state, _ACTOR, None)
    if not isinstance(actor, Actor):
        # Declared on a plain APIRouter: nothing checked the token, so refuse everything.
        logger.error("admin route %s is not an AdminRoute", request.url.path)
        raise HTTPException(
            401, "管理接口配置错误：该路由未经鉴权。", {"WWW-Authenticate": "Bearer"}
        )
    return actor


def get_admin_session(request: Request) -> AsyncSession:
    session: AsyncSession = getattr(request.state, _SESSION)
    return session


ActorDep = Annotated[Actor, Depends(require_admin)]
AdminSessionDep = Annotated[AsyncSession, Depends(get_admin_session)]


def admin_resource_router(prefix: str, tag: str) -> APIRouter:
    """The router every admin resource module declares its routes on (domain packages too:
    include it with `prefix="/admin/api"`). Its routes authenticate, commit once, answer the
    admin error bodies, and document the bearer scheme, the 401, the 429 and the 422 body."""
    return APIRouter(
        prefix=prefix,
        tags=[tag],
        route_class=AdminRoute,
        dependencies=[Depends(require_admin)],
        responses=ERRORS_401 | ERRORS_429 | ERRORS_422,
    )
