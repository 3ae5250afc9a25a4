"""学员 in the console: a cohort's members (search, tags), each one's personal link with its
QR code, tags and revoking the link; through `app.admin.members.service`. Assistants see
their own cohorts' students; changing tags and links is the operators'."""

from __future__ import annotations

import io
from typing import Annotated, Any

import segno
from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse

from app.admin import h5_tokens
from app.admin.cohorts import service as cohorts
from app.admin.common import get_or_404
from app.admin.members import service
from app.admin.members.api import TagsChange
from app.admin.models import Cohort
from app.api.admin.fields import PRINTABLE, IdPath
from app.console.forms import Refused, parse, refusals
from app.console.models import Role
from app.console.pages import ConsolePages
from app.console.route import (
    OPERATOR,
    ConsoleSessionDep,
    ViewerDep,
    console_router,
    require_cohort,
)
from app.console.templating import pager, render
from app.deps import RuntimeDep

router = console_router("", role=Role.ASSISTANT)
PAGE_SIZE = 50
Search = Annotated[str, Query(max_length=100, pattern=PRINTABLE)]


def _link(runtime: RuntimeDep, view: service.MemberView) -> str:
    return h5_tokens.h5_url(runtime.settings.public_base_url, view.h5_token)


@router.get("/cohorts/{cohort_id}/members")
async def member_list(
    request: Request,
    cohort_id: IdPath,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
    q: Search = "",
    tag: Search = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    require_cohort(viewer, cohort_id)
    with refusals():
        cohort = await get_or_404(Cohort, cohort_id, session=session, what=cohorts.WHAT)
    found = await service.list_members(
        session=session,
        now=runtime.clock.now(),
        cohort_id=cohort_id,
        status=None,
        tag=tag.strip() or None,
        q=q.strip() or None,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    query = {"q": q, "tag": tag}
    context = {
        "cohort": cohort,
        "members": [(v, _link(runtime, v)) for v in found.items],
        "filters": query,
        **pager(number=page, total=found.total, size=PAGE_SIZE, query=query),
    }
    return render(request, "members/list.html", context)


async def _member(
    session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep, member_id: int
) -> service.MemberView:
    with refusals():
        view = await service.get_member(
            session=session, member_id=member_id, now=runtime.clock.now()
        )
    require_cohort(viewer, view.cohort_id)
    return view


async def _member_page(
    request: Request, view: service.MemberView, runtime: RuntimeDep, **extra: Any
) -> Response:
    status = extra.pop("status", 200)
    context = {"view": view, "link": _link(runtime, view), "errors": {}, **extra}
    return render(request, "members/member.html", context, status=status)


@router.get("/members/{member_id}")
async def member_page(
    request: Request,
    member_id: IdPath,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
) -> Response:
    view = await _member(session, viewer, runtime, member_id)
    return await _member_page(request, view, runtime, done=request.query_params.get("done"))


@router.get("/members/{member_id}/qr.svg")
async def member_qr(
    member_id: IdPath, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    """The personal link as a QR code, for a student to scan from the assistant's screen."""
    view = await _member(session, viewer, runtime, member_id)
    buffer = io.BytesIO()
    segno.make(_link(runtime, view), error="m").save(buffer, kind="svg", scale=4, border=2)
    return Response(buffer.getvalue(), media_type="image/svg+xml")


@router.post("/members/{member_id}/tags", dependencies=OPERATOR)
async def change_tags(
    request: Request,
    member_id: IdPath,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
) -> Response:
    view = await _member(session, viewer, runtime, member_id)
    form = await request.form()
    split = {
        name: [t for t in str(form.get(name) or "").replace("，", ",").split(",") if t.strip()]
        for name in ("add", "remove")
    }
    try:
        body = parse(TagsChange, split)
        with refusals():
            await service.change_tags(
                session=session,
                actor=viewer.actor,
                now=runtime.clock.now(),
                member_id=member_id,
                add=body.add,
                remove=body.remove,
            )
    except Refused as refused:
        return await _member_page(
            request, view, runtime, status=refused.status, errors=refused.problems
        )
    return RedirectResponse(f"/console/members/{member_id}?done=tags", status_code=303)


@router.post("/members/{member_id}/revoke-link", dependencies=OPERATOR)
async def revoke_link(
    member_id: IdPath, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    await _member(session, viewer, runtime, member_id)
    await service.revoke_link(
        session=session, actor=viewer.actor, now=runtime.clock.now(), member_id=member_id
    )
    return RedirectResponse(f"/console/members/{member_id}?done=revoked", status_code=303)


PAGES = ConsolePages("members", router, templates="app.admin.members")
