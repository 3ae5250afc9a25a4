"""数据 in the console: a cohort's daily check-in chart and table, its summary (全勤, 上岸),
drop-off, streaks, each group and assistant, 活动参与率, and the CSV; through
`bots.stats.service` and the API's own CSV and chart. Assistants see their own cohorts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Query, Request, Response

from app.admin.cohorts import service as cohorts
from app.admin.groups import service as groups
from app.api.admin.fields import INT32_MAX, IdPath
from app.console.accounts import list_accounts
from app.console.forms import refusals
from app.console.models import Role
from app.console.pages import ConsolePages, NavItem
from app.console.route import ConsoleSessionDep, ViewerDep, console_router, require_cohort
from app.console.templating import render
from app.deps import RuntimeDep
from bots.checkin.models import EntryKind
from bots.stats import service
from bots.stats.api import chart_response, csv_response, summary_of

router = console_router("/stats", role=Role.ASSISTANT)
CohortParam = Annotated[int | None, Query(ge=1, le=INT32_MAX)]
T = TypeVar("T")


async def _figures(
    compute: Callable[..., Awaitable[T]],
    viewer: ViewerDep,
    cohort_id: int,
    session: ConsoleSessionDep,
    runtime: RuntimeDep,
) -> T:
    """`compute(session=, cohort_id=, now=)` for a cohort the viewer may see; the service's
    refusals become the console's."""
    require_cohort(viewer, cohort_id)
    with refusals():
        return await compute(session=session, cohort_id=cohort_id, now=runtime.clock.now())


@router.get("")
async def stats_page(
    request: Request,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
    cohort_id: CohortParam = None,
) -> Response:
    choices = await cohorts.cohort_choices(session=session, ids=viewer.cohort_ids)
    chosen = cohort_id or (choices[0][0] if choices else None)
    # The day table and the summary's counts; the groups, assistants, drop-off and streaks
    # are fetched by the page as fragments (`/slices`, `/shape`), each its own request.
    stats = (
        await _figures(service.daily_stats, viewer, chosen, session, runtime)
        if chosen is not None
        else None
    )
    context = {
        "cohorts": choices,
        "cohort": stats.calendar.cohort if stats else None,
        "stats": stats,
        "summary": summary_of(stats) if stats else None,
        "group_choices": await _group_choices(session, chosen),
    }
    return render(request, "stats/index.html", context)


async def _group_choices(session: ConsoleSessionDep, cohort_id: int | None) -> list[Any]:
    if cohort_id is None:
        return []
    page = await groups.list_groups(
        session=session, cohort_id=cohort_id, channel=None, status=None, limit=200, offset=0
    )
    return [(v.group.id, v.group.name or f"群 {v.group.id}") for v in page.items]


@router.get("/{cohort_id}/slices")
async def slices(
    request: Request,
    cohort_id: IdPath,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
) -> Response:
    """Each group's and each assistant's figures (an htmx fragment)."""
    found = await _figures(service.slice_stats, viewer, cohort_id, session, runtime)
    names = {
        v.account.wecom_userid: v.account.display_name
        for v in await list_accounts(session=session)
        if v.account.wecom_userid
    }
    context = {"slices": found, "assistant_names": names, "cohort_id": cohort_id}
    return render(request, "stats/slices.html", context)


@router.get("/{cohort_id}/shape")
async def shape(
    request: Request,
    cohort_id: IdPath,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
) -> Response:
    """The drop-off and the streaks (an htmx fragment)."""
    found = await _figures(service.shape_stats, viewer, cohort_id, session, runtime)
    return render(request, "stats/shape.html", {"shape": found})


@router.get("/{cohort_id}.csv")
async def stats_csv(
    cohort_id: IdPath, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    calendar, days = await _figures(service.camp_days, viewer, cohort_id, session, runtime)
    return csv_response(calendar.cohort, days)


@router.get("/{cohort_id}/chart.svg")
async def chart(
    cohort_id: IdPath, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    calendar, days = await _figures(service.camp_days, viewer, cohort_id, session, runtime)
    return chart_response(calendar.cohort, days)


@router.get("/{cohort_id}/participation")
async def participation(
    request: Request,
    cohort_id: IdPath,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
    day: Annotated[int, Query(ge=0, le=366)] = 1,
    kind: EntryKind = EntryKind.CHECKIN,
    group_id: CohortParam = None,
) -> Response:
    """活动参与率 of one day's check-in or homework (an htmx fragment)."""
    require_cohort(viewer, cohort_id)
    with refusals():
        result = await service.participation(
            session=session,
            cohort_id=cohort_id,
            day=day,
            kind=kind,
            group_id=group_id,
            now=runtime.clock.now(),
        )
    return render(request, "stats/participation.html", {"result": result})


PAGES = ConsolePages(
    "stats",
    router,
    nav=(NavItem("数据", "/console/stats", Role.ASSISTANT, 70, cohort_tab=True),),
    templates="bots.stats",
)
