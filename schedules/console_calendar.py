"""日程's other views: the calendar of the next hours (what, to whom, when, by which channel),
the preview of what moving a cohort re-plans, and the 今日 panel of the day's pushes; through
`schedules.calendar`, `schedules.preview` and `schedules.pushes`.

The calendar shows every field its entries have: one a later change adds (the channel a
customer group's push is routed by, say) appears as a column of its own, named by
`COLUMN_NAMES` or else by its field name.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import Query, Request, Response

from app.admin.cohorts.api import CohortUpdate
from app.admin.cohorts.console import COHORT_FIELDS
from app.admin.outbox.service import target_names
from app.api.admin.fields import IdPath
from app.console.forms import Refused, parse, refusals, values
from app.console.models import Role
from app.console.pages import ConsolePages, HomePanel, NavItem
from app.console.route import ConsoleSessionDep, ViewerDep, console_router, session_of, viewer_of
from app.console.templating import fragment, render
from app.deps import RuntimeDep, get_runtime
from app.quota import local_day
from schedules.calendar import calendar
from schedules.console import describe_target
from schedules.console import router as timetable_router
from schedules.preview import preview_cohort_change
from schedules.pushes import pushes_on

router = console_router("/schedules", role=Role.OPERATOR)
# The fields the page shows by name; others appear as columns of their own.
HIDDEN = frozenset(
    {"firing_id", "schedule_id", "due_at", "targets", "local_time", "script_key", "cohort_id"}
)
COLUMN_NAMES: dict[str, str] = {}


def _channel_and_name(label: str, names: dict[str, str]) -> tuple[str, str]:
    channel, _, target = label.partition(":")
    return channel, names.get(target, target)


@router.get("/calendar")
async def calendar_page(
    request: Request,
    session: ConsoleSessionDep,
    runtime: RuntimeDep,
    hours: Annotated[int, Query(ge=1, le=24 * 31)] = 48,
) -> Response:
    entries = await calendar(
        session=session,
        now=runtime.clock.now(),
        hours=hours,
        default_tz=runtime.settings.campbot_timezone,
        extensions=runtime.extensions,
    )
    labels = [t for e in entries for t in e.targets]
    names = await target_names(session=session, targets=[t.partition(":")[2] for t in labels])
    extra = (
        [f.name for f in dataclasses.fields(entries[0]) if f.name not in HIDDEN] if entries else []
    )
    rows = [
        {
            "entry": e,
            "targets": [_channel_and_name(t, names) for t in e.targets],
            "extra": [(COLUMN_NAMES.get(n, n), getattr(e, n)) for n in extra],
        }
        for e in entries
    ]
    context = {"rows": rows, "hours": hours, "columns": [COLUMN_NAMES.get(n, n) for n in extra]}
    return render(request, "schedules/calendar.html", context)


@router.post("/replan/{cohort_id}", name="replan-preview")
async def replan_preview(
    request: Request,
    cohort_id: IdPath,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
) -> Response:
    """What saving the cohort form now would re-plan (an htmx fragment); nothing is kept."""
    data = values(await request.form(), COHORT_FIELDS)
    try:
        body = parse(CohortUpdate, data)
        with refusals():
            replan = await preview_cohort_change(
                session=session,
                cohort_id=cohort_id,
                changes=body.model_dump(exclude_unset=True),
                now=runtime.clock.now(),
                hooks=runtime.extensions.cohort_hooks.values(),
                actor=viewer.actor,
            )
    except Refused as refused:
        return render(request, "schedules/replan.html", {"problems": refused.problems})
    return render(request, "schedules/replan.html", {"replan": replan, "problems": {}})


async def pushes_panel(request: Request) -> str:
    """今日: the day's pushes, each with its time, channel and state."""
    viewer, session, runtime = viewer_of(request), session_of(request), get_runtime(request)
    tz = runtime.settings.campbot_timezone
    pushes = await pushes_on(
        session=session,
        day=local_day(runtime.clock.now(), tz),
        default_tz=tz,
        cohort_ids=viewer.cohort_ids,
    )
    return fragment(
        request, "schedules/panel.html", {"pushes": pushes, "describe": describe_target}
    )


PAGES = (
    # The calendar's path must match before the timetable's `/{schedule_id}`.
    ConsolePages(
        "schedules_calendar",
        router,
        home_panels=(HomePanel("pushes", pushes_panel, Role.ASSISTANT, 10),),
    ),
    ConsolePages(
        "schedules",
        timetable_router,
        nav=(
            NavItem("日程", "/console/schedules", Role.OPERATOR, 30, cohort_tab=True),
            NavItem("发送日历", "/console/schedules/calendar", Role.OPERATOR, 31),
        ),
        templates="schedules",
    ),
)
