"""What a capability contributes (`Capability`), and what its consumers receive (`Extensions`).

Each capability (`bots/<name>/__init__.py`) exports one `Capability`; `app.main.CAPABILITIES`
lists them in precedence order and hands each part to its consumer: event routers to the
dispatcher, admin and public routers to the app, script jobs, member filters and context
providers to the scheduler, loops to the app's lifespan, cohort hooks to the cohort and
member services and the handlers that enrol members, console pages to the operators' console
(`app.console.mount`: its routes, menu entries and 今日 panels). Nothing registers itself by
being imported.

A contribution that needs the settings takes them as `settings`: `Extensions.of` binds them
once, so its consumer calls it with only what the consumer knows. The event routers' type is
a parameter (`Capability[Router]`): it is `bots.dispatch.Router`, and `app` imports `bots` only
in the composition root.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from fastapi import APIRouter
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.cohorts.service import CohortChange, CohortHook
from app.admin.models import Cohort
from app.channels.routing import Routing
from app.clock import Clock
from app.console.pages import ConsolePages
from app.models import Group, Member
from app.settings import Settings
from app.wecom.client import WeComClient

R = TypeVar("R")

# --------------------------------------------------------------------------- script jobs


class JobRun(Protocol):
    """A script the scheduler fires by calling this instead of rendering it per target: it
    writes its own outbox rows under keys of its own (`schedules.runner`); the rows written."""

    async def __call__(
        self, *, session: AsyncSession, cohort_id: int, now: datetime, settings: Settings
    ) -> int: ...


@dataclass(frozen=True, slots=True)
class ScriptJob:
    script_key: str
    run: JobRun


# What the scheduler calls: (session, cohort_id, now) → outbox rows written.
BoundJob = Callable[[AsyncSession, int, datetime], Awaitable[int]]

# --------------------------------------------------------------------------- member filters

# (session, query, cohort_id, now): the session lets a filter read what its SQL needs first
# (the check-in filter: the cohort's current camp day, which depends on its time zone).
FilterRun = Callable[[AsyncSession, Select[Member], int, datetime], Awaitable[Select[Member]]]


@dataclass(frozen=True, slots=True)
class MemberFilter:
    """What `{"type": "members", "filter": name}` targets select."""

    name: str
    run: FilterRun


# --------------------------------------------------------------------------- context providers


class Recipient(Protocol):
    """One target of a firing, as a provider sees it (`schedules.targets.Target`)."""

    @property
    def label(self) -> str: ...

    @property
    def group(self) -> Group | None: ...

    @property
    def member(self) -> Member | None: ...


@dataclass(frozen=True, slots=True)
class Wanted:
    """What the scheduler asks a provider for: these targets' values of `names`."""

    session: AsyncSession
    cohort: Cohort
    targets: Sequence[Recipient]
    names: frozenset[str]
    now: datetime


# {target label: {variable: value}}; a provider leaves out what it does not know.
Values = dict[str, dict[str, object]]


class ProvideRun(Protocol):
    async def __call__(self, wanted: Wanted, *, settings: Settings) -> Values: ...


@dataclass(frozen=True, slots=True)
class ContextProvider:
    """Variables a scheduled script may use that only a capability knows (a student's
    streak, a group's leaderboard); asked only for the variables a script uses."""

    name: str
    provides: frozenset[str]
    run: ProvideRun


@dataclass(frozen=True, slots=True)
class BoundProvider:
    provides: frozenset[str]
    run: Callable[[Wanted], Awaitable[Values]]


# --------------------------------------------------------------------------- loops, hooks


