"""Helpers every admin service uses: pages of rows, lookups that 404, row snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.errors import Conflict, NotFound
from app.db import Base

T = TypeVar("T")
M = TypeVar("M", bound=Base)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes an admin request: "admin" (ADMIN_TOKEN) or an operator token's name."""

    name: str
    token_id: int | None = None  # None: the ADMIN_TOKEN bootstrap


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    total: int


async def page_of(
    statement: Select[M], *, session: AsyncSession, limit: int, offset: int
) -> Page[M]:
    """One page of `statement`'s rows (ordered by the caller) and how many there are in all."""
    total = await session.scalar(
        select(func.count()).select_from(statement.order_by(None).subquery())
    )
    rows = (await session.execute(statement.limit(limit).offset(offset))).scalars().all()
    return Page(items=rows, total=int(total or 0))


async def get_or_404(
    model: type[M], ident: int, *, session: AsyncSession, what: str, lock: bool = False
) -> M:
    """The row with primary key `ident`, or NotFound naming `what` (e.g. "训练营期次").

    `lock` takes the row (FOR UPDATE on PostgreSQL; SQLite's write lock is already held).
    """
    row = await session.get(model, ident, with_for_update=lock)
    if row is None:
        raise NotFound(f"{what} {ident} 不存在。")
    return row


def json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def snapshot(row: Base, *, exclude: Sequence[str] = ()) -> dict[str, object]:
    """The row's columns as JSON values, for the audit log."""
    return {
        column.key: json_value(getattr(row, column.key))
        for column in row.__table__.columns
        if column.key not in exclude
    }


async def flush_or_conflict(session: AsyncSession, message: str) -> None:
    """Flush; a unique constraint that a concurrent request won meanwhile becomes Conflict."""
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(message) from exc
