"""数据 in the console: a cohort's daily check-in chart and table, its summary (全勤, 上岸),
drop-off, streaks, each group and assistant, 活动参与率, and the CSV; through
`bots.stats.service` and the API's own CSV and chart. Assistants see their own cohorts."""

from __future__ import annotations

from typing import Annotated, Any

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
from bots.stats.api import csv_response, summary_of
from bots.stats.chart import ChartPoint, checkin_rate_svg

router = console_router("/stats", role=Role.ASSISTANT)
CohortParam = Annotated[int | None, Query(ge=1, le=INT32_MAX)]


async def _stats(
    session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep, cohort_id: int
) -> service.DailyStats:
    """The day table and the summary's counts; the groups, assistants, drop-off and streaks
    are fetched by the page as fragments (`/slices`, `/shape`), each its own request."""
    require_cohort(viewer, cohort_id)
    with refusals():
        return await service.daily_stats(
            session=session, cohort_id=cohort_id, now=runtime.clock.now()
        )


@router.get("")
async def stats_page(
    request: Request,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
    cohort_id: CohortParam = None,
) -> Response:
    page = await cohorts.list_cohorts(
        session=session, camp=None, limit=200, offset=0, ids=viewer.cohort_ids
    )
    chosen = cohort_id or (page.items[0].cohort.id if page.items else None)
    stats = await _stats(session, viewer, runtime, chosen) if chosen is not None else None
    context = {
        "cohorts": [(v.cohort.id, f"{v.cohort.camp} · {v.cohort.name}") for v in page.items],
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
    require_cohort(viewer, cohort_id)
    with refusals():
        found = await service.slice_stats(
            session=session, cohort_id=cohort_id, now=runtime.clock.now()
        )
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
    require_cohort(viewer, cohort_id)
    with refusals():
        found = await service.shape_stats(
            session=session, cohort_id=cohort_id, now=runtime.clock.now()
        )
    return render(request, "stats/shape.html", {"shape": found})


@router.get("/{cohort_id}.csv")
async def stats_csv(
    cohort_id: IdPath, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    require_cohort(viewer, cohort_id)
    with refusals():
        stats = await service.cohort_stats(
            session=session, cohort_id=cohort_id, now=runtime.clock.now()
        )
    return csv_response(stats)


@router.get("/{cohort_id}/chart.svg")
async def chart(
    cohort_id: IdPath, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    stats = await _stats(session, viewer, runtime, cohort_id)
    cohort = stats.calendar.cohort
    svg = checkin_rate_svg(
        title=f"{cohort.name} 每日打卡率",
        total_days=cohort.days,
        points=[ChartPoint(d.day, d.checkin_rate, d.in_progress) for d in stats.days],
    )
    return Response(svg.encode("utf-8"), media_type="image/svg+xml; charset=utf-8")


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
