"""打卡与作业 in the console: the review queue (images to zoom, score and comment saved in
place with htmx; filters: unreviewed, cohort, group, assistant, day), the submissions'
images, a cohort's check-in rules, and the 今日 figures; through `bots.checkin.service`
and the API's models. Assistants review their own cohorts only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query, Request, Response
from fastapi.responses import RedirectResponse

from app.admin.cohorts import service as cohorts
from app.admin.groups import service as groups
from app.api.admin.fields import INT32_MAX, PRINTABLE, IdPath
from app.api.h5.deps import StorageDep
from app.console.accounts import list_accounts
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
from app.storage import content_type_of
from bots.checkin import service
from bots.checkin.api import CheckinRulesIn, ReviewIn, rules_changes
from bots.checkin.models import EntryKind
from bots.checkin.rules import as_json

router = console_router("/checkins", role=Role.ASSISTANT)
PAGE_SIZE = 20
Id = Annotated[int | None, Query(ge=1, le=INT32_MAX)]
RULE_FIELDS = (
    "day_boundary",
    "makeup_days",
    "makeup_cost",
    "leave_limit",
    "checkin_points",
    "homework_points",
    "full_attendance_points",
)


async def _assistants(session: ConsoleSessionDep) -> list[tuple[str, str]]:
    return [
        (v.account.wecom_userid, v.account.display_name)
        for v in await list_accounts(session=session)
        if v.account.wecom_userid and v.account.role == Role.ASSISTANT
    ]


@router.get("")
async def review_queue(
    request: Request,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    cohort_id: Id = None,
    group_id: Id = None,
    staff: Annotated[str, Query(max_length=128, pattern=PRINTABLE)] = "",
    day: Annotated[int | None, Query(ge=0, le=366)] = None,
    kind: EntryKind = EntryKind.HOMEWORK,
    status: Annotated[str, Query(pattern="^(unreviewed|reviewed|all)$")] = "unreviewed",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    if cohort_id is not None:
        require_cohort(viewer, cohort_id)
    scope = service.Scope(
        cohort_ids=viewer.cohort_ids, group_id=group_id, staff_userid=staff or None
    )
    found = await service.list_submissions(
        session=session,
        cohort_id=cohort_id,
        day=day,
        kind=kind,
        reviewed={"unreviewed": False, "reviewed": True}.get(status),
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
        scope=scope,
    )
    in_cohort = []
    if cohort_id is not None:
        listed = await groups.list_groups(
            session=session, cohort_id=cohort_id, channel=None, status=None, limit=200, offset=0
        )
        in_cohort = [(v.group.id, v.group.name or f"群 {v.group.id}") for v in listed.items]
    filters = {
        "cohort_id": cohort_id or "",
        "group_id": group_id or "",
        "staff": staff,
        "day": "" if day is None else day,
        "kind": kind.value,
        "status": status,
    }
    context = {
        "items": found.items,
        "total": found.total,
        "filters": filters,
        "cohorts": await cohorts.cohort_choices(session=session, ids=viewer.cohort_ids),
        "groups": in_cohort,
        "assistants": await _assistants(session),
        "page": page,
        "pages": max(1, -(-found.total // PAGE_SIZE)),
        "errors": {},
    }
    return render(request, "checkin/queue.html", context)


async def _submission(
    session: ConsoleSessionDep, viewer: ViewerDep, entry_id: int
) -> service.Submission:
    with refusals():
        item = await service.get_submission(session=session, entry_id=entry_id)
    require_cohort(viewer, item.entry.cohort_id)
    return item


@router.get("/{entry_id}/images/{n}")
async def image(
    entry_id: IdPath,
    n: Annotated[int, Path(ge=0, le=8)],
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    storage: StorageDep,
) -> Response:
    keys = list((await _submission(session, viewer, entry_id)).entry.images or [])
    data = await storage.read(keys[n]) if n < len(keys) else None
    if data is None:
        raise Refused({"": f"打卡记录 {entry_id} 没有第 {n + 1} 张图片。"}, 404)
    headers = {"Cache-Control": "private, max-age=3600"}
    return Response(data, media_type=content_type_of(keys[n]), headers=headers)


@router.post("/{entry_id}/review")
async def review(
    request: Request,
    entry_id: IdPath,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
) -> Response:
    item = await _submission(session, viewer, entry_id)
    data = values(await request.form(), ("score", "comment"), optional=("comment",))
    try:
        body = parse(ReviewIn, data)
        with refusals():
            done = await service.review(
                session=session,
                actor=viewer.actor,
                entry_id=entry_id,
                score=body.score,
                comment=body.comment,
                now=runtime.clock.now(),
                public_base_url=runtime.settings.public_base_url,
            )
    except Refused as refused:
        context = {"item": item, "errors": refused.problems, "values": data}
        return render(request, "checkin/card.html", context, status=refused.status)
    if not request.headers.get("hx-request"):
        return RedirectResponse("/console/checkins", status_code=303)
    context = {"item": done.submission, "errors": {}, "values": {}, "just_saved": True}
    return render(request, "checkin/card.html", context)


def _milestones(text: str) -> dict[str, int]:
    """「3:20, 7:50」→ {"3": 20, "7": 50}; the API's model checks the numbers."""
    found: dict[str, int] = {}
    for part in text.replace("，", ",").replace("：", ":").split(","):
        if not part.strip():
            continue
        day, _, bonus = part.partition(":")
        if not bonus.strip().isdigit():
            raise Refused({"milestones": f"「{part.strip()}」应写成 天数:积分，如 7:50"})
        found[day.strip()] = int(bonus.strip()[:7])
    return found


