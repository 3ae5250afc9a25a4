"""A group's page in the console: fix its robot key, chat, owner or status (the usual cure of
a dead message before 重试); through `app.admin.groups.service` and the API's models."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from app.admin.cohorts.console import CHANNELS
from app.admin.groups import service
from app.admin.groups.api import GroupUpdate
from app.api.admin.fields import IdPath
from app.console.forms import Refused, parse, refusals, values
from app.console.models import Role
from app.console.pages import ConsolePages
from app.console.route import ConsoleSessionDep, ViewerDep, console_router
from app.console.templating import render
from app.deps import RuntimeDep
from app.models import GroupStatus

router = console_router("/groups", role=Role.OPERATOR)
FIELDS = ("name", "channel", "robot_key", "chat_id", "owner_userid", "status")
STATUSES = [
    (GroupStatus.ACTIVE.value, "正常"),
    (GroupStatus.DISMISSED.value, "已解散（不再推送）"),
]


async def _page(
    request: Request, view: service.GroupView, *, status: int = 200, **extra: Any
) -> Response:
    group = view.group
    context = {
        "view": view,
        "values": {k: getattr(group, k) for k in FIELDS},
        "errors": {},
        "channels": CHANNELS,
        "statuses": STATUSES,
        **extra,
    }
    return render(request, "groups/group.html", context, status=status)


@router.get("/{group_id}")
async def group_page(request: Request, group_id: IdPath, session: ConsoleSessionDep) -> Response:
    with refusals():
        view = await service.get_group(session=session, group_id=group_id)
    return await _page(request, view)


@router.post("/{group_id}")
async def update_group(
    request: Request,
    group_id: IdPath,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
) -> Response:
    data = values(await request.form(), FIELDS)
    # An emptied field clears it, as `null` does in the API.
    for name in ("robot_key", "chat_id", "owner_userid"):
        if name in data and not data[name].strip():
            data[name] = None
    try:
        body = parse(GroupUpdate, data)
        with refusals():
            view = await service.update_group(
                session=session,
                actor=viewer.actor,
                now=runtime.clock.now(),
                group_id=group_id,
                changes=body.model_dump(exclude_unset=True),
            )
    except Refused as refused:
        await session.rollback()
        with refusals():
            view = await service.get_group(session=session, group_id=group_id)
        return await _page(
            request, view, status=refused.status, values=data, errors=refused.problems
        )
    target = f"/console/cohorts/{view.cohort_id}/groups" if view.cohort_id else "/console/cohorts"
    return RedirectResponse(target, status_code=303)


PAGES = ConsolePages("groups", router, templates="app.admin.groups")
