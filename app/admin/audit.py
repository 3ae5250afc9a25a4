"""The audit log: every admin write records who, what, before → after, and when.

Each admin resource declares its trail once, `AUDIT = AuditTrail("cohorts")`, and its
service writes every change through it, after the change is flushed:

    await AUDIT.record("update", cohort.id, session=session, actor=actor, now=now,
                       before=before, after=snapshot(cohort))

The entry joins the request's transaction: it commits with the change or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.common import Actor, Page, page_of
from app.admin.models import AuditEntry

Snapshot = Mapping[str, object]  # a row's columns as JSON values (`common.snapshot`)


@dataclass(frozen=True, slots=True)
class AuditTrail:
    """One admin resource's entries in the audit log (`resource` names it in each entry)."""

    resource: str

    async def record(
        self,
        action: str,
        resource_id: int | str,
        *,
        session: AsyncSession,
        actor: Actor,
        now: datetime,
        before: Snapshot | None = None,
        after: Snapshot | None = None,
    ) -> None:
        """`action` ("create", "update", "delete", …) was done to `resource_id` by `actor`;
        `before`/`after` are its snapshots (None where there is none: before a create)."""
        session.add(
            AuditEntry(
                at=now,
                actor=actor.name,
                resource=self.resource,
                resource_id=str(resource_id),
                action=action,
                before=None if before is None else dict(before),
                after=None if after is None else dict(after),
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