@router.get("/rules/{cohort_id}", dependencies=OPERATOR)
async def rules_form(
    request: Request, cohort_id: IdPath, session: ConsoleSessionDep, saved: int = 0
) -> Response:
    with refusals():
        cohort = (await cohorts.get_cohort(session=session, cohort_id=cohort_id)).cohort
        rules, customized = await service.rules_in_force(session=session, cohort_id=cohort_id)
    shown = as_json(rules)
    shown["milestones"] = ", ".join(f"{k}:{v}" for k, v in rules.milestone_steps())
    context = {"cohort": cohort, "values": shown, "customized": customized, "errors": {}}
    return render(request, "checkin/rules.html", context | {"saved": bool(saved)})


@router.post("/rules/{cohort_id}", dependencies=OPERATOR)
async def save_rules(
    request: Request,
    cohort_id: IdPath,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
) -> Response:
    form = await request.form()
    data: dict[str, Any] = values(form, RULE_FIELDS)
    try:
        data["milestones"] = _milestones(str(form.get("milestones") or ""))
        body = parse(CheckinRulesIn, data)
        with refusals():
            await service.update_rules(
                session=session,
                cohort_id=cohort_id,
                changes=rules_changes(body),
                actor=viewer.actor,
                now=runtime.clock.now(),
            )
    except Refused as refused:
        await session.rollback()
        with refusals():
            cohort = (await cohorts.get_cohort(session=session, cohort_id=cohort_id)).cohort
        shown = {**data, "milestones": form.get("milestones") or ""}
        context = {"cohort": cohort, "values": shown, "customized": True, "saved": False}
        context["errors"] = refused.problems
        return render(request, "checkin/rules.html", context, status=refused.status)
    return RedirectResponse(f"/console/checkins/rules/{cohort_id}?saved=1", status_code=303)


async def today_panel(request: Request) -> str:
    """今日: per running cohort, check-ins so far vs yesterday, homework waiting."""
    viewer, session, runtime = viewer_of(request), session_of(request), get_runtime(request)
    # The whole Cohort (calendar, days) is wanted here, not just a dropdown's label.
    listed = await cohorts.list_cohorts(
        session=session, camp=None, limit=200, offset=0, ids=viewer.cohort_ids
    )
    running = [
        v.cohort
        for v in listed.items
        if 0 <= cohorts.camp_day(v.cohort, runtime.clock.now()) <= v.cohort.days
    ]
    figures = await service.cohorts_today(
        session=session, cohorts=running, now=runtime.clock.now()
    )
    return fragment(request, "checkin/panel.html", {"figures": figures})


PAGES = ConsolePages(
    "checkin",
    router,
    nav=(NavItem("打卡与作业", "/console/checkins", Role.ASSISTANT, 40, cohort_tab=True),),
    home_panels=(HomePanel("checkin", today_panel, Role.ASSISTANT, 20),),
    templates="bots.checkin",
)
