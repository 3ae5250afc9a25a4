"""日程 in the console: a cohort's day-by-day timetable, adding, editing, pausing and 立即发送
a schedule, its firing history; through `schedules.service` and the API's `ScheduleIn`.
The calendar, the re-plan preview and the 今日 pushes are in `schedules.console_calendar`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from app.admin.cohorts import service as cohorts
from app.admin.groups import service as groups
from app.admin.models import Cohort
from app.api.admin.fields import INT32_MAX, IdPath
from app.console.forms import Refused, parse, refusals, values
from app.console.labels import label
from app.console.models import Role
from app.console.route import ConsoleSessionDep, ViewerDep, console_router
from app.console.templating import render
from app.deps import RuntimeDep
from app.wecom.errors import UndeliverableError
from schedules import service
from schedules.api import ScheduleIn, SchedulePatch
from schedules.models import Schedule
from schedules.timetable import timetable
from scripts_library.errors import RenderError
from scripts_library.service import list_scripts

router = console_router("/schedules", role=Role.OPERATOR)
CohortParam = Annotated[int | None, Query(ge=1, le=INT32_MAX)]
HISTORY_SHOWN = 100  # the detail page's firings, the latest
TRIGGERS = [
    ("cohort_day", "开营后第 N 天"),
    ("member_day", "学员入营后第 N 天"),
    ("cron", "周期（cron）"),
    ("at", "指定时间"),
]
TARGETS = [
    ("cohort_groups", "本期所有群"),
    ("groups", "指定的群"),
    ("members", "学员（单发）"),
    ("staff", "员工"),
]


def describe_target(target: dict[str, Any]) -> str:
    """A schedule's target in Chinese."""
    kind = target.get("type")
    if kind == "groups":
        return f"{len(target.get('group_ids') or [])} 个指定的群"
    if kind == "members":
        chosen = target.get("filter", "all")
        return "本期学员" if chosen == "all" else f"本期学员（{label(chosen)}）"
    return dict(TARGETS).get(str(kind), str(kind))


def _spec(form: FormData) -> dict[str, Any]:
    """The form's fields as the API's schedule body (trigger and target as JSON objects)."""
    data = values(form, ("script_key", "cohort_id"), optional=("cohort_id",))
    kind = str(form.get("trigger_type") or "cohort_day")
    trigger: dict[str, Any] = {"type": kind}
    if kind in ("cohort_day", "member_day"):
        day = str(form.get("day") or "").strip()
        trigger |= {
            "day": int(day) if day.lstrip("-").isdigit() else day,
            "time": form.get("time"),
        }
    elif kind == "cron":
        trigger["cron"] = str(form.get("cron") or "").strip()
    else:
        trigger["at"] = str(form.get("at") or "").strip()
    target: dict[str, Any] = {"type": str(form.get("target_type") or "cohort_groups")}
    if target["type"] == "groups":
        chosen = [str(g) for g in form.getlist("group_ids")]
        target["group_ids"] = [int(g) for g in chosen if g.isdigit() and len(g) < 10]
    elif target["type"] == "members":
        target["filter"] = str(form.get("filter") or "all")
    elif target["type"] == "staff":
        target["userids"] = [
            u.strip() for u in str(form.get("userids") or "").split(",") if u.strip()
        ]
    return {
        **data,
        "trigger": trigger,
        "target": target,
        "enabled": form.get("enabled") is not None,
    }


def _problem(problem: service.ScheduleProblem) -> Refused:
    return Refused({problem.field: problem.message})


async def _form_context(
    session: ConsoleSessionDep, runtime: RuntimeDep, cohort_id: int | None
) -> dict[str, Any]:
    scripts = await list_scripts(session=session)
    in_cohort = []
    if cohort_id is not None:
        page = await groups.list_groups(
            session=session, cohort_id=cohort_id, channel=None, status=None, limit=200, offset=0
        )
        in_cohort = [(v.group.id, v.group.name or f"群 {v.group.id}") for v in page.items]
    return {
        "scripts": [(s.key, f"{s.title}（{s.key}）") for s in scripts],
        "triggers": TRIGGERS,
        "targets": TARGETS,
        "filters": [("all", "全部"), *((f, label(f)) for f in runtime.extensions.member_filters)],
        "groups": in_cohort,
        "describe": describe_target,
    }


