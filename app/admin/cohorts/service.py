"""Cohorts (期次): create, read, edit, delete-when-empty, and the change hooks.

The change hooks are how other packages react to a cohort edit without `app` importing
them: the capabilities contribute them (`app.capability.CohortListener`, e.g. the schedules
package re-plans a cohort's pushes when `start_date` moved or a member joined: member-day
schedules count from the member's join), `app.main` binds them once
(`app.capability.Extensions.cohort_hooks`), and the callers hand them to each change
(`hooks=`).

Hooks run in their order, after the change is flushed and audited, inside the same
transaction: what a hook writes commits with the change, and a hook that raises rolls the
whole change back (the operator sees the error instead of a half-applied edit).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.audit import AuditTrail
from app.admin.common import Actor, Page, flush_or_conflict, get_or_404, page_of, snapshot
from app.admin.errors import Conflict, InvalidInput
from app.admin.models import Cohort, CohortGroup, CohortMember

AUDIT = AuditTrail("cohorts")
WHAT = "训练营期次"
EDITABLE = frozenset({"name", "camp", "start_date", "days", "channel_state", "timezone"})


@dataclass(frozen=True, slots=True)
class CohortChange:
    """What happened to a cohort. `before`/`after` are the cohort's snapshots (create,
    update, delete); `member_id` names the member of "member_joined"/"member_left"."""

    action: str  # "create" | "update" | "delete" | "member_joined" | "member_left"
    cohort_id: int
    at: datetime
    before: Mapping[str, object] | None = None
    after: Mapping[str, object] | None = None
    member_id: int | None = None

    @property
    def start_date_moved(self) -> bool:
        if self.before is None or self.after is None:
            return False
        return self.before.get("start_date") != self.after.get("start_date")


class CohortHook(Protocol):
    async def __call__(self, change: CohortChange, *, session: AsyncSession) -> None: ...


@dataclass(frozen=True, slots=True)
class CohortView:
    cohort: Cohort
    group_count: int
    member_count: int


async def notify(
    change: CohortChange, *, session: AsyncSession, hooks: Collection[CohortHook]
) -> None:
    """Run the hooks (see the module docstring)."""
    for hook in hooks:
        await hook(change, session=session)


async def _check_state_free(
    *, session: AsyncSession, channel_state: str, cohort_id: int | None = None
) -> None:
    statement = select(Cohort.id).where(Cohort.channel_state == channel_state)
    if cohort_id is not None:
        statement = statement.where(Cohort.id != cohort_id)
    other = await session.scalar(statement)
    if other is not None:
        raise Conflict(_state_taken(channel_state, other))


def _state_taken(channel_state: str, other: int | None = None) -> str:
    by = f"期次 {other} " if other is not None else "另一个期次"
    return f"渠道 State「{channel_state}」已被{by}使用；每个期次需要自己的渠道活码 State。"


async def _counts(
    *, session: AsyncSession, cohort_ids: Sequence[int]
) -> dict[int, tuple[int, int]]:
    if not cohort_ids:
        return {}
    groups = dict(
        (
            await session.execute(
                select(CohortGroup.cohort_id, func.count())
                .where(CohortGroup.cohort_id.in_(cohort_ids))
                .group_by(CohortGroup.cohort_id)
            )
        ).all()
    )
    members = dict(
        (
            await session.execute(
                select(CohortMember.cohort_id, func.count())
                .where(CohortMember.cohort_id.in_(cohort_ids))
                .group_by(CohortMember.cohort_id)
            )
        ).all()
    )
    return {i: (int(groups.get(i, 0)), int(members.get(i, 0))) for i in cohort_ids}


async def _view(cohort: Cohort, *, session: AsyncSession) -> CohortView:
    groups, members = (await _counts(session=session, cohort_ids=[cohort.id]))[cohort.id]
    return CohortView(cohort, groups, members)


async def create_cohort(
    *,
    session: AsyncSession,
    actor: Actor,
    now: datetime,
    name: str,
    camp: str,
    start_date: date,
    days: int,
    channel_state: str,
    timezone: str,
    hooks: Collection[CohortHook],
) -> CohortView:
    await _check_state_free(session=session, channel_state=channel_state)
    cohort = Cohort(
        name=name,
        camp=camp,
        start_date=start_date,
        days=days,
        channel_state=channel_state,
        timezone=timezone,
        created_at=now,
        updated_at=now,
    )
    session.add(cohort)
    await flush_or_conflict(session, _state_taken(channel_state))
    after = snapshot(cohort)
    await AUDIT.record("create", cohort.id, session=session, actor=actor, now=now, after=after)
    await notify(CohortChange("create", cohort.id, now, None, after), session=session, hooks=hooks)
    return CohortView(cohort, 0, 0)


async def get_cohort(*, session: AsyncSession, cohort_id: int) -> CohortView:
    cohort = await get_or_404(Cohort, cohort_id, session=session, what=WHAT)
    return await _view(cohort, session=session)


NEWEST_FIRST = (Cohort.start_date.desc(), Cohort.id.desc())


async def list_cohorts(
    *,
    session: AsyncSession,
    camp: str | None,
    limit: int,
    offset: int,
    ids: Collection[int] | None = None,
) -> Page[CohortView]:
    """Newest start first; `ids` keeps only those cohorts (an assistant's)."""
    statement = select(Cohort).order_by(*NEWEST_FIRST)
    if camp is not None:
        statement = statement.where(Cohort.camp == camp)
    if ids is not None:
        statement = statement.where(Cohort.id.in_(ids))
    page = await page_of(statement, session=session, limit=limit, offset=offset)
    counts = await _counts(session=session, cohort_ids=[c.id for c in page.items])
    return Page([CohortView(c, *counts[c.id]) for c in page.items], page.total)


async def cohort_choices(
    *, session: AsyncSession, ids: Collection[int] | None = None, limit: int = 200
) -> list[tuple[int, str]]:
    """(id, "camp · name") for a cohort dropdown, in `list_cohorts`' order; `ids` keeps only
    those. Only the three columns: no counts (a dropdown shows none)."""
    statement = select(Cohort.id, Cohort.camp, Cohort.name).order_by(*NEWEST_FIRST).limit(limit)
    if ids is not None:
        statement = statement.where(Cohort.id.in_(ids))
    return [(i, f"{camp} · {name}") for i, camp, name in await session.execute(statement)]


async def update_cohort(
    *,
    session: AsyncSession,
    actor: Actor,
    now: datetime,
    cohort_id: int,
    changes: Mapping[str, Any],
    hooks: Collection[CohortHook],
) -> CohortView:
    """Apply the given fields (already validated); unknown keys are a programming error."""
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    cohort = await get_or_404(Cohort, cohort_id, session=session, what=WHAT, lock=True)
    state = changes.get("channel_state")
    if state is not None and state != cohort.channel_state:
        await _check_state_free(session=session, channel_state=state, cohort_id=cohort.id)
    before = snapshot(cohort)
    for key, value in changes.items():
        setattr(cohort, key, value)
    after = snapshot(cohort, exclude=("updated_at",))
    if after == {k: v for k, v in before.items() if k != "updated_at"}:
        return await _view(cohort, session=session)  # nothing changed: no audit, no hooks
    cohort.updated_at = now
    await flush_or_conflict(
        session, _state_taken(state) if state else "与已有期次冲突，请刷新后重试。"
    )
    after = snapshot(cohort)
    await AUDIT.record(
        "update", cohort.id, session=session, actor=actor, now=now, before=before, after=after
    )
    change = CohortChange("update", cohort.id, now, before, after)
    await notify(change, session=session, hooks=hooks)
    return await _view(cohort, session=session)


async def delete_cohort(
    *,
    session: AsyncSession,
    actor: Actor,
    now: datetime,
    cohort_id: int,
    hooks: Collection[CohortHook],
) -> None:
    cohort = await get_or_404(Cohort, cohort_id, session=session, what=WHAT, lock=True)
    view = await _view(cohort, session=session)
    if view.group_count or view.member_count:
        raise Conflict(
            f"期次「{cohort.name}」还有 {view.group_count} 个群、{view.member_count} 名学员，"
            "不能删除；请先把它们移出该期次。"
        )
    before = snapshot(cohort)
    await session.delete(cohort)
    await flush_or_conflict(
        session, f"期次「{cohort.name}」仍被其他数据（如推送计划）引用，不能删除。"
    )
    await AUDIT.record("delete", cohort_id, session=session, actor=actor, now=now, before=before)
    await notify(
        CohortChange("delete", cohort_id, now, before, None), session=session, hooks=hooks
    )


def camp_day(cohort: Cohort, now: datetime) -> int:
    """Days since 开营 (day 0) on the cohort's calendar: negative before, > days after."""
    return (now.astimezone(ZoneInfo(cohort.timezone)).date() - cohort.start_date).days


async def require_cohort(
    *, session: AsyncSession, cohort_id: int, field: str = "cohort_id"
) -> Cohort:
    """The cohort another object names in `field`; a missing one is bad input there (422)."""
    cohort = await session.get(Cohort, cohort_id)
    if cohort is None:
        raise InvalidInput(field, f"{WHAT} {cohort_id} 不存在。")
    return cohort


async def cohort_for_state(*, session: AsyncSession, channel_state: str) -> Cohort | None:
    """The cohort a new contact who came through `channel_state` enrolls in (welcome flow)."""
    return await session.scalar(select(Cohort).where(Cohort.channel_state == channel_state))
