"""What a firing sends to each of its targets: the variables the script sees there, the
rendered message and the outbox row's key; and `FiringBatch`, what the firings of one
transaction share (schedules, scripts and cohorts loaded once; targets resolved once per
distinct target and cohort; a script rendered once per distinct context).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Cohort
from app.capability import Extensions
from app.channels.messages import OutMessage
from app.channels.reach import Channel, Destination, message_payload
from app.channels.routing import (
    Routing,
    StudentPush,
    is_personal,
    route_group,
    route_students,
)
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
    firing in the transaction with the same script, target and cohort. Routing (a customer
    group's 群发 or 群SOP, merged 群发 to students) happens per firing (`FiringBatch.messages`):
    it spends quota."""

    label: str
    target: Target
    message: OutMessage
    payload: dict[str, object]  # for `target.destination` (built once: images are base64)


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
            message = self._render(script, with_values(context, extra.get(target.label)))
            # Refused here if over the limits; kept for the rows that go where it was built for.
            payload = message_payload(target.destination, message, title=script.title)
            sends.append(_Send(target.label, target, message, payload))
        return sends

    async def messages(self, firing: Claimed, plan: _Plan, script: Script) -> list[NewMessage]:
        """The firing's outbox rows, routed (`app.channels.routing`)."""
        key = (script.key, repr(plan.target), plan.cohort_id, firing.member_id)
        if key not in self._sends:
            self._sends[key] = await self._prepare(plan, script, firing.member_id)
        due = due_label(firing.due_at)
        cohort = self.cohorts.get(plan.cohort_id) if plan.cohort_id else None
        route = RoutePush(
            session=self.session,
            routing=self.extensions.routing,
            script=script,
            now=self.now,
            tz=cohort.timezone if cohort else None,
            key_of=lambda label: row_key(plan.id, label, due),
        )
        return await route.rows(self._sends[key])


@dataclass(frozen=True, slots=True)
class RoutePush:
    """Routing one firing's sends into rows (`app.channels.routing`)."""

    session: AsyncSession
    routing: Routing
    script: Script
    now: datetime
    tz: str | None
    key_of: Callable[[str], str]

    def _row(
        self, label: str, destination: Destination, message: OutMessage, **extra: object
    ) -> NewMessage:
        payload = message_payload(destination, message, title=self.script.title)
        return NewMessage(
            self.key_of(label), destination.channel, destination.target, {**payload, **extra}
        )

    async def rows(self, sends: list[_Send]) -> list[NewMessage]:
        rows: list[NewMessage] = []
        students: list[StudentPush] = []
        for send in sends:
            destination = send.target.destination
            if destination.channel == Channel.CUSTOMER_SINGLE and send.target.member:
                students.append(StudentPush(send.target.member, send.message))
                continue
            if destination.channel == Channel.CUSTOMER_GROUP and send.target.group:
                destination = await route_group(
                    session=self.session,
                    group=send.target.group,
                    destination=destination,
                    delivery=self.script.group_delivery,
                    routing=self.routing,
                    key=self.key_of(send.label),
                    now=self.now,
                    tz=self.tz,
                )
            if destination is send.target.destination:  # routed where it was built for
                key = self.key_of(send.label)
                rows.append(
                    NewMessage(key, destination.channel, destination.target, {**send.payload})
                )
                continue
            rows.append(self._row(send.label, destination, send.message))
        if students:
            routed = await route_students(
                session=self.session,
                pushes=students,
                delivery=self.script.group_delivery,
                personal=is_personal(variables_used(self.script)),
                routing=self.routing,
                key_of=self.key_of,
                now=self.now,
                tz=self.tz,
            )
            rows += [
                self._row(r.label, r.destination, r.message, **r.payload_extra()) for r in routed
            ]
        return rows
