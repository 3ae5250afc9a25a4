"""Script jobs: scripts whose firing is more than one text rendered per target.

A capability registers a job for a script key (the check-in reminder, which reaches each
person by their own channel with their own link; the daily leaderboard, which needs the
day's ranks). When a firing's script has a job, the runner calls it in the firing's
transaction instead of rendering the script per target; the job writes its own outbox
rows under keys of its own (one per person or group per day), so a double firing sends
nothing twice. Schedules stay where operators set them: the job only replaces how the
firing's messages are made.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

# (session, cohort_id, now) → outbox rows written.
ScriptJob = Callable[[AsyncSession, int, datetime], Awaitable[int]]

_JOBS: dict[str, ScriptJob] = {}


def script_job(script_key: str) -> Callable[[ScriptJob], ScriptJob]:
    def register(job: ScriptJob) -> ScriptJob:
        _JOBS[script_key] = job
        return job

    return register


def job_for(script_key: str, cohort_id: int | None) -> ScriptJob | None:
    """The job of this script, for a cohort's schedule (jobs work per cohort)."""
    return _JOBS.get(script_key) if cohort_id is not None else None