class LoopRun(Protocol):
    """A loop that talks to WeCom: it runs where the sender runs, until `stop` is set."""

    async def __call__(
        self,
        stop: asyncio.Event,
        *,
        sessions: async_sessionmaker[AsyncSession],
        wecom: WeComClient,
        clock: Clock,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class BackgroundLoop:
    name: str
    run: LoopRun


class HookRun(Protocol):
    async def __call__(
        self, change: CohortChange, *, session: AsyncSession, settings: Settings
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class CohortListener:
    """A re-plan hook: runs in the transaction of a cohort edit or a member's join or
    leave (`app.admin.cohorts.service`); what it raises rolls the change back."""

    name: str
    run: HookRun


# --------------------------------------------------------------------------- the registration


@dataclass(frozen=True, slots=True)
class Capability(Generic[R]):
    """Everything one capability contributes; empty parts are the default."""

    name: str
    event_routers: tuple[R, ...] = ()
    admin_routers: tuple[APIRouter, ...] = ()  # included under /admin/api
    public_routers: tuple[APIRouter, ...] = ()  # included as they are (the H5 pages)
    script_jobs: tuple[ScriptJob, ...] = ()
    member_filters: tuple[MemberFilter, ...] = ()
    context_providers: tuple[ContextProvider, ...] = ()
    loops: tuple[BackgroundLoop, ...] = ()
    cohort_hooks: tuple[CohortListener, ...] = ()
    console_pages: tuple[ConsolePages, ...] = ()  # its screens in the operators' console


class WiringError(ValueError):
    """Two contributions under one name: the second would silently replace the first."""


def event_routers(capabilities: Iterable[Capability[R]]) -> tuple[R, ...]:
    """The capabilities' event routers, in precedence order."""
    return tuple(router for capability in capabilities for router in capability.event_routers)


@dataclass(frozen=True, slots=True)
class Extensions:
    """What the capabilities' jobs, filters, providers, loops and hooks come to, bound to the
    settings: built once by `app.main` and kept on the Runtime. Empty by default (a
    scheduler or a service tested on its own)."""

    script_jobs: Mapping[str, BoundJob] = field(default_factory=dict)
    member_filters: Mapping[str, FilterRun] = field(default_factory=dict)
    context_providers: Mapping[str, BoundProvider] = field(default_factory=dict)
    loops: Mapping[str, LoopRun] = field(default_factory=dict)
    cohort_hooks: Mapping[str, CohortHook] = field(default_factory=dict)
    # How pushes to customer groups and external students are routed (the 群发 quota rule).
    routing: Routing = field(default_factory=Routing)

    @classmethod
    def of(cls, capabilities: Sequence[Capability[Any]], *, settings: Settings) -> Extensions:
        """The capabilities' parts, in their order; WiringError on a name given twice."""
        _unique("capability", ((c.name, c) for c in capabilities))
        jobs = [j for c in capabilities for j in c.script_jobs]
        filters = [f for c in capabilities for f in c.member_filters]
        providers = [p for c in capabilities for p in c.context_providers]
        loops = [loop for c in capabilities for loop in c.loops]
        hooks = [h for c in capabilities for h in c.cohort_hooks]
        return cls(
            script_jobs=_unique(
                "script job", ((j.script_key, _job(j.run, settings)) for j in jobs)
            ),
            member_filters=_unique("member filter", ((f.name, f.run) for f in filters)),
            context_providers=_unique(
                "context provider",
                (
                    (p.name, BoundProvider(p.provides, _provide(p.run, settings)))
                    for p in providers
                ),
            ),
            loops=_unique("loop", ((loop.name, loop.run) for loop in loops)),
            cohort_hooks=_unique("cohort hook", ((h.name, _hook(h.run, settings)) for h in hooks)),
            routing=Routing.of(settings),
        )

    def job_for(self, script_key: str, cohort_id: int | None) -> BoundJob | None:
        """The job of this script, for a cohort's schedule (jobs work per cohort)."""
        return self.script_jobs.get(script_key) if cohort_id is not None else None


NO_EXTENSIONS = Extensions()

T = TypeVar("T")


def _unique(what: str, named: Iterable[tuple[str, T]]) -> dict[str, T]:
    found: dict[str, T] = {}
    for name, value in named:
        if name in found:
            raise WiringError(f"{what} {name!r} is contributed twice")
        found[name] = value
    return found


def _job(run: JobRun, settings: Settings) -> BoundJob:
    async def bound(session: AsyncSession, cohort_id: int, now: datetime) -> int:
        return await run(session=session, cohort_id=cohort_id, now=now, settings=settings)

    return bound


def _provide(run: ProvideRun, settings: Settings) -> Callable[[Wanted], Awaitable[Values]]:
    async def bound(wanted: Wanted) -> Values:
        return await run(wanted, settings=settings)

    return bound


def _hook(run: HookRun, settings: Settings) -> CohortHook:
    async def bound(change: CohortChange, *, session: AsyncSession) -> None:
        await run(change, session=session, settings=settings)

    return bound
