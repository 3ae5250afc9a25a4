"""喜报 in the console: record one for a student and send it (to chosen groups or all of the
cohort's), approve students' own reports, watch a broadcast reach its groups (the progress
polls itself with htmx until nothing is pending), the poster and 结营证书; through
`bots.xibao.service` and the API's `AchievementIn`."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from app.admin.cohorts import service as cohorts
from app.admin.groups import service as groups
from app.admin.members import service as members
from app.api.admin.fields import IdPath
from app.console.forms import Refused, form_id, parse, refusals, values
from app.console.models import Role
from app.console.pages import ConsolePages, HomePanel, NavItem
from app.console.route import ConsoleSessionDep, ViewerDep, console_router, session_of, viewer_of
from app.console.templating import fragment, render
from app.deps import RuntimeDep
from bots.xibao import certificate, progress, service
from bots.xibao.api import AchievementIn
from bots.xibao.models import AchievementStatus, Broadcast

router = console_router("/xibao", role=Role.OPERATOR)


async def _page(
    request: Request, session: ConsoleSessionDep, *, status: int = 200, **extra: Any
) -> Response:
    active = await groups.list_groups(
        session=session, cohort_id=None, channel=None, status="active", limit=200, offset=0
    )
    context = {
        "pending": await progress.listing(
            session=session, status=AchievementStatus.PENDING, cohort_ids=None, limit=50
        ),
        "recent": await progress.listing(session=session, status=None, cohort_ids=None, limit=20),
        "cohorts": await cohorts.cohort_choices(session=session),
        "groups": [(v.group.id, v.group.name or f"群 {v.group.id}") for v in active.items],
        "values": {},
        "errors": {},
        **extra,
    }
    return render(request, "xibao/index.html", context, status=status)


@router.get("")
async def xibao_page(request: Request, session: ConsoleSessionDep) -> Response:
    return await _page(request, session)


@router.post("")
async def create(
    request: Request, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    form = await request.form()
    data = values(form, ("title", "detail"), lists=("group_ids",))
    try:
        with refusals():
            data["member_id"] = await members.find_one(
                session=session,
                who=str(form.get("member") or ""),
                field="member",
                cohort_id=form_id(form.get("cohort_id")),
            )
        body = parse(AchievementIn, {**data, "group_ids": data["group_ids"] or None})
        with refusals():
            _, broadcast = await service.record_achievement(
                session=session,
                actor=viewer.actor,
                now=runtime.clock.now(),
                default_tz=runtime.settings.campbot_timezone,
                routing=runtime.extensions.routing,
                **body.model_dump(),
            )
    except Refused as refused:
        await session.rollback()
        shown = {**data, "member": form.get("member") or "", "cohort_id": form.get("cohort_id")}
        return await _page(
            request, session, status=refused.status, values=shown, errors=refused.problems
        )
    return RedirectResponse(f"/console/xibao/broadcasts/{broadcast.id}", status_code=303)


@router.post("/{achievement_id}/approve")
async def approve(
    achievement_id: IdPath, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    with refusals():
        _, broadcast = await service.approve_achievement(
            session=session,
            achievement_id=achievement_id,
            group_ids=None,
            actor=viewer.actor,
            now=runtime.clock.now(),
            default_tz=runtime.settings.campbot_timezone,
            routing=runtime.extensions.routing,
        )
    return RedirectResponse(f"/console/xibao/broadcasts/{broadcast.id}", status_code=303)


async def _progress(session: ConsoleSessionDep, broadcast_id: int) -> Any:
    with refusals():
        return await progress.progress(session=session, broadcast_id=broadcast_id)


@router.get("/broadcasts/{broadcast_id}")
async def broadcast_page(
    request: Request, broadcast_id: IdPath, session: ConsoleSessionDep
) -> Response:
    found = await _progress(session, broadcast_id)
    broadcast = await session.get(Broadcast, broadcast_id)
    context = {"p": found, "has_poster": broadcast is not None and broadcast.poster is not None}
    return render(request, "xibao/broadcast.html", context)


@router.get("/broadcasts/{broadcast_id}/progress")
async def broadcast_progress(
    request: Request, broadcast_id: IdPath, session: ConsoleSessionDep
) -> Response:
    """The progress fragment; it keeps polling while anything is still on its way."""
    return render(request, "xibao/progress.html", {"p": await _progress(session, broadcast_id)})


@router.get("/broadcasts/{broadcast_id}/poster.png")
async def poster(broadcast_id: IdPath, session: ConsoleSessionDep) -> Response:
    broadcast = await session.get(Broadcast, broadcast_id)
    if broadcast is None or broadcast.poster is None:
        reason = broadcast.poster_missing if broadcast else None
        raise Refused({"": f"这条喜报没有海报：{reason or '未生成'}"}, 404)
    return Response(broadcast.poster, media_type="image/png")


@router.get("/certificates/{member_id}.png")
async def certificate_png(
    member_id: IdPath, session: ConsoleSessionDep, runtime: RuntimeDep
) -> Response:
    with refusals():
        png = await certificate.certificate_png(
            session=session, member_id=member_id, cohort_id=None, now=runtime.clock.now()
        )
    return Response(png, media_type="image/png")


async def pending_panel(request: Request) -> str:
    """今日: students' reports waiting for approval."""
    waiting = await progress.listing(
        session=session_of(request),
        status=AchievementStatus.PENDING,
        cohort_ids=viewer_of(request).cohort_ids,
        limit=20,
    )
    return fragment(request, "xibao/panel.html", {"pending": waiting})


PAGES = ConsolePages(
    "xibao",
    router,
    nav=(NavItem("喜报", "/console/xibao", Role.OPERATOR, 50),),
    home_panels=(HomePanel("xibao", pending_panel, Role.OPERATOR, 30),),
    templates="bots.xibao",
)
