"""`/admin/api/outbox`: every message CampBot sends, and the operator's retry and cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import Field

from app.admin.outbox import service
from app.api.admin.deps import ActorDep, AdminSessionDep, admin_resource_router
from app.api.admin.fields import PRINTABLE, BigIdPath, Limit, Offset
from app.api.admin.schemas import ERRORS_404, ERRORS_409, ERRORS_422, ItemsPage, Output
from app.channels.routing import CHANNEL_NAMES
from app.deps import RuntimeDep
from app.models import OutboxStatus

router = admin_resource_router("/outbox", "outbox")


class OutboxOut(Output):
    id: int
    key: str
    channel: str
    delivery: str = Field(
        description="发送方式：群发、群SOP（员工在聊天工具栏发送）、群机器人、应用消息…"
    )
    target: str
    payload: dict[str, Any]
    status: str
    attempts: int
    max_attempts: int
    not_before: datetime
    in_doubt: int = Field(description="可能已送达却被重发的次数")
    errcode: int | None = Field(description="最后一次企业微信错误码")
    last_error: str | None
    hint: str | None = Field(description="最后一次错误的处理建议")
    wecom_msgid: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None


def _out(view: service.OutboxView) -> OutboxOut:
    row = view.row
    return OutboxOut(
        id=row.id,
        key=row.key,
        channel=row.channel,
        delivery=CHANNEL_NAMES.get(row.channel, row.channel),
        target=row.target,
        payload=dict(row.payload),
        status=row.status,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        not_before=row.not_before,
        in_doubt=row.in_doubt,
        errcode=row.last_errcode,
        last_error=row.last_error,
        hint=view.hint,
        wecom_msgid=row.wecom_msgid,
        created_at=row.created_at,
        updated_at=row.updated_at,
        sent_at=row.sent_at,
    )


@router.get(
    "",
    summary="待发消息列表",
    description=(
        "从新到旧；可按 `status`（pending/claimed/sending/sent/dead/cancelled/"
        "awaiting_staff 等员工发送/skipped）、"
        "渠道 `channel`、目标 `target` 过滤。"
    ),
    responses=ERRORS_422,
)
async def list_outbox(
    session: AdminSessionDep,
    status: Annotated[OutboxStatus | None, Query(description="状态")] = None,
    channel: Annotated[str | None, Query(max_length=32, pattern=PRINTABLE)] = None,
    target: Annotated[str | None, Query(max_length=200, pattern=PRINTABLE)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> ItemsPage[OutboxOut]:
    page = await service.list_outbox(
        session=session, status=status, channel=channel, target=target, limit=limit, offset=offset
    )
    return ItemsPage(
        items=[_out(v) for v in page.items], total=page.total, limit=limit, offset=offset
    )


@router.get(
    "/{outbox_id}",
    summary="查看待发消息",
    description="含最后一次错误 `last_error`、企业微信错误码 `errcode` 和处理建议 `hint`。",
    responses=ERRORS_404 | ERRORS_422,
)
async def get_outbox(outbox_id: BigIdPath, session: AdminSessionDep) -> OutboxOut:
    return _out(await service.get_outbox(session=session, outbox_id=outbox_id))


@router.post(
    "/{outbox_id}/retry",
    summary="重试失败消息",
    description="只对 `dead` 的消息：立即重新排队，尝试次数清零（先修好出错原因，如机器人 key）。",
    responses=ERRORS_404 | ERRORS_409 | ERRORS_422,
)
async def retry(
    outbox_id: BigIdPath, session: AdminSessionDep, actor: ActorDep, runtime: RuntimeDep
) -> OutboxOut:
    view = await service.retry(
        session=session, actor=actor, now=runtime.clock.now(), outbox_id=outbox_id
    )
    return _out(view)


@router.post(
    "/{outbox_id}/cancel",
    summary="取消待发消息",
    description="只对 `pending` 的消息：不再发送。",
    responses=ERRORS_404 | ERRORS_409 | ERRORS_422,
)
async def cancel(
    outbox_id: BigIdPath, session: AdminSessionDep, actor: ActorDep, runtime: RuntimeDep
) -> OutboxOut:
    view = await service.cancel(
        session=session, actor=actor, now=runtime.clock.now(), outbox_id=outbox_id
    )
    return _out(view)
