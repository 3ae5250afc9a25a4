"""Context providers: variables a scheduled script uses that only a capability knows.

The runner fills what a schedule knows (the cohort, the day, the group's or member's
name). A student's streak, points, rank and personal link, or a group's leaderboard, live
with the check-in capability, whose providers the caller hands in
(`app.capability.Extensions.context_providers`: schedules never import bots). The runner
asks providers only for the variables the script actually uses, so a plain daily push
costs no extra query.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Cohort
from app.capability import BoundProvider, Values, Wanted
from schedules.targets import Target


async def provided_variables(
    *,
    session: AsyncSession,
    cohort: Cohort | None,
    targets: Sequence[Target],
    names: frozenset[str],
    now: datetime,
    providers: Iterable[BoundProvider],
) -> Values:
    merged: Values = {}
    if cohort is None or not targets:
        return merged
    for provider in providers:
        wanted = names & provider.provides
        if not wanted:
            continue
        found = await provider.run(Wanted(session, cohort, targets, frozenset(wanted), now))
        for label, values in found.items():
            merged.setdefault(label, {}).update(values)
    return merged
