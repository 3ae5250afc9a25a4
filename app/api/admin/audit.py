"""`/admin/api/audit`: who changed what through the admin API, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from app.admin import audit as service
from app.api.admin.deps import AdminSessionDep, admin_resource_router
from app.api.admin.fields import PRINTABLE, Limit, Offset
from app.api.admin.schemas import ERRORS_422, AuditOut, ItemsPage

router = admin_resource_router("/audit", "audit")


@router.get(
    "",
    summary="审计日志",
    description=(
        "每次写操作的操作人、对象、动作及修改前后的快照；可按 `resource`（如 cohorts）过滤。"
    ),
    responses=ERRORS_422,
)
async def list_audit(
    session: AdminSessionDep,
    resource: Annotated[str | None, Query(max_length=32, pattern=PRINTABLE)] = None,
    resource_id: Annotated[str | None, Query(max_length=64, pattern=PRINTABLE)] = None,
    actor: Annotated[str | None, Query(max_length=64, pattern=PRINTABLE)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> ItemsPage[AuditOut]:
    page = await service.list_entries(
        session=session,
        resource=resource,
        resource_id=resource_id,
        actor=actor,
        limit=limit,
        offset=offset,
    )
    items = [AuditOut.model_validate(row) for row in page.items]
    return ItemsPage(items=items, total=page.total, limit=limit, offset=offset)
