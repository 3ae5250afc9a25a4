"""The audit log: every admin write records who, what, before → after, and when."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.common import Page, page_of
from app.admin.models import AuditEntry


async def record(
    *,
    session: AsyncSession,
    actor: str,
    resource: str,
    resource_id: int | str,
    action: str,
    before: dict[str, object] | None,
    after: dict[str, object] | None,
    now: datetime,
) -> None:
    """Add the entry to the request's transaction: it commits with the change or not at all."""
    session.add(
        AuditEntry(
            at=now,
            actor=actor,
            resource=resource,
            resource_id=str(resource_id),
            action=action,
            before=before,
            after=after,
        )
    )
    await session.flush()


async def list_entries(
    *,
    session: AsyncSession,
    resource: str | None,
    resource_id: str | None,
    actor: str | None,
    limit: int,
    offset: int,
) -> Page[AuditEntry]:
    """Newest first."""
    statement = select(AuditEntry).order_by(AuditEntry.id.desc())
    if resource is not None:
        statement = statement.where(AuditEntry.resource == resource)
    if resource_id is not None:
        statement = statement.where(AuditEntry.resource_id == resource_id)
    if actor is not None:
        statement = statement.where(AuditEntry.actor == actor)
    return await page_of(statement, session=session, limit=limit, offset=offset)
