"""Many firings in one transaction: claimed together (SKIP LOCKED), their schedules,
scripts and cohorts loaded once, and their messages resolved, rendered and checked once per
distinct target, cohort and context (`Batch`, valid in that transaction only)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Cohort
from app.capability import Extensions
from app.channels.messages import OutMessage
from app.channels.routes import message_payload
from app.outbox import NewMessage
from schedules.context import provided_variables
from schedules.firing import context_for, due_label, key_of, with_values
from schedules.models import Firing, FiringStatus, Schedule
from schedules.planner import cohort_zone
from schedules.targets import resolve
from scripts_library.models import Script
from scripts_library.render import render, variables_used
from scripts_library.variables import RenderContext


class Claimed(NamedTuple):
    id: int
    schedule_id: int
    member_id: int | None
    due_at: datetime


async def claim_many(
    session: AsyncSession, firing_ids: Sequence[int], now: datetime
) -> list[Claimed]:
    """Claim the firings still planned: planned → fired, in the caller's transaction."""
    # SKIP LOCKED (PostgreSQL; SQLite has one writer anyway): a firing another scheduler
    # holds is its to fire or record, and waiting on its locks could deadlock.
    planned = (
        select(Firing.id)
        .where(Firing.id.in_(firing_ids), Firing.status == FiringStatus.PLANNED)
        .with_for_update(skip_locked=True)
    )
    rows = await session.execute(
        update(Firing)
        .where(Firing.id.in_(planned.scalar_subquery()), Firing.status == FiringStatus.PLANNED)
        .values(status=FiringStatus.FIRED, fired_at=now)
        .returning(Firing.id, Firing.schedule_id, Firing.member_id, Firing.due_at)
        .execution_options(synchronize_session=False)
    )
    return sorted((Claimed(*row) for row in rows), key=lambda f: f.id)


async def record_missed(session: AsyncSession, firing_id: int, note: str) -> None:
    """A claimed firing that sent nothing: `missed`, with why."""
    await session.execute(
        update(Firing)
        .where(Firing.id == firing_id)
        .values(status=FiringStatus.MISSED, note=note)
        .execution_options(synchronize_session=False)
    )


async def set_enqueued(session: AsyncSession, counts: dict[int, int]) -> None:
    # One UPDATE per distinct count, not per firing: a batch's firings mostly share it.
    by_count: dict[int, list[int]] = defaultdict(list)
    for firing_id, count in counts.items():
        by_count[count].append(firing_id)
    for count, firing_ids in by_count.items():
        await session.execute(
            update(Firing)
            .where(Firing.id.in_(firing_ids))
            .values(enqueued=count)
            .execution_options(synchronize_session=False)
        )


@dataclass(frozen=True, slots=True)
class _Send:
    """One target's message, checked against its channel's limits: the same for every
    firing in the transaction with the same script, target and cohort."""

    label: str
    channel: str
    target: str
    payload: dict[str, object]


class _Plan(NamedTuple):
    """What firing needs of a schedule: its columns, cheaper to load than ORM objects."""

    id: int
    script_key: str
    cohort_id: int | None
    target: dict[str, Any]


# script, target (its repr: equal for equal JSON, else only a cache miss), cohort, member
_SendsKey = tuple[str, str, int | None, int | None]


@dataclass
class Batch:
    """What the firings of one transaction share: their rows loaded once, and the
    resolved, rendered and checked messages cached (valid in this transaction only)."""

    session: AsyncSession
    now: datetime
    default_tz: str
    extensions: Extensions
    plans: dict[int, _Plan] = field(default_factory=dict)
    scripts: dict[str, Script] = field(default_factory=dict)
    cohorts: dict[int, Cohort] = field(default_factory=dict)
    _sends: dict[_SendsKey, list[_Send]] = field(default_factory=dict)
    _messages: dict[tuple[str, RenderContext], OutMessage] = field(default_factory=dict)

    async def load(self, firings: Iterable[Claimed]) -> None:
        ids = {f.schedule_id for f in firings}
        plans = await self.session.execute(
            select(Schedule.id, Schedule.script_key, Schedule.cohort_id, Schedule.target).where(
                Schedule.id.in_(ids)
            )
        )
        self.plans = {row.id: _Plan(*row) for row in plans}
        keys = {p.script_key for p in self.plans.values()}
        scripts = await self.session.execute(select(Script).where(Script.key.in_(keys)))
        self.scripts = {s.key: s for s in scripts.scalars()}
        cohort_ids = {p.cohort_id for p in self.plans.values() if p.cohort_id}
        cohorts = await self.session.execute(select(Cohort).where(Cohort.id.in_(cohort_ids)))
        self.cohorts = {c.id: c for c in cohorts.scalars()}

    def _render(self, script: Script, context: RenderContext) -> OutMessage:
        key = (script.key, context)
        if key not in self._messages:
            self._messages[key] = render(script, context)
        return self._messages[key]

    async def _prepare(self, plan: _Plan, script: Script, member_id: int | None) -> list[_Send]:
        cohort = self.cohorts.get(plan.cohort_id) if plan.cohort_id else None
        local_now = self.now.astimezone(cohort_zone(cohort, self.default_tz))
        targets = await resolve(
            session=self.session,
            target=plan.target,
            cohort_id=plan.cohort_id,
            member_id=member_id,
            now=self.now,
            filters=self.extensions.member_filters,
        )
        extra = await provided_variables(
            session=self.session,
            cohort=cohort,
            targets=targets,
            names=variables_used(script),
            now=self.now,
            providers=self.extensions.context_providers.values(),
        )
        sends = []
        for target in targets:
            context = context_for(cohort=cohort, target=target, local_now=local_now)
            context = with_values(context, extra.get(target.label))
            payload = message_payload(target.route, self._render(script, context))
            sends.append(_Send(target.label, target.route.channel, target.route.target, payload))
        return sends

    async def messages(self, firing: Claimed, plan: _Plan, script: Script) -> list[NewMessage]:
        """The firing's outbox rows."""
        key = (script.key, repr(plan.target), plan.cohort_id, firing.member_id)
        if key not in self._sends:
            self._sends[key] = await self._prepare(plan, script, firing.member_id)
        due = due_label(firing.due_at)
        return [
            NewMessage(key_of(plan.id, send.label, due), send.channel, send.target, send.payload)
            for send in self._sends[key]
        ]
