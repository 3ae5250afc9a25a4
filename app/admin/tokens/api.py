"""`/admin/api/tokens`: named operator tokens (shown once, stored hashed, revocable)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query, Response
from pydantic import Field

from app.admin.tokens import service
from app.api.admin.deps import ActorDep, AdminSessionDep, admin_resource_router
from app.api.admin.fields import IdPath, Limit, Offset, OperatorName
from app.api.admin.schemas import ERRORS_404, ERRORS_409, ERRORS_422, Input, ItemsPage, Output
from app.deps import RuntimeDep

router = admin_resource_router("/tokens", "tokens")


class TokenCreate(Input):
    name: OperatorName = Field(description="操作员名称，记录在审计日志中")


class TokenOut(Output):
    id: int
    name: str
    prefix: str = Field(description="令牌开头几位，用于辨认")
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="令牌明文：只在创建时显示这一次，请立即保存")


@router.post(
    "",
    status_code=201,
    summary="创建操作员令牌",
    description=(
        "返回的 `token` 只显示这一次；服务端只保存它的 SHA-256。审计日志以 `name` 记录操作人。"
    ),
    responses=ERRORS_409 | ERRORS_422,
)
async def create_token(
    body: TokenCreate, session: AdminSessionDep, actor: ActorDep, runtime: RuntimeDep
) -> TokenCreated:
    row, plaintext = await service.create_token(
        session=session, name=body.name, actor=actor, now=runtime.clock.now()
    )
    return TokenCreated.model_validate(
        {**TokenOut.model_validate(row).model_dump(), "token": plaintext}
    )


@router.get("", summary="操作员令牌列表", description="不含令牌明文。", responses=ERRORS_422)
async def list_tokens(
    session: AdminSessionDep,
    include_revoked: Annotated[bool, Query(description="是否包含已吊销的令牌")] = False,
    limit: Limit = 50,
    offset: Offset = 0,
) -> ItemsPage[TokenOut]:
    page = await service.list_tokens(
        session=session, include_revoked=include_revoked, limit=limit, offset=offset
    )
    items = [TokenOut.model_validate(row) for row in page.items]
    return ItemsPage(items=items, total=page.total, limit=limit, offset=offset)


@router.delete(
    "/{token_id}",
    status_code=204,
    summary="吊销操作员令牌",
    description="吊销后该令牌的请求一律 401。",
    responses=ERRORS_404 | ERRORS_409 | ERRORS_422,
)
async def revoke_token(
    token_id: IdPath, session: AdminSessionDep, actor: ActorDep, runtime: RuntimeDep
) -> Response:
    await service.revoke_token(
        session=session, token_id=token_id, actor=actor, now=runtime.clock.now()
    )
    return Response(status_code=204)
