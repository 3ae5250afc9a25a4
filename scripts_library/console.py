"""话术库 in the console: scripts by category, the editor (variables palette, a live preview
for a chosen student or group with each channel's size check, the save's problems beside
their field with line numbers); through `scripts_library.service` and the API's models.

Paths under /console/scripts/ that start with `_` are the library's own pages: no script key
can start with `_` (`validate.key_problems`). Versions and the pack's import/export are in
`scripts_library.console_versions`.
"""

from __future__ import annotations

import json
from itertools import groupby
from typing import Annotated, Any

from fastapi import Path, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from starlette.datastructures import FormData

from app.admin.groups import service as groups
from app.admin.members import service as members
from app.api.admin.fields import PRINTABLE
from app.console.forms import Refused, parse, refusals, values
from app.console.models import Role
from app.console.pages import ConsolePages, NavItem
from app.console.route import ConsoleSessionDep, ViewerDep, console_router
from app.console.templating import render
from app.deps import RuntimeDep
from app.models import Group, GroupStatus
from scripts_library import service
from scripts_library.api_schemas import ScriptCreate, ScriptUpdate
from scripts_library.api_support import (
    channel_checks,
    get_trials,
    preload_images,
    preview_context,
    script_errors,
)
from scripts_library.errors import ScriptValidationError
from scripts_library.models import KEY_MAX, MsgType, ScriptContent
from scripts_library.variables import VARIABLES

router = console_router("/scripts", role=Role.OPERATOR)
KeyPath = Annotated[str, Path(max_length=KEY_MAX, pattern=PRINTABLE)]
CONTENT_FIELDS = ("title", "category", "msgtype", "body", "description")
MSGTYPES = [(m.value, m.value) for m in MsgType]


@router.get("")
async def script_list(request: Request, session: ConsoleSessionDep) -> Response:
    scripts = await service.list_scripts(session=session)
    by_category = [(c, list(g)) for c, g in groupby(scripts, key=lambda s: s.category)]
    return render(request, "scripts/list.html", {"categories": by_category})


def _draft(form: FormData, *, key: bool = False) -> dict[str, Any]:
    """The editor's fields as the API's body: attachments are JSON text in the form."""
    data = values(form, (*CONTENT_FIELDS, "note", *(("key",) if key else ())))
    raw = str(form.get("attachments") or "").strip()
    try:
        data["attachments"] = json.loads(raw) if raw else []
    except ValueError:
        raise Refused({"attachments": '附件应为 JSON 数组，如 [{"path": "poster.png"}]'}) from None
    return data


async def _editor(
    request: Request, session: ConsoleSessionDep, *, script: Any, status: int = 200, **extra: Any
) -> Response:
    active = (
        await session.scalars(
            select(Group).where(Group.status == GroupStatus.ACTIVE).order_by(Group.id).limit(200)
        )
    ).all()
    current = (
        {name: getattr(script, name) for name in CONTENT_FIELDS}
        | {"attachments": json.dumps(script.attachments or [], ensure_ascii=False)}
        if script is not None
        else {"msgtype": "text", "attachments": "[]"}
    )
    context = {
        "script": script,
        "values": current,
        "errors": {},
        "variables": VARIABLES,
        "msgtypes": MSGTYPES,
        "groups": [(g.id, g.name or f"群 {g.id}") for g in active],
        "saved": False,
        **extra,
    }
    return render(request, "scripts/editor.html", context, status=status)


@router.get("/_new")
async def new_script(request: Request, session: ConsoleSessionDep) -> Response:
    return await _editor(request, session, script=None)


