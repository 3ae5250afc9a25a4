"""问答 in the console: the rules, a 「测试一个问题」 box that shows which rule answers and why,
and the questions nothing answered, each one click from a pre-filled rule (学员的问题生成脚本库);
through `bots.qa.service` and the API's `RuleIn`/`RulePatch`."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from starlette.datastructures import FormData

from app.admin.cohorts import service as cohorts
from app.admin.common import get_or_404
from app.api.admin.fields import INT32_MAX, IdPath
from app.console.forms import Refused, form_id, parse, refusals, values
from app.console.models import Role
from app.console.pages import ConsolePages, HomePanel, NavItem
from app.console.route import ConsoleSessionDep, ViewerDep, console_router, session_of
from app.console.templating import fragment, render
from app.deps import RuntimeDep
from bots.qa import service
from bots.qa.api import RuleIn, RulePatch
from bots.qa.explain import explain
from bots.qa.matcher import Mode
from bots.qa.models import QaRule, QaUnanswered

router = console_router("/qa", role=Role.OPERATOR)
MODES = [(m.value, m.value) for m in Mode]
TEXT = (
    "mode",
    "reply",
    "script_key",
    "question",
    "priority",
    "cohort_id",
    "group_id",
    "cooldown_s",
)
OPTIONAL = ("reply", "script_key", "question", "cohort_id", "group_id")


def _rule_body(form: FormData) -> dict[str, Any]:
    data = values(form, TEXT, optional=OPTIONAL, flags=("block", "enabled"))
    data["patterns"] = [
        p.strip() for p in str(form.get("patterns") or "").splitlines() if p.strip()
    ]
    return data


@router.get("")
async def qa_page(request: Request, session: ConsoleSessionDep) -> Response:
    rules = (await session.scalars(select(QaRule).order_by(QaRule.priority, QaRule.id))).all()
    unanswered, total = await service.list_unanswered(session=session, limit=50, offset=0)
    # Compiling every regex rule's patterns takes milliseconds each: not on the event loop.
    checked = await asyncio.to_thread(lambda: [(r, service.pattern_error(r)) for r in rules])
    context = {
        "rules": checked,
        "unanswered": unanswered,
        "unanswered_total": total,
        "cohorts": await cohorts.cohort_choices(session=session),
    }
    return render(request, "qa/index.html", context)


@router.post("/test")
async def test_question(request: Request, session: ConsoleSessionDep) -> Response:
    """Which rule answers this question, and why (an htmx fragment)."""
    form = await request.form()
    question = str(form.get("question") or "").strip()[:2048]
    if not question:
        return render(request, "qa/explain.html", {"result": None, "empty": True})
    result = await explain(
        session=session,
        question=question,
        group_id=None,
        cohort_id=form_id(form.get("cohort_id")),
    )
    return render(request, "qa/explain.html", {"result": result, "empty": False})


async def _form_page(
    request: Request,
    session: ConsoleSessionDep,
    *,
    rule: QaRule | None,
    status: int = 200,
    **extra: Any,
) -> Response:
    context = {
        "rule": rule,
        "modes": MODES,
        "cohorts": await cohorts.cohort_choices(session=session),
        "errors": {},
        "from_id": None,
        **extra,
    }
    return render(request, "qa/rule.html", context, status=status)


def _shown(rule: QaRule) -> dict[str, Any]:
    return {
        "patterns": "\n".join(rule.patterns),
        "mode": rule.mode,
        "reply": rule.reply or "",
        "script_key": rule.script_key or "",
        "question": rule.question or "",
        "priority": rule.priority,
        "cohort_id": rule.cohort_id or "",
        "group_id": rule.group_id or "",
        "cooldown_s": rule.cooldown_s,
        "block": rule.block,
        "enabled": rule.enabled,
    }


@router.get("/rules/new")
async def new_rule(
    request: Request,
    session: ConsoleSessionDep,
    from_: Annotated[int | None, Query(alias="from", ge=1, le=INT32_MAX)] = None,
) -> Response:
    shown: dict[str, Any] = {"mode": "contains", "priority": 100, "cooldown_s": 0}
    shown |= {"block": True, "enabled": True}
    if from_ is not None:
        asked = await get_or_404(QaUnanswered, from_, session=session, what="未解答问题")
        shown |= {"patterns": asked.example[:200], "question": asked.example[:200]}
    return await _form_page(request, session, rule=None, values=shown, from_id=from_)


@router.post("/rules")
async def create_rule(
    request: Request, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    form = await request.form()
    data = _rule_body(form)
    try:
        body = parse(RuleIn, data)
        with refusals():
            try:
                await service.create_rule(
                    session=session,
                    fields=body.model_dump(),
                    now=runtime.clock.now(),
                    actor=viewer.actor,
                )
            except service.RuleProblem as problem:
                raise Refused({problem.field.split("[")[0]: problem.message}) from None
        source = str(form.get("from") or "")
        if source.isdigit() and len(source) < 10:
            await service.dismiss_unanswered(session=session, item_id=int(source))
    except Refused as refused:
        await session.rollback()
        shown = {**data, "patterns": form.get("patterns") or ""}
        return await _form_page(
            request,
            session,
            rule=None,
            status=refused.status,
            values=shown,
            errors=refused.problems,
            from_id=form.get("from"),
        )
    return RedirectResponse("/console/qa", status_code=303)


@router.get("/rules/{rule_id}")
async def rule_page(request: Request, rule_id: IdPath, session: ConsoleSessionDep) -> Response:
    rule = await get_or_404(QaRule, rule_id, session=session, what="问答规则")
    return await _form_page(request, session, rule=rule, values=_shown(rule))


@router.post("/rules/{rule_id}")
async def update_rule(
    request: Request,
    rule_id: IdPath,
    session: ConsoleSessionDep,
    viewer: ViewerDep,
    runtime: RuntimeDep,
) -> Response:
    form = await request.form()
    data = _rule_body(form)
    # An emptied field is cleared, as `null` does in the API.
    data |= {name: data.get(name) for name in OPTIONAL}
    rule = await get_or_404(QaRule, rule_id, session=session, what="问答规则", lock=True)
    try:
        body = parse(RulePatch, data)
        with refusals():
            try:
                await service.update_rule(
                    session=session,
                    rule=rule,
                    changes=body.model_dump(exclude_unset=True),
                    actor=viewer.actor,
                    now=runtime.clock.now(),
                )
            except service.RuleProblem as problem:
                raise Refused({problem.field.split("[")[0]: problem.message}) from None
    except Refused as refused:
        await session.rollback()
        rule = await get_or_404(QaRule, rule_id, session=session, what="问答规则")
        shown = {**data, "patterns": form.get("patterns") or ""}
        return await _form_page(
            request,
            session,
            rule=rule,
            status=refused.status,
            values=shown,
            errors=refused.problems,
        )
    return RedirectResponse("/console/qa", status_code=303)


@router.post("/rules/{rule_id}/delete")
async def delete_rule(
    rule_id: IdPath, session: ConsoleSessionDep, viewer: ViewerDep, runtime: RuntimeDep
) -> Response:
    rule = await get_or_404(QaRule, rule_id, session=session, what="问答规则")
    await service.delete_rule(
        session=session, rule=rule, actor=viewer.actor, now=runtime.clock.now()
    )
    return RedirectResponse("/console/qa", status_code=303)


@router.post("/unanswered/{item_id}/dismiss")
async def dismiss(item_id: IdPath, session: ConsoleSessionDep) -> Response:
    await service.dismiss_unanswered(session=session, item_id=item_id)
    return RedirectResponse("/console/qa#unanswered", status_code=303)


async def unanswered_panel(request: Request) -> str:
    """今日: the questions most asked that nothing answered."""
    rows, total = await service.list_unanswered(session=session_of(request), limit=5, offset=0)
    return fragment(request, "qa/panel.html", {"unanswered": rows, "total": total})


PAGES = ConsolePages(
    "qa",
    router,
    nav=(NavItem("问答", "/console/qa", Role.OPERATOR, 60),),
    home_panels=(HomePanel("qa", unanswered_panel, Role.OPERATOR, 40),),
    templates="bots.qa",
)
