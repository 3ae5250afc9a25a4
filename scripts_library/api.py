"""`/admin/api/scripts`: the script library (话术库) — versions, diff, rollback, preview.

Scripts are addressed by their stable `key`. Every stored change is a new version authored
by the request's actor and audited with the before/after snapshots (by the service).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from app.api.admin.deps import ActorDep, AdminSessionDep, admin_resource_router
from app.api.admin.fields import INT32_MAX, PRINTABLE, Limit, Offset
from app.api.admin.schemas import ERRORS_404, ERRORS_409, ERRORS_422, ItemsPage
from app.deps import RuntimeDep
from scripts_library import service
from scripts_library.api_schemas import (
    DiffOut,
    PreviewIn,
    PreviewOut,
    RollbackIn,
    ScriptCreate,
    ScriptOut,
    ScriptUpdate,
    VersionOut,
    VersionsPage,
)
from scripts_library.api_support import (
    TrialsDep,
    locked_script,
    preload_images,
    preview_context,
    preview_failed,
    script_errors,
)
from scripts_library.api_views import preview_out, script_out, version_out, version_summary
from scripts_library.errors import RenderError
from scripts_library.models import CATEGORY_MAX, KEY_MAX, Script, ScriptVersion

router = admin_resource_router("/scripts", "scripts")

KeyPath = Annotated[str, Path(max_length=KEY_MAX, pattern=PRINTABLE, description="话术 key")]
VersionPath = Annotated[int, Path(ge=1, le=INT32_MAX, description="版本号")]
VersionQuery = Annotated[int, Query(ge=1, le=INT32_MAX, description="版本号")]


@router.post(
    "",
    status_code=201,
    summary="新建话术",
    description=(
        "保存为第 1 版。模板语法、变量名、按示例数据渲染后各渠道的长度限制都会检查，"
        "所有问题在一个 422 里逐条列出。"
    ),
    responses=ERRORS_409 | ERRORS_422,
)
async def create_script(
    body: ScriptCreate,
    session: AdminSessionDep,
    actor: ActorDep,
    runtime: RuntimeDep,
    trials: TrialsDep,
) -> ScriptOut:
    images = await preload_images(body.msgtype, body.attachments)
    with script_errors():
        script = await service.create_script(
            session=session,
            key=body.key,
            title=body.title,
            msgtype=body.msgtype,
            body=body.body,
            category=body.category,
            attachments=body.attachments,
            schedule_hint=body.schedule_hint,
            description=body.description,
            group_delivery=body.group_delivery or "auto",
            note=body.note,
            author=actor.name,
            now=runtime.clock.now(),
            images=images,
            trials=trials,
            actor=actor,
        )
    return script_out(script)


@router.get(
    "",
    summary="话术列表",
    description="按分类、再按创建顺序排列；可按 `category` 过滤。",
    responses=ERRORS_422,
)
async def list_scripts(
    session: AdminSessionDep,
    category: Annotated[
        str | None, Query(max_length=CATEGORY_MAX, pattern=PRINTABLE, description="分类")
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> ItemsPage[ScriptOut]:
    # A library holds hundreds of scripts, not millions: the service's ordering, sliced here.
    scripts = await service.list_scripts(session=session, category=category)
    page = scripts[offset : offset + limit]
    return ItemsPage(
        items=[script_out(s) for s in page], total=len(scripts), limit=limit, offset=offset
    )


@router.get("/{key}", summary="查看话术（当前版本）", responses=ERRORS_404 | ERRORS_422)
async def get_script(key: KeyPath, session: AdminSessionDep) -> ScriptOut:
    with script_errors():
        return script_out(await service.get_script(session=session, key=key))


@router.put(
    "/{key}",
    summary="修改话术（保存为新版本）",
    description=(
        "内容与当前版本相同时不新建版本，原样返回。省略 `attachments`、`description`、"
        "`schedule_hint` 表示保持不变（`schedule_hint: null` 清除）。"
    ),
    responses=ERRORS_404 | ERRORS_422,
)
async def update_script(
    key: KeyPath,
    body: ScriptUpdate,
    session: AdminSessionDep,
    actor: ActorDep,
    runtime: RuntimeDep,
    trials: TrialsDep,
) -> ScriptOut:
    with script_errors():
        script = await locked_script(session, key)
        attachments = body.attachments if body.attachments is not None else script.attachments
        images = await preload_images(body.msgtype, attachments or [])
        hint_given = "schedule_hint" in body.model_fields_set
        await service.update_script(
            session=session,
            key=key,
            author=actor.name,
            note=body.note,
            title=body.title,
            msgtype=body.msgtype,
            body=body.body,
            category=body.category,
            attachments=body.attachments,
            # None keeps the hint; an explicit null clears it ({} in the service's terms).
            schedule_hint=(body.schedule_hint or {}) if hint_given else None,
            description=body.description,
            group_delivery=body.group_delivery,
            now=runtime.clock.now(),
            images=images,
            trials=trials,
            actor=actor,
        )
    return script_out(script)


@router.get(
    "/{key}/versions",
    summary="版本历史",
    description="从新到旧：版本号、修改人、修改说明、时间。",
    responses=ERRORS_404 | ERRORS_422,
)
async def list_versions(key: KeyPath, session: AdminSessionDep) -> VersionsPage:
    with script_errors():
        rows = await service.versions(session=session, key=key)
    return VersionsPage(items=[version_summary(r) for r in rows], total=len(rows))


@router.get("/{key}/versions/{version}", summary="查看历史版本", responses=ERRORS_404 | ERRORS_422)
async def get_version(
    key: KeyPath,
    version: VersionPath,
    session: AdminSessionDep,
) -> VersionOut:
    with script_errors():
        row = await service.get_version(session=session, key=key, version=version)
    return version_out(row)


@router.get(
    "/{key}/diff",
    summary="比较两个版本",
    description="从第 `a` 版到第 `b` 版的统一 diff（所有字段）。",
    responses=ERRORS_404 | ERRORS_422,
)
async def diff_versions(
    key: KeyPath, a: VersionQuery, b: VersionQuery, session: AdminSessionDep
) -> DiffOut:
    with script_errors():
        text = await service.diff(session=session, key=key, a=a, b=b)
    return DiffOut(key=key, a=a, b=b, diff=text)


@router.post(
    "/{key}/rollback",
    summary="回滚到历史版本",
    description="新建一个内容与所选版本相同的版本；历史不会被改写。",
    responses=ERRORS_404 | ERRORS_422,
)
async def rollback_script(
    key: KeyPath,
    body: RollbackIn,
    session: AdminSessionDep,
    actor: ActorDep,
    runtime: RuntimeDep,
    trials: TrialsDep,
) -> ScriptOut:
    with script_errors():
        await locked_script(session, key)
        target = await service.get_version(session=session, key=key, version=body.version)
        images = await preload_images(target.msgtype, target.attachments or [])
        script = await service.rollback(
            session=session,
            key=key,
            version=body.version,
            author=actor.name,
            note=body.note,
            now=runtime.clock.now(),
            images=images,
            trials=trials,
            actor=actor,
        )
    return script_out(script)


@router.post(
    "/{key}/preview",
    summary="预览渲染结果",
    description=(
        "按示例数据渲染；`context` 覆盖部分变量，`member_id` 按某位学员渲染（学员昵称取自"
        "学员资料）。同时给出群机器人、应用消息、客户群发各渠道能否发出及原因。"
    ),
    responses=ERRORS_404 | ERRORS_422,
)
async def preview_script(
    key: KeyPath, session: AdminSessionDep, trials: TrialsDep, body: PreviewIn | None = None
) -> PreviewOut:
    body = body or PreviewIn()
    context = await preview_context(session, body.context, body.member_id)
    with script_errors():
        if body.version is None:
            source: Script | ScriptVersion = await service.get_script(session=session, key=key)
        else:
            source = await service.get_version(session=session, key=key, version=body.version)
        images = await preload_images(source.msgtype, source.attachments or [])
        try:
            message = await service.preview(
                session=session,
                key=key,
                context=context,
                version=body.version,
                images=images,
                trials=trials,
            )
        except RenderError as exc:
            raise preview_failed(exc) from None
    return preview_out(key=key, version=source.version, message=message)
