"""What admin endpoints declare: the router their routes go on, the actor, the session."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.common import Actor
from app.api.admin.route_class import AdminRoute, request_actor, request_session
from app.api.admin.schemas import ERRORS_401, ERRORS_422, ERRORS_429

logger = logging.getLogger(__name__)

_bearer_doc = HTTPBearer(auto_error=False, description="ADMIN_TOKEN 或操作员令牌")


def require_admin(
    request: Request,
    _doc: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_doc)],
) -> Actor:
    """The authenticated actor; fails closed (401) on a route that is not an AdminRoute.

    `_doc` only puts the bearer scheme into the OpenAPI document: AdminRoute checks the token.
    """
    actor = request_actor(request)
    if actor is None:
        # Declared on a plain APIRouter: nothing checked the token, so refuse everything.
        logger.error("admin route %s is not an AdminRoute", request.url.path)
        raise HTTPException(
            401, "管理接口配置错误：该路由未经鉴权。", {"WWW-Authenticate": "Bearer"}
        )
    return actor


def get_admin_session(request: Request) -> AsyncSession:
    return request_session(request)


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