@router.get("")
async def schedule_page(
    request: Request,
    session: ConsoleSessionDep,
    runtime: RuntimeDep,
    cohort_id: CohortParam = None,
    ran: int | None = None,
) -> Response:
    choices = await cohorts.cohort_choices(session=session)
    chosen_id = next((i for i, _ in choices if i == cohort_id), None)
    if chosen_id is None and choices and cohort_id is None:
        chosen_id = choices[0][0]
    chosen = await session.get(Cohort, chosen_id) if chosen_id is not None else None
    if chosen is None and cohort_id is not None:
        raise Refused({"cohort_id": f"期次 {cohort_id} 不存在。"}, 404)
    values = {"trigger_type": "cohort_day", "target_type": "cohort_groups", "enabled": True}
    return await _timetable_page(
        request, session, runtime, choices, chosen, values=values, errors={}, ran=ran
    )


async def _timetable_page(
    request: Request,
    session: ConsoleSessionDep,
    runtime: RuntimeDep,
    choices: Sequence[tuple[int, str]],
    cohort: Cohort | None,
    *,
    values: dict[str, Any],
    errors: dict[str, str],
    ran: int | None = None,
    status: int = 200,
) -> Response:
    """The timetable of `cohort` (one of the dropdown's `choices`) with the add form."""
    context = {
        "cohorts": choices,
        "table": await timetable(session=session, cohort=cohort) if cohort else None,
        "cohort": cohort,
        "values": values,
        "errors": errors,
        "ran": ran,
        **await _form_context(session, runtime, cohort.id if cohort else None),
    }
    return render(request, "schedules/timetable.html", context, status=status)


