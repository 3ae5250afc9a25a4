"""The student's personal H5 page: `GET /h5/m/{token}`, `POST /h5/m/{token}/checkin`,
the FAQ search `GET /h5/m/{token}/faq?q=…` and the 喜报 report `POST /h5/m/{token}/achievements`.

POST takes a multipart (or urlencoded) form: `text`, `images` (0-9 files), `kind` =
`checkin` (default) | `homework` | `leave`, and `day` (a past camp day: 补卡; absent: today).
A browser form gets a 303 back to the page with `?ok=<what>` on success, and the page itself
with a 4xx status and the reason on a refusal. A client sending `Accept: application/json`
gets JSON: 200 `{"ok": true, "created", "entry", "standing", "milestone_bonus"}`, or the
4xx with `{"detail": [{"field", "message"}]}` as the admin API words its refusals.

The FAQ search shows the page with the answers (JSON: a list of `{rule_id, question,
answer}`); a query nothing answers is counted as unanswered, as app questions are. A 喜报
report (`title`, `detail`) is stored pending an operator's approval, then 303 to the page
with `?ok=achievement`, or JSON `{"ok": true, "achievement"}`.

A refusal stores nothing: images are checked and keyed (SHA-256) first, the entry is
recorded under those keys, and the files are written only once the submission was accepted
(never deleted: content-addressed files may be shared by several entries).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin import h5_tokens
from app.admin.errors import InvalidInput
from app.api.h5.deps import H5RuntimeDep, MemberIdDep, StorageDep
from app.api.h5.route_class import PRIVATE_HEADERS, H5Route, wants_json
from app.api.h5.uploads import UploadRefused, check_text_fields, read_submission
from app.deps import SessionDep
from app.runtime import Runtime
from app.storage import Storage, content_type_of, is_key
from bots.checkin.service import CheckinError, SubmitResult
from bots.student_page import forms, view
from bots.student_page import service as page_service
from bots.xibao import service as xibao_service

router = APIRouter(prefix="/h5", tags=["h5"], route_class=H5Route)

_IMAGE_HEADERS = {
    # Content-addressed: a key's bytes never change. Private: only its owner may fetch it.
    "Cache-Control": "private, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
}


@router.get("/m/{token}", response_class=HTMLResponse)
async def personal_page(
    token: str,
    member_id: MemberIdDep,
    session: SessionDep,
    runtime: H5RuntimeDep,
    storage: StorageDep,
    ok: str | None = None,
) -> Response:
    """学员的个人页：今日任务、打卡与作业、连续天数、积分与排名、排行榜。"""
    return await _page(
        session=session,
        runtime=runtime,
        storage=storage,
        token=token,
        member_id=member_id,
        flash=view.FLASHES.get(ok or ""),
    )


@router.post("/m/{token}/checkin", response_model=None)
async def submit_entry(
    request: Request,
    token: str,
    member_id: MemberIdDep,
    session: SessionDep,
    runtime: H5RuntimeDep,
    storage: StorageDep,
) -> Response:
    """打卡、交作业、补卡（`day`）或请假（`kind=leave`）。"""
    fields: dict[str, str] = {}
    # Hand the connection back while the body streams in and its images are checked: on
    # SQLite the app has one, and a slow phone upload must not hold every other request.
    await session.rollback()
    try:
        submission = await read_submission(request)
        fields = submission.fields
        kind, day = forms.kind_and_day(fields)
        text = fields.get("text", "").strip()
        if kind != "leave" and not text and not submission.images:
            raise UploadRefused(422, "text", "请写点什么或上传图片")
        result = await page_service.record_submission(
            session=session,
            storage=storage,
            member_id=member_id,
            kind=kind,
            day=day,
            text=text,
            images=submission.images if kind != "leave" else (),
            now=runtime.clock.now(),
        )
    except (UploadRefused, CheckinError) as refusal:
        status, field = (
            (refusal.status_code, refusal.field)
            if isinstance(refusal, UploadRefused)
            else (409, refusal.field or "form")
        )
        if wants_json(request):
            body = {"detail": [{"field": field, "message": refusal.message}]}
            return JSONResponse(body, status_code=status, headers=PRIVATE_HEADERS)
        return await _page(
            session=session,
            runtime=runtime,
            storage=storage,
            token=token,
            member_id=member_id,
            error=refusal.message,
            status_code=status,
            draft_kind=fields.get("kind") or "checkin",
            draft_text=fields.get("text", ""),
        )
    if wants_json(request):
        return JSONResponse(
            _result_json(result, storage=storage, token=token), headers=PRIVATE_HEADERS
        )
    return RedirectResponse(
        f"/h5/m/{token}?ok={_flash_key(kind, day, result)}#{_anchor(kind)}",
        status_code=303,
        headers=PRIVATE_HEADERS,
    )


@router.get("/m/{token}/checkin", response_model=None)
@router.get("/m/{token}/achievements", response_model=None)
async def back_to_page(token: str, member_id: MemberIdDep) -> Response:
    """A GET of a form's address (a refusal leaves the browser there; a reload or a shared
    link asks again): the page, not an English 405. The token is checked all the same."""
    return RedirectResponse(f"/h5/m/{token}", status_code=303, headers=PRIVATE_HEADERS)


@router.get("/m/{token}/img/{key}", response_model=None)
async def entry_image(
    token: str, key: str, member_id: MemberIdDep, session: SessionDep, storage: StorageDep
) -> Response:
    """An image of one of the member's own entries; 404 for any other key, stored or not."""
    not_found = Response(status_code=404, headers=PRIVATE_HEADERS)
    if not is_key(key) or not await page_service.owns_image(session, member_id=member_id, key=key):
        return not_found
    direct = storage.url(key)
    if direct is not None:
        return RedirectResponse(direct, status_code=307, headers=PRIVATE_HEADERS)
    data = await storage.read(key)
    if data is None:
        return not_found
    return Response(data, media_type=content_type_of(key), headers=_IMAGE_HEADERS)


