"""Context providers: variables a scheduled script uses that only a capability knows.

The runner fills what a schedule knows (the cohort, the day, the group's or member's
name). A student's streak, points, rank and personal link, or a group's leaderboard, live
with the check-in capability, which registers a provider here (schedules never import
bots). The runner asks providers only for the variables the script actually uses, so a
plain daily push costs no extra query.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Cohort
from schedules.targets import Target


@dataclass(frozen=True, slots=True)
class Wanted:
    """What the runner asks a provider for: these targets' values of `names`."""

    session: AsyncSession
    cohort: Cohort
    targets: Sequence[Target]
    names: frozenset[str]
    now: datetime


# → {target label: {variable: value}}; a provider leaves out what it does not know.
Provider = Callable[[Wanted], Awaitable[dict[str, dict[str, object]]]]

_PROVIDERS: dict[str, tuple[frozenset[str], Provider]] = {}


def context_provider(name: str, provides: frozenset[str]) -> Callable[[Provider], Provider]:
    """Register (or replace, by `name`) a provider of the variables `provides`."""

    def register(provider: Provider) -> Provider:
        _PROVIDERS[name] = (provides, provider)
        return provider

    return register


async def provided_variables(
    *,
    session: AsyncSession,
    cohort: Cohort | None,
    targets: Sequence[Target],
    names: frozenset[str],
    now: datetime,
) -> dict[str, dict[str, object]]:
    merged: dict[str, dict[str, object]] = {}
    if cohort is None or not targets:
        return merged
    for provides, provider in _PROVIDERS.values():
        wanted = names & provides
        if not wanted:
            continue
        found = await provider(Wanted(session, cohort, targets, frozenset(wanted), now))
        for label, values in found.items():
            merged.setdefault(label, {}).update(values)
    return merged
