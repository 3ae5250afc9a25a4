"""话术库's history and pack in the console: versions with diffs and rollback, and the
pack's YAML export and import (upload → what would change → confirm), through
`scripts_library.service` and `scripts_library.loader`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse

from app.console.forms import Refused, refusals
from app.console.models import Role
from app.console.pages import ConsolePages
from app.console.route import ConsoleSessionDep, ViewerDep, console_router
from app.console.templating import render
from app.deps import RuntimeDep
from scripts_library import loader, service
from scripts_library.api_support import get_trials, preload_images, script_errors
from scripts_library.console import KeyPath
from scripts_library.errors import ScriptValidationError
from scripts_library.service import SaveOutcome

router = console_router("/scripts", role=Role.OPERATOR)
Version = Annotated[int, Query(ge=1, le=2**31 - 1)]


@router.get("/_export.yaml")
async def export_pack(session: ConsoleSessionDep) -> Response:
    text = await loader.export_text(session=session)
    headers = {"Content-Disposition": 'attachment; filename="campbot-scripts.yaml"'}
    return Response(text, media_type="application/x-yaml; charset=utf-8", headers=headers)


@router.get("/_import")
async def import_form(request: Request) -> Response:
    return render(request, "scripts/import.html", {"planned": None, "problems": []})


async def _upload(request: Request) -> tuple[str, str]:
    """The pack's text and name: an uploaded file, or the text the confirm step carries."""
    form = await request.form()
    upload, text = form.get("file"), form.get("text")
    if upload is not None and not isinstance(upload, str):
        data = await upload.read(loader.UPLOAD_MAX_BYTES + 1)
        name = (upload.filename or "upload.yaml")[:100]
    elif isinstance(text, str) and text:
        data, name = text.encode(), str(form.get("source") or "upload.yaml")[:100]
    else:
        raise Refused({"file": "请选择要导入的 YAML 文件。"})
    if len(data) > loader.UPLOAD_MAX_BYTES:
        raise Refused({"file": "文件太大（最多 512 KB）。"})
    try:
        return data.decode("utf-8-sig"), name
    except UnicodeDecodeError:
        raise Refused({"file": "文件不是 UTF-8 编码的文本。"}) from None


def _refused(request: Request, problems: list[tuple[str, str]]) -> Response:
    context = {"planned": None, "problems": problems}
    return render(request, "scripts/import.html", context, status=422)


@router.post("/_import/preview")
async def import_preview(request: Request, session: ConsoleSessionDep) -> Response:
    try:
        text, name = await _upload(request)
        planned = await loader.plan_upload(
            session=session, text=text, source=name, trials=get_trials(request)
        )
    except Refused as refused:
        return _refused(request, list(refused.problems.items()))
    except ScriptValidationError as exc:
        return _refused(request, [(p.field, p.message) for p in exc.problems])
    counts = {o: sum(p.outcome == o for p in planned) for o in SaveOutcome}
    context = {"planned": planned, "counts": counts, "text": text, "source": name, "problems": []}
    return render(request, "scripts/import.html", context)


@router.post("/_import")
async def import_pack(
    request: Request, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    try:
        text, name = await _upload(request)
        report = await loader.import_upload(
            session=session,
            text=text,
            source=name,
            actor=viewer.actor,
            now=runtime.clock.now(),
            trials=get_trials(request),
        )
    except Refused as refused:
        return _refused(request, list(refused.problems.items()))
    except ScriptValidationError as exc:
        return _refused(request, [(p.field, p.message) for p in exc.problems])
    done = (
        f"新建 {len(report.created)} 条，更新 {len(report.updated)} 条，"
        f"未变 {len(report.unchanged)} 条"
    )
    return render(request, "scripts/import.html", {"planned": None, "problems": [], "done": done})


@router.get("/{key}/versions")
async def versions(request: Request, key: KeyPath, session: ConsoleSessionDep) -> Response:
    with refusals(), script_errors():
        script = await service.get_script(session=session, key=key)
        rows = await service.versions(session=session, key=key)
    return render(request, "scripts/versions.html", {"script": script, "versions": rows})


@router.get("/{key}/diff")
async def diff(
    request: Request, key: KeyPath, a: Version, b: Version, session: ConsoleSessionDep
) -> Response:
    with refusals(), script_errors():
        script = await service.get_script(session=session, key=key)
        text = await service.diff(session=session, key=key, a=a, b=b)
    return render(request, "scripts/diff.html", {"script": script, "a": a, "b": b, "diff": text})


@router.post("/{key}/rollback")
async def rollback(
    request: Request,
    key: KeyPath,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
) -> Response:
    version = str((await request.form()).get("version") or "")
    if not version.isdigit():
        raise Refused({"version": "请选择要回滚到的版本。"})
    with refusals(), script_errors():
        target = await service.get_version(session=session, key=key, version=int(version))
        images = await preload_images(target.msgtype, target.attachments or [])
        await service.rollback(
            session=session,
            key=key,
            version=int(version),
            author=viewer.username,
            now=runtime.clock.now(),
            images=images,
            trials=get_trials(request),
            actor=viewer.actor,
        )
    return RedirectResponse(f"/console/scripts/{key}/versions", status_code=303)


# Listed before the editor's pages: its `_`-paths must match before `/{key}` does.
PAGES = ConsolePages("scripts_pack", router)
