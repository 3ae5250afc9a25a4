"""What a firing sends to each of its targets: the variables the script sees there, the
rendered message and the outbox row's key; and `FiringBatch`, what the firings of one
transaction share (schedules, scripts and cohorts loaded once; targets resolved once per
distinct target and cohort; a script rendered once per distinct context).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Cohort
from app.capability import Extensions
from app.channels.messages import OutMessage
from app.channels.reach import message_payload
from app.outbox import NewMessage
from schedules.context import provided_variables
from schedules.models import Schedule
from schedules.planner import cohort_zone
from schedules.targets import Target, resolve
from scripts_library.models import Script
from scripts_library.render import render, variables_used
from scripts_library.variables import RenderContext, zh_date, zh_weekday


def due_label(due_at: datetime) -> str:
    return due_at.strftime("%Y%m%dT%H%M%SZ")


def row_key(schedule_id: int, label: str, due: str) -> str:
    return f"schedule:{schedule_id}:{label}:{due}"


def outbox_key(schedule_id: int, target: Target, due_at: datetime) -> str:
    return row_key(schedule_id, target.label, due_label(due_at))


def context_for(*, cohort: Cohort | None, target: Target, local_now: datetime) -> RenderContext:
    """The variables a scheduled script sees for one target."""
    fields: dict[str, object] = {
        "date": zh_date(local_now.date()),
        "weekday": zh_weekday(local_now.date()),
    }
    if cohort is not None:
        fields.update(
            cohort_name=cohort.name,
            camp_name=cohort.camp,
            total_days=cohort.days,
            day=(local_now.date() - cohort.start_date).days,
        )
    if target.group is not None:
        fields["group_name"] = target.group.name or ""
    if target.member is not None:
        fields["student_name"] = target.member.name or "同学"
    return RenderContext(**fields)  # type: ignore[arg-type]


def with_values(context: RenderContext, values: dict[str, object] | None) -> RenderContext:
    """`context` with a provider's values (schedules.context) laid over it."""
    return replace(context, **values) if values else context  # type: ignore[arg-type]


class Claimed(NamedTuple):
    """A firing claimed for firing: what its rows need of it."""

    id: int
    schedule_id: int
    member_id: int | None
    due_at: datetime


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
class FiringBatch:
    """What the firings of one transaction share: their rows loaded once, and the
    resolved, rendered and checked messages cached (valid in this transaction only)."""

    session: AsyncSession
    now: datetime
    default_tz: str
    extensions: Extensions  # the capabilities' member filters and context providers
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
            payload = message_payload(target.destination, self._render(script, context))
            sends.append(
                _Send(target.label, target.destination.channel, target.destination.target, payload)
            )
        return sends

    async def messages(self, firing: Claimed, plan: _Plan, script: Script) -> list[NewMessage]:
        """The firing's outbox rows."""
        key = (script.key, repr(plan.target), plan.cohort_id, firing.member_id)
        if key not in self._sends:
            self._sends[key] = await self._prepare(plan, script, firing.member_id)
        due = due_label(firing.due_at)
        return [
            NewMessage(row_key(plan.id, send.label, due), send.channel, send.target, send.payload)
            for send in self._sends[key]
        ]