@router.post("")
async def create_schedule(
    request: Request, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    form = await request.form()
    spec = _spec(form)
    try:
        body = parse(ScheduleIn, spec)
        with refusals():
            try:
                await service.create_schedule(
                    session=session,
                    now=runtime.clock.now(),
                    default_tz=runtime.settings.campbot_timezone,
                    actor=viewer.actor,
                    extensions=runtime.extensions,
                    **body.model_dump(),
                )
            except service.ScheduleProblem as problem:
                raise _problem(problem) from None
    except Refused as refused:
        await session.rollback()
        return await _refused_page(request, session, runtime, form, refused)
    return RedirectResponse(f"/console/schedules?cohort_id={body.cohort_id}", status_code=303)


async def _refused_page(
    request: Request,
    session: ConsoleSessionDep,
    runtime: RuntimeDep,
    form: FormData,
    refused: Refused,
) -> Response:
    cohort_id = str(form.get("cohort_id") or "")
    cohort = (
        (await cohorts.get_cohort(session=session, cohort_id=int(cohort_id))).cohort
        if cohort_id.isdigit() and int(cohort_id) <= INT32_MAX
        else None
    )
    return await _timetable_page(
        request,
        session,
        runtime,
        await cohorts.cohort_choices(session=session),
        cohort,
        values=_form_values(form),
        errors=refused.problems,
        status=refused.status,
    )


def _form_values(form: FormData) -> dict[str, Any]:
    """The submitted form, to show again beside its problems."""
    return {k: form.get(k) for k in form} | {"group_ids": form.getlist("group_ids")}


@router.get("/{schedule_id}")
async def schedule_detail(
    request: Request, schedule_id: IdPath, session: ConsoleSessionDep, runtime: RuntimeDep
) -> Response:
    schedule = await _schedule_or_404(session, schedule_id)
    return await _detail_page(request, session, runtime, schedule, _values_of(schedule), {})


async def _schedule_or_404(session: ConsoleSessionDep, schedule_id: int) -> Schedule:
    with refusals():
        return await service.get_schedule(session=session, schedule_id=schedule_id)


async def _detail_page(
    request: Request,
    session: ConsoleSessionDep,
    runtime: RuntimeDep,
    schedule: Schedule,
    values: dict[str, Any],
    errors: dict[str, str],
    status: int = 200,
) -> Response:
    """The schedule's edit form and its latest firings, newest first."""
    with refusals():
        firings = await service.list_firings(
            session=session, schedule_id=schedule.id, limit=HISTORY_SHOWN
        )
    context = {
        "schedule": schedule,
        "firings": list(reversed(firings)),
        "values": values,
        "errors": errors,
        **await _form_context(session, runtime, schedule.cohort_id),
    }
    return render(request, "schedules/schedule.html", context, status=status)


def _values_of(schedule: Any) -> dict[str, Any]:
    trigger, target = schedule.trigger, schedule.target
    return {
        "script_key": schedule.script_key,
        "cohort_id": schedule.cohort_id,
        "trigger_type": trigger.get("type"),
        "day": trigger.get("day", ""),
        "time": trigger.get("time", ""),
        "cron": trigger.get("cron", ""),
        "at": trigger.get("at", ""),
        "target_type": target.get("type"),
        "group_ids": [str(i) for i in target.get("group_ids") or []],
        "filter": target.get("filter", "all"),
        "userids": ",".join(target.get("userids") or []),
        "enabled": schedule.enabled,
    }


async def _update(
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
    schedule_id: int,
    changes: dict[str, Any],
) -> None:
    body = parse(SchedulePatch, changes)
    with refusals():
        schedule = await service.get_schedule(session=session, schedule_id=schedule_id, lock=True)
        try:
            await service.update_schedule(
                session=session,
                schedule=schedule,
                changes=body.model_dump(exclude_unset=True),
                now=runtime.clock.now(),
                default_tz=runtime.settings.campbot_timezone,
                actor=viewer.actor,
                extensions=runtime.extensions,
            )
        except service.ScheduleProblem as problem:
            raise _problem(problem) from None


@router.post("/{schedule_id}")
async def update_schedule(
    request: Request,
    schedule_id: IdPath,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
) -> Response:
    form = await request.form()
    spec = _spec(form)
    try:
        await _update(session, viewer, runtime, schedule_id, spec)
    except Refused as refused:
        await session.rollback()
        schedule = await _schedule_or_404(session, schedule_id)
        return await _detail_page(
            request,
            session,
            runtime,
            schedule,
            _form_values(form),
            refused.problems,
            status=refused.status,
        )
    return RedirectResponse(f"/console/schedules/{schedule_id}?saved=1", status_code=303)


@router.post("/{schedule_id}/toggle")
async def toggle(
    schedule_id: IdPath, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    schedule = await _schedule_or_404(session, schedule_id)
    await _update(session, viewer, runtime, schedule_id, {"enabled": not schedule.enabled})
    return RedirectResponse(f"/console/schedules?cohort_id={schedule.cohort_id}", status_code=303)


@router.post("/{schedule_id}/run")
async def run_now(
    schedule_id: IdPath, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    schedule = await _schedule_or_404(session, schedule_id)
    try:
        firing = await service.run_now(
            session=session,
            schedule=schedule,
            now=runtime.clock.now(),
            default_tz=runtime.settings.campbot_timezone,
            actor=viewer.actor,
            extensions=runtime.extensions,
        )
    except (RenderError, UndeliverableError) as exc:
        raise Refused({"": f"无法立即发送：{exc}"}, 409) from None
    target = f"/console/schedules?cohort_id={schedule.cohort_id}&ran={firing.enqueued}"
    return RedirectResponse(target, status_code=303)


@router.post("/{schedule_id}/delete")
async def delete(
    schedule_id: IdPath, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    cohort_id = (await _schedule_or_404(session, schedule_id)).cohort_id
    with refusals():
        await service.delete_schedule(
            session=session, schedule_id=schedule_id, actor=viewer.actor, now=runtime.clock.now()
        )
    return RedirectResponse(f"/console/schedules?cohort_id={cohort_id}", status_code=303)