@router.post("")
async def create_script(
    request: Request, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    form = await request.form()
    try:
        data = _draft(form, key=True)
        body = parse(ScriptCreate, data)
        images = await preload_images(body.msgtype, body.attachments)
        with refusals(), script_errors():
            await service.create_script(
                session=session,
                **_edit(request, viewer, runtime, images),
                **body.model_dump(exclude={"schedule_hint"}),
            )
    except Refused as refused:
        return await _refused_editor(request, session, form, refused, script=None)
    return RedirectResponse(f"/console/scripts/{body.key}?saved=1", status_code=303)


@router.get("/{key}")
async def edit_script(request: Request, key: KeyPath, session: ConsoleSessionDep) -> Response:
    with refusals(), script_errors():
        script = await service.get_script(session=session, key=key)
    saved = request.query_params.get("saved") == "1"
    return await _editor(request, session, script=script, saved=saved)


@router.post("/{key}")
async def save_script(
    request: Request,
    key: KeyPath,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
) -> Response:
    form = await request.form()
    try:
        body = parse(ScriptUpdate, _draft(form))
        with refusals(), script_errors():
            await service.get_script(session=session, key=key)
            images = await preload_images(body.msgtype, body.attachments or [])
            await service.update_script(
                session=session,
                key=key,
                **_edit(request, viewer, runtime, images),
                **body.model_dump(exclude={"schedule_hint"}),
            )
    except Refused as refused:
        await session.rollback()
        with refusals(), script_errors():
            script = await service.get_script(session=session, key=key)
        return await _refused_editor(request, session, form, refused, script=script)
    return RedirectResponse(f"/console/scripts/{key}?saved=1", status_code=303)


def _edit(
    request: Request, viewer: ViewerDep, runtime: RuntimeDep, images: service.ImageLoad
) -> dict[str, Any]:
    """What every edit passes the service besides its fields: who, when, how it is tried."""
    return {
        "author": viewer.username,
        "now": runtime.clock.now(),
        "images": images,
        "trials": get_trials(request),
        "actor": viewer.actor,
    }


async def _refused_editor(
    request: Request, session: ConsoleSessionDep, form: FormData, refused: Refused, *, script: Any
) -> Response:
    """The editor again with what was submitted and why it was refused (a new script's key
    too)."""
    shown = values(form, (*CONTENT_FIELDS, *(("key",) if script is None else ()), "attachments"))
    return await _editor(
        request,
        session,
        script=script,
        status=refused.status,
        values=shown,
        errors=refused.problems,
    )


async def _overrides(
    session: ConsoleSessionDep, form: FormData
) -> tuple[dict[str, Any], int | None]:
    """What the preview is for: a student (by id or name) and a group, as variables."""
    overrides: dict[str, Any] = {}
    group_id = str(form.get("preview_group") or "")
    if group_id.isdigit():
        with refusals():
            view = await groups.get_group(session=session, group_id=int(group_id))
        overrides["group_name"] = view.group.name or ""
    who = str(form.get("preview_member") or "")
    if not who.strip():
        return overrides, None
    with refusals():
        return overrides, await members.find_one(session=session, who=who, field="preview_member")


@router.post("/{key}/preview")
async def preview(request: Request, key: KeyPath, session: ConsoleSessionDep) -> Response:
    """The editor's draft rendered for the chosen student or group (an htmx fragment)."""
    form = await request.form()
    try:
        content = _content(parse(ScriptUpdate, _draft(form)))
        overrides, member_id = await _overrides(session, form)
        with refusals():
            context = await preview_context(session, overrides, member_id)
        images = await preload_images(content.msgtype, content.attachments)
        problems, message, failure = await service.preview_draft(
            content=content, context=context, images=images, trials=get_trials(request)
        )
    except (Refused, ScriptValidationError) as refused:
        problems_shown = getattr(refused, "problems", {})
        if isinstance(refused, ScriptValidationError):
            problems_shown = {p.field: p.message for p in refused.problems}
        return render(request, "scripts/preview.html", {"problems": problems_shown})
    return render(
        request,
        "scripts/preview.html",
        {
            "problems": {p.field: p.message for p in problems},
            "message": message,
            "failure": failure,
            "checks": channel_checks(message) if message is not None else [],
        },
    )


def _content(draft: ScriptUpdate) -> ScriptContent:
    return ScriptContent(
        title=draft.title,
        category=draft.category,
        msgtype=draft.msgtype,
        body=draft.body,
        attachments=tuple(draft.attachments or ()),
        description=draft.description or "",
    )


PAGES = ConsolePages(
    "scripts",
    router,
    nav=(NavItem("话术库", "/console/scripts", Role.OPERATOR, 20),),
    templates="scripts_library",
)