@router.get("/m/{token}/faq", response_model=None)
async def faq_search(
    request: Request,
    token: str,
    member_id: MemberIdDep,
    session: SessionDep,
    runtime: H5RuntimeDep,
    storage: StorageDep,
    q: str = "",
) -> Response:
    """常见问题搜索：本期与全局的问答规则；没人回答过的问题记入「未解答」。"""
    query = q.strip()
    try:
        check_text_fields({"q": query})
        if len(query) > view.FAQ_QUERY_MAX:
            message = f"问题最多 {view.FAQ_QUERY_MAX} 字，现在是 {len(query)} 字"
            raise UploadRefused(422, "q", message)
    except UploadRefused as refusal:
        return await _refusal(
            request,
            field=refusal.field,
            message=refusal.message,
            page=_PageArgs(session, runtime, storage, token, member_id),
        )
    entries = await page_service.search_faq(
        session=session, member_id=member_id, query=query, now=runtime.clock.now()
    )
    if wants_json(request):
        return JSONResponse([asdict(entry) for entry in entries], headers=PRIVATE_HEADERS)
    return await _page(
        session=session,
        runtime=runtime,
        storage=storage,
        token=token,
        member_id=member_id,
        faq=view.Faq(query=query, entries=tuple(entries)),
    )


@router.post("/m/{token}/achievements", response_model=None)
async def report_achievement(
    request: Request,
    token: str,
    member_id: MemberIdDep,
    session: SessionDep,
    runtime: H5RuntimeDep,
    storage: StorageDep,
) -> Response:
    """「我有喜报」：学员自己报喜，助教审核后在群里发。"""
    await session.rollback()  # as in submit_entry: no connection held while the body comes in
    fields: dict[str, str] = {}
    try:
        fields = await forms.read_text_form(request)
        title, detail = fields.get("title", ""), fields.get("detail", "")
        if len(detail.strip()) > view.REPORT_DETAIL_MAX:
            raise InvalidInput("detail", f"喜报详情不能超过 {view.REPORT_DETAIL_MAX} 个字。")
        achievement = await xibao_service.report_achievement(
            session=session,
            member_id=member_id,
            title=title,
            detail=detail,
            now=runtime.clock.now(),
        )
        await session.commit()
    except (UploadRefused, InvalidInput) as refusal:
        await session.rollback()
        field, status = (
            (refusal.field, refusal.status_code)
            if isinstance(refusal, UploadRefused)
            else (refusal.problems[0].field, 422)
        )
        return await _refusal(
            request,
            field=field,
            message=refusal.message,
            page=_PageArgs(session, runtime, storage, token, member_id),
            status_code=status,
            report=view.ReportDraft(fields.get("title", ""), fields.get("detail", "")),
        )
    if wants_json(request):
        body = {
            "ok": True,
            "achievement": {
                "id": achievement.id,
                "title": achievement.title,
                "detail": achievement.detail,
                "status": achievement.status,
                "created_at": achievement.created_at.isoformat(),
            },
        }
        return JSONResponse(body, headers=PRIVATE_HEADERS)
    return RedirectResponse(
        f"/h5/m/{token}?ok=achievement#xibao", status_code=303, headers=PRIVATE_HEADERS
    )


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True, slots=True)
class _PageArgs:
    """What re-rendering the page for a refusal needs."""

    session: AsyncSession
    runtime: Runtime
    storage: Storage
    token: str
    member_id: int


