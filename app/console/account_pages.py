"""账号 (管理员): console accounts and the admin API's operator tokens; 操作日志 (运营):
the audit log, newest first."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse

from app.admin import audit
from app.admin.cohorts import service as cohorts
from app.admin.tokens import service as tokens
from app.admin.tokens.api import TokenCreate
from app.api.admin.fields import PRINTABLE, IdPath
from app.api.admin.schemas import AuditOut
from app.console import accounts
from app.console.forms import Refused, parse, refusals, values
from app.console.models import ROLE_NAMES, Role
from app.console.pages import ConsolePages, NavItem
from app.console.route import ConsoleSessionDep, ViewerDep, console_router
from app.console.templating import pager, render
from app.deps import RuntimeDep

admin = console_router("/accounts", role=Role.ADMIN)
log = console_router("/audit", role=Role.OPERATOR)
ACCOUNT_FIELDS = ("username", "display_name", "role", "password", "wecom_userid")
PAGE_SIZE = 50


async def _accounts_page(
    request: Request, session: ConsoleSessionDep, *, status: int = 200, **extra: Any
) -> Response:
    context = {
        "accounts": await accounts.list_accounts(session=session),
        "tokens": (
            await tokens.list_tokens(session=session, include_revoked=False, limit=200, offset=0)
        ).items,
        "cohorts": await cohorts.cohort_choices(session=session),
        "roles": list(ROLE_NAMES.items()),
        "errors": {},
        "values": {},
        "token_errors": {},
        "new_token": None,
        **extra,
    }
    return render(request, "console/accounts.html", context, status=status)


@admin.get("")
async def account_list(request: Request, session: ConsoleSessionDep) -> Response:
    return await _accounts_page(request, session)


@admin.post("")
async def create_account(
    request: Request, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    form = await request.form()
    data = values(form, ACCOUNT_FIELDS, lists=("cohort_ids",), optional=("wecom_userid",))
    try:
        body = parse(accounts.AccountCreate, data)
        with refusals():
            await accounts.create_account(
                session=session, actor=viewer.actor, now=runtime.clock.now(), **body.model_dump()
            )
    except Refused as refused:
        data.pop("password", None)
        return await _accounts_page(
            request, session, status=refused.status, errors=refused.problems, values=data
        )
    return RedirectResponse("/console/accounts", status_code=303)


@admin.get("/{account_id}")
async def account_form(
    request: Request, account_id: IdPath, session: ConsoleSessionDep, saved: int = 0
) -> Response:
    with refusals():
        view = await accounts.get_account(session=session, account_id=account_id)
    return render(request, "console/account.html", await _account_context(session, view, saved))


async def _account_context(
    session: ConsoleSessionDep, view: accounts.AccountView, saved: int = 0, **extra: Any
) -> dict[str, Any]:
    return {
        "view": view,
        "cohorts": await cohorts.cohort_choices(session=session),
        "roles": list(ROLE_NAMES.items()),
        "errors": {},
        "saved": saved,
        **extra,
    }


@admin.post("/{account_id}")
async def update_account(
    request: Request,
    account_id: IdPath,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
) -> Response:
    form = await request.form()
    data = values(form, ("display_name", "role", "wecom_userid"), lists=("cohort_ids",))
    data["wecom_userid"] = data.get("wecom_userid", "").strip() or None
    data["disabled"] = form.get("disabled") is not None
    try:
        body = parse(accounts.AccountUpdate, data)
        with refusals():
            await accounts.update_account(
                session=session,
                actor=viewer.actor,
                now=runtime.clock.now(),
                account_id=account_id,
                changes=body.model_dump(exclude_unset=True),
            )
    except Refused as refused:
        view = await accounts.get_account(session=session, account_id=account_id)
        context = await _account_context(session, view, errors=refused.problems)
        return render(request, "console/account.html", context, status=refused.status)
    return RedirectResponse(f"/console/accounts/{account_id}?saved=1", status_code=303)


@admin.post("/{account_id}/password")
async def reset_password(
    request: Request,
    account_id: IdPath,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
) -> Response:
    password = (await request.form()).get("password")
    try:
        with refusals():
            await accounts.set_password(
                session=session,
                actor=viewer.actor,
                now=runtime.clock.now(),
                account_id=account_id,
                password=password if isinstance(password, str) else "",
            )
    except Refused as refused:
        view = await accounts.get_account(session=session, account_id=account_id)
        context = await _account_context(session, view, errors=refused.problems)
        return render(request, "console/account.html", context, status=refused.status)
    return RedirectResponse(f"/console/accounts/{account_id}?saved=2", status_code=303)


@admin.post("/tokens/new")
async def create_token(
    request: Request, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    data = values(await request.form(), ("name",))
    try:
        body = parse(TokenCreate, data)
        with refusals():
            row, plaintext = await tokens.create_token(
                session=session, name=body.name, actor=viewer.actor, now=runtime.clock.now()
            )
    except Refused as refused:
        return await _accounts_page(
            request, session, status=refused.status, token_errors=refused.problems
        )
    # Shown this once (the page is not cached: Cache-Control no-store).
    return await _accounts_page(request, session, new_token=(row.name, plaintext))


@admin.post("/tokens/{token_id}/revoke")
async def revoke_token(
    token_id: IdPath, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    await tokens.revoke_token(
        session=session, token_id=token_id, actor=viewer.actor, now=runtime.clock.now()
    )
    return RedirectResponse("/console/accounts", status_code=303)


Filter = Annotated[str | None, Query(max_length=64, pattern=PRINTABLE)]


@log.get("")
async def audit_log(
    request: Request,
    session: ConsoleSessionDep,
    resource: Filter = None,
    actor: Filter = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    found = await audit.list_entries(
        session=session,
        resource=resource or None,
        resource_id=None,
        actor=actor or None,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    entries = [AuditOut.model_validate(e) for e in found.items]
    query = {"resource": resource or "", "actor": actor or ""}
    context = {
        "entries": [(e, _changes(e.before, e.after)) for e in entries],
        "filters": query,
        **pager(number=page, total=found.total, size=PAGE_SIZE, query=query),
    }
    return render(request, "console/audit.html", context)


def _changes(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> list[tuple[str, Any, Any]]:
    """The fields an entry changed: (name, before, after)."""
    old, new = before or {}, after or {}
    keys = [k for k in dict.fromkeys([*old, *new]) if k != "updated_at"]
    return [(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)]


PAGES = (
    ConsolePages("accounts", admin, nav=(NavItem("账号", "/console/accounts", Role.ADMIN, 95),)),
    ConsolePages("audit", log, nav=(NavItem("操作日志", "/console/audit", Role.OPERATOR, 90),)),
)
