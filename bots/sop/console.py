"""群SOP in the console: the items staff were told to post and have not (the escalated ones
first, being the oldest), who should post them, and 跳过 for one the group does not need.
An assistant sees their own items (their linked WeCom userid) and their cohorts'; operators
see all. Through `bots.sop.service`, as the sidebar and the admin API."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from app.api.admin.fields import BigIdPath
from app.console.forms import refusals
from app.console.models import Role
from app.console.pages import ConsolePages, HomePanel, NavItem
from app.console.route import (
    ConsoleSessionDep,
    Forbidden,
    ViewerDep,
    console_router,
    session_of,
    viewer_of,
)
from app.console.sessions import Viewer
from app.console.templating import fragment, render
from app.deps import RuntimeDep, get_runtime
from bots.sop import notices, service
from bots.sop.models import SopTask

router = console_router("/sop", role=Role.ASSISTANT)
PAGE_LIMIT = 200
PANEL_LIMIT = 5


def _scope(viewer: Viewer) -> dict[str, Any]:
    """An assistant's items: their own (as the WeCom member linked to the account) and
    their cohorts'; everyone's for the roles that see every cohort."""
    if viewer.cohort_ids is None:
        return {}
    return {"staff_userid": viewer.wecom_userid, "cohort_ids": viewer.cohort_ids}


def _may_act(viewer: Viewer, task: SopTask) -> bool:
    if viewer.cohort_ids is None:
        return True
    mine = viewer.wecom_userid is not None and task.staff_userid == viewer.wecom_userid
    return mine or task.cohort_id in viewer.cohort_ids


async def _listing(request: Request, limit: int) -> dict[str, Any]:
    viewer, session = viewer_of(request), session_of(request)
    now = get_runtime(request).clock.now()
    tasks, total = await service.open_tasks(
        session=session, now=now, limit=limit, **_scope(viewer)
    )
    return {
        "tasks": tasks,
        "total": total,
        "chats": await notices.chat_names(session, tasks),
        "staff": await notices.staff_names(session, (t.staff_userid for t in tasks)),
    }


@router.get("")
async def sop_page(request: Request) -> Response:
    return render(request, "sop/index.html", await _listing(request, PAGE_LIMIT))


@router.post("/{item_id}/skip")
async def skip_item(
    item_id: BigIdPath, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    task = await session.get(SopTask, item_id)
    if task is not None and not _may_act(viewer, task):
        raise Forbidden("这不是你负责的群SOP。")
    with refusals():
        await service.skip(
            session=session,
            item_id=item_id,
            by=f"{viewer.display_name}（后台）",
            now=runtime.clock.now(),
        )
    return RedirectResponse("/console/sop", status_code=303)


async def sop_panel(request: Request) -> str:
    """今日: 群SOP items whose time has come and that nobody has posted yet."""
    return fragment(request, "sop/panel.html", await _listing(request, PANEL_LIMIT))


PAGES = ConsolePages(
    "sop",
    router,
    nav=(NavItem("群SOP", "/console/sop", Role.ASSISTANT, 35),),
    home_panels=(HomePanel("sop", sop_panel, Role.ASSISTANT, 15),),
    templates="bots.sop",
)