async def _refusal(
    request: Request,
    *,
    field: str,
    message: str,
    page: _PageArgs,
    status_code: int = 422,
    report: view.ReportDraft | None = None,
) -> Response:
    """A refusal: JSON `{"detail": [{"field", "message"}]}`, or the page with the reason."""
    if wants_json(request):
        body = {"detail": [{"field": field, "message": message}]}
        return JSONResponse(body, status_code=status_code, headers=PRIVATE_HEADERS)
    return await _page(
        session=page.session,
        runtime=page.runtime,
        storage=page.storage,
        token=page.token,
        member_id=page.member_id,
        error=message,
        status_code=status_code,
        report=report,
    )


def _image_url(storage: Storage, token: str) -> Callable[[str], str]:
    def url(key: str) -> str:
        return storage.url(key) or f"/h5/m/{token}/img/{key}"

    return url


def _flash_key(kind: str, day: int | None, result: SubmitResult) -> str:
    if kind == "leave":
        return "leave"
    if kind == "checkin" and day is not None:
        return "makeup"
    return kind if result.created else f"{kind}-updated"


def _anchor(kind: str) -> str:
    return "homework" if kind == "homework" else "checkin"


def _result_json(result: SubmitResult, *, storage: Storage, token: str) -> dict[str, Any]:
    url = _image_url(storage, token)
    entry = asdict(result.entry)
    entry["images"] = [{"key": key, "url": url(key)} for key in result.entry.images]
    entry["submitted_at"] = result.entry.submitted_at.isoformat()
    entry["updated_at"] = result.entry.updated_at.isoformat()
    return {
        "ok": True,
        "created": result.created,
        "entry": entry,
        "standing": asdict(result.standing),
        "milestone_bonus": result.milestone_bonus,
    }


async def _page(
    *,
    session: AsyncSession,
    runtime: Runtime,
    storage: Storage,
    token: str,
    member_id: int,
    flash: str | None = None,
    error: str | None = None,
    status_code: int = 200,
    draft_kind: str | None = None,
    draft_text: str = "",
    faq: view.Faq | None = None,
    report: view.ReportDraft | None = None,
) -> Response:
    nonce = view.new_nonce()
    headers = view.page_headers(nonce)
    now = runtime.clock.now()
    try:
        page = await page_service.member_page(
            session=session,
            member_id=member_id,
            now=now,
            h5_url=h5_tokens.h5_url(runtime.settings.public_base_url, token),
        )
    except CheckinError:  # the member is in no cohort (the only refusal a page has)
        body = view.render_message("还没有加入训练营", "你还没有加入训练营，请联系助教。")
        return HTMLResponse(body, status_code=status_code, headers=headers)
    tz = ZoneInfo(page.timezone or runtime.settings.campbot_timezone)
    body = view.render_page(
        page,
        token=token,
        tz=tz,
        phase=view.phase(page, start_date=page.start_date, today=now.astimezone(tz).date()),
        image_url=_image_url(storage, token),
        nonce=nonce,
        flash=flash,
        error=error,
        draft_kind=draft_kind,
        draft_text=draft_text,
        faq=faq,
        report=report,
    )
    return HTMLResponse(body, status_code=status_code, headers=headers)
