"""期次 in the console: the list, create, the cohort's page (edit, its channel State), its
groups; through `app.admin.cohorts.service` and the API's input models. Assistants see and
open only their own cohorts; creating and editing is the operators'."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from starlette.routing import NoMatchFound

from app.admin.cohorts import service
from app.admin.cohorts.api import CohortCreate, CohortUpdate
from app.admin.common import get_or_404
from app.admin.groups import service as groups
from app.admin.groups.api import GroupCreate
from app.admin.models import Cohort
from app.api.admin.fields import IdPath
from app.console.forms import Refused, parse, refusals, values
from app.console.models import Role
from app.console.pages import ConsolePages, HomePanel, NavItem
from app.console.route import (
    OPERATOR,
    ConsoleSessionDep,
    ViewerDep,
    console_router,
    require_cohort,
    session_of,
    viewer_of,
)
from app.console.templating import fragment, render
from app.deps import RuntimeDep, get_runtime
from app.models import GroupChannel

router = console_router("/cohorts", role=Role.ASSISTANT)
COHORT_FIELDS = ("name", "camp", "start_date", "days", "channel_state", "timezone")
GROUP_FIELDS = ("name", "channel", "robot_key", "chat_id", "owner_userid")
CHANNELS = [
    (GroupChannel.ROBOT.value, "群机器人（内部群）"),
    (GroupChannel.APPCHAT.value, "应用群聊（内部群）"),
    (GroupChannel.CUSTOMER.value, "客户群（群主确认群发）"),
]


async def _view(session: ConsoleSessionDep, viewer: ViewerDep, cohort_id: int) -> Any:
    require_cohort(viewer, cohort_id)
    with refusals():
        return await service.get_cohort(session=session, cohort_id=cohort_id)


@router.get("")
async def cohort_list(
    request: Request, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    page = await service.list_cohorts(
        session=session, camp=None, limit=200, offset=0, ids=viewer.cohort_ids
    )
    now = runtime.clock.now()
    rows = [(v, service.camp_day(v.cohort, now)) for v in page.items]
    return render(request, "cohorts/list.html", {"rows": rows, "total": page.total})


@router.get("/new", dependencies=OPERATOR)
async def new_cohort(request: Request) -> Response:
    return render(request, "cohorts/new.html", {"values": {}, "errors": {}})


@router.post("", dependencies=OPERATOR)
async def create_cohort(
    request: Request, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    data = values(await request.form(), COHORT_FIELDS, optional=("timezone",))
    try:
        body = parse(CohortCreate, data)
        with refusals():
            view = await service.create_cohort(
                session=session,
                actor=viewer.actor,
                now=runtime.clock.now(),
                hooks=runtime.extensions.cohort_hooks.values(),
                **{**body.model_dump(), "timezone": body.timezone or _tz(runtime)},
            )
    except Refused as refused:
        context = {"values": data, "errors": refused.problems}
        return render(request, "cohorts/new.html", context, status=refused.status)
    return RedirectResponse(f"/console/cohorts/{view.cohort.id}/groups", status_code=303)


def _tz(runtime: RuntimeDep) -> str:
    return runtime.settings.campbot_timezone


def _preview_url(request: Request, cohort_id: int) -> str | None:
    """Where the start-date move is previewed, if a capability offers it (the timetable)."""
    try:
        return str(request.app.url_path_for("replan-preview", cohort_id=str(cohort_id)))
    except NoMatchFound:
        return None


async def _cohort_page(
    request: Request, view: Any, runtime: RuntimeDep, *, status: int = 200, **extra: Any
) -> Response:
    cohort = view.cohort
    context = {
        "view": view,
        "cohort": cohort,
        "day": service.camp_day(cohort, runtime.clock.now()),
        "values": {k: getattr(cohort, k) for k in COHORT_FIELDS},
        "errors": {},
        "preview_url": _preview_url(request, cohort.id),
        "saved": request.query_params.get("saved") == "1",
        **extra,
    }
    return render(request, "cohorts/cohort.html", context, status=status)


@router.get("/{cohort_id}")
async def cohort_page(
    request: Request,
    cohort_id: IdPath,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
) -> Response:
    return await _cohort_page(request, await _view(session, viewer, cohort_id), runtime)


@router.post("/{cohort_id}", dependencies=OPERATOR)
async def update_cohort(
    request: Request,
    cohort_id: IdPath,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
) -> Response:
    data = values(await request.form(), COHORT_FIELDS)
    try:
        body = parse(CohortUpdate, data)
        with refusals():
            await service.update_cohort(
                session=session,
                actor=viewer.actor,
                now=runtime.clock.now(),
                cohort_id=cohort_id,
                changes=body.model_dump(exclude_unset=True),
                hooks=runtime.extensions.cohort_hooks.values(),
            )
    except Refused as refused:
        await session.rollback()
        view = await _view(session, viewer, cohort_id)
        return await _cohort_page(
            request, view, runtime, status=refused.status, values=data, errors=refused.problems
        )
    return RedirectResponse(f"/console/cohorts/{cohort_id}?saved=1", status_code=303)


async def _groups_page(
    request: Request, session: ConsoleSessionDep, view: Any, *, status: int = 200, **extra: Any
) -> Response:
    page = await groups.list_groups(
        session=session, cohort_id=view.cohort.id, channel=None, status=None, limit=200, offset=0
    )
    context = {
        "cohort": view.cohort,
        "groups": page.items,
        "channels": CHANNELS,
        "values": {"channel": GroupChannel.ROBOT.value},
        "errors": {},
        **extra,
    }
    return render(request, "cohorts/groups.html", context, status=status)


@router.get("/{cohort_id}/groups")
async def group_list(
    request: Request, cohort_id: IdPath, session: ConsoleSessionDep, viewer: ViewerDep
) -> Response:
    return await _groups_page(request, session, await _view(session, viewer, cohort_id))


@router.post("/{cohort_id}/groups", dependencies=OPERATOR)
async def add_group(
    request: Request,
    cohort_id: IdPath,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
) -> Response:
    require_cohort(viewer, cohort_id)
    with refusals():  # 404 before the form is read; the counts are not shown
        await get_or_404(Cohort, cohort_id, session=session, what=service.WHAT)
    data = values(
        await request.form(), GROUP_FIELDS, optional=("robot_key", "chat_id", "owner_userid")
    )
    try:
        body = parse(GroupCreate, {**data, "cohort_id": cohort_id})
        with refusals():
            await groups.create_group(
                session=session, actor=viewer.actor, now=runtime.clock.now(), **body.model_dump()
            )
    except Refused as refused:
        await session.rollback()
        view = await _view(session, viewer, cohort_id)
        return await _groups_page(
            request, session, view, status=refused.status, values=data, errors=refused.problems
        )
    return RedirectResponse(f"/console/cohorts/{cohort_id}/groups", status_code=303)


async def running_cohorts_panel(request: Request) -> str:
    """今日: each running cohort and its camp day."""
    viewer, session, runtime = viewer_of(request), session_of(request), get_runtime(request)
    page = await service.list_cohorts(
        session=session, camp=None, limit=200, offset=0, ids=viewer.cohort_ids
    )
    now = runtime.clock.now()
    running = [
        (v, day)
        for v in page.items
        if -3 <= (day := service.camp_day(v.cohort, now)) <= v.cohort.days
    ]
    return fragment(request, "cohorts/panel.html", {"running": running})


PAGES = ConsolePages(
    "cohorts",
    router,
    nav=(NavItem("期次", "/console/cohorts", Role.ASSISTANT, 10),),
    home_panels=(HomePanel("cohorts", running_cohorts_panel, Role.ASSISTANT, 0),),
    templates="app.admin.cohorts",
)
