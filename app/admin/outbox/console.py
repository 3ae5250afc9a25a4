"""发送记录 in the console: the outbox filtered by status, channel, cohort and target, each
failure with its Chinese hint; 重试 a dead message, 取消 a pending one (in place, with htmx);
mass sends waiting for their sender's confirmation; the 今日 panel of failures. Through
`app.admin.outbox.service`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse

from app.admin.cohorts import service as cohorts
from app.admin.outbox import service
from app.api.admin.fields import INT32_MAX, PRINTABLE, BigIdPath
from app.console.forms import refusals
from app.console.labels import label
from app.console.models import Role
from app.console.pages import ConsolePages, HomePanel, NavItem
from app.console.route import ConsoleSessionDep, ViewerDep, console_router, session_of
from app.console.templating import fragment, pager, render
from app.deps import RuntimeDep
from app.models import OutboxStatus

router = console_router("/outbox", role=Role.OPERATOR)
PAGE_SIZE = 50
CHANNELS = (
    "robot",
    "appchat",
    "customer_group",
    "customer_single",
    "staff",
    "app_message",
    "welcome",
    "passive_reply",
    "mark_tag",
)
Text = Annotated[str, Query(max_length=200, pattern=PRINTABLE)]


@router.get("")
async def outbox_page(
    request: Request,
    session: ConsoleSessionDep,
    status: Annotated[OutboxStatus | None, Query()] = None,
    channel: Annotated[str, Query(max_length=32, pattern=PRINTABLE)] = "",
    cohort_id: Annotated[int | None, Query(ge=1, le=INT32_MAX)] = None,
    target: Text = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    targets = None if cohort_id is None else service.cohort_targets(cohort_id=cohort_id)
    found = await service.list_outbox(
        session=session,
        status=status,
        channel=channel or None,
        target=target.strip() or None,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
        targets=targets,
    )
    names = await service.target_names(
        session=session, targets=[v.row.target for v in found.items]
    )
    query = {
        "status": status or "",
        "channel": channel,
        "cohort_id": cohort_id or "",
        "target": target,
    }
    context = {
        "rows": found.items,
        "names": names,
        "filters": query,
        "statuses": [(s.value, label(s.value)) for s in OutboxStatus],
        "channels": [(c, label(c)) for c in CHANNELS],
        "cohorts": await cohorts.cohort_choices(session=session),
        "awaiting": await service.awaiting_confirmation(session=session, limit=50),
        **pager(number=page, total=found.total, size=PAGE_SIZE, query=query),
    }
    return render(request, "outbox/index.html", context)


async def _acted(
    request: Request, session: ConsoleSessionDep, view: service.OutboxView
) -> Response:
    if not request.headers.get("hx-request"):
        return RedirectResponse("/console/outbox", status_code=303)
    names = await service.target_names(session=session, targets=[view.row.target])
    return render(request, "outbox/row.html", {"view": view, "names": names, "just": True})


@router.post("/{outbox_id}/retry")
async def retry(
    request: Request,
    outbox_id: BigIdPath,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
) -> Response:
    with refusals():
        view = await service.retry(
            session=session, actor=viewer.actor, now=runtime.clock.now(), outbox_id=outbox_id
        )
    return await _acted(request, session, view)


@router.post("/{outbox_id}/cancel")
async def cancel(
    request: Request,
    outbox_id: BigIdPath,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
) -> Response:
    with refusals():
        view = await service.cancel(
            session=session, actor=viewer.actor, now=runtime.clock.now(), outbox_id=outbox_id
        )
    return await _acted(request, session, view)


async def failures_panel(request: Request) -> str:
    """今日: messages that could not be sent, with why."""
    session = session_of(request)
    dead = await service.list_outbox(
        session=session, status=OutboxStatus.DEAD, channel=None, target=None, limit=5, offset=0
    )
    names = await service.target_names(session=session, targets=[v.row.target for v in dead.items])
    counts = await service.count_by_status(session=session, statuses=[OutboxStatus.PENDING])
    context = {"dead": dead, "names": names, "pending": counts.get(OutboxStatus.PENDING, 0)}
    return fragment(request, "outbox/panel.html", context)


PAGES = ConsolePages(
    "outbox",
    router,
    nav=(NavItem("发送记录", "/console/outbox", Role.OPERATOR, 80),),
    home_panels=(HomePanel("outbox", failures_panel, Role.OPERATOR, 50),),
    templates="app.admin.outbox",
)
