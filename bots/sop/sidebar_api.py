"""`/sidebar/api/...`: what the staff sidebar asks, as the signed-in staff member.

POST /sidebar/api/jsapi/config | /jsapi/agent   {url} → {timestamp, nonceStr, signature}
GET  /sidebar/api/me                            who is signed in
GET  /sidebar/api/tasks                         my due and overdue 群SOP items, every chat
GET  /sidebar/api/groups/{chat_id}              the group's card (getCurExternalChat)
GET  /sidebar/api/groups/{chat_id}/scripts?q=   话术库 search, rendered for the group
POST /sidebar/api/tasks/{id}/sent | /skip       posted from the toolbar (once) / skipped
POST /sidebar/api/tasks/{id}/media              a media id for the item's image
GET  /sidebar/api/students/{external_userid}    the student's card (getCurExternalContact)
POST …/students/{id}/review · /xibao · PUT /tags · GET /images/{entry}/{n}
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.common import Actor
from app.admin.errors import Conflict, NotFound
from app.admin.members.service import change_tags
from app.api.admin.fields import Tag
from app.api.h5.deps import StorageDep
from app.deps import RuntimeDep
from app.models import OutboxMessage
from app.storage import content_type_of
from app.wecom.errors import WeComError
from bots.checkin import service as checkin
from bots.checkin.models import CheckinEntry
from bots.sop import cards, service
from bots.sop.rendering import personal_reminder, render_for_group, search_scripts
from bots.sop.sidebar_deps import NO_STORE, SidebarRoute, StaffDep
from bots.sop.views import card_json, item_json, student_json
from bots.sop.visibility import Hidden, can_see_chat, group_for, student_for
from bots.xibao import service as xibao

router = APIRouter(prefix="/sidebar/api", tags=["sidebar"], route_class=SidebarRoute)
Chat = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\x00-\x20\x7f]+$")]
ItemId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class UrlIn(BaseModel):
    url: str = Field(min_length=1, max_length=2048, description="location.href，不含 #")


class SignedOut(BaseModel):
    timestamp: int
    nonceStr: str  # the SDK's own spelling
    signature: str


async def _signed(runtime: RuntimeDep, url: str, *, agent: bool) -> SignedOut:
    if runtime.wecom is None:
        raise Conflict("CampBot 还没有配置企业微信（WECOM_CORP_ID、WECOM_SECRET）。")
    now = int(runtime.clock.now().timestamp())
    tickets = runtime.wecom.tickets
    try:
        signed = await (tickets.agent_config if agent else tickets.config)(url, timestamp=now)
    except WeComError as exc:
        raise Conflict(f"取不到 JS-SDK 票据：{exc.hint}") from exc
    return SignedOut(
        timestamp=signed.timestamp, nonceStr=signed.nonce_str, signature=signed.signature
    )


@router.post("/jsapi/config")
async def config_signature(body: UrlIn, staff: StaffDep, runtime: RuntimeDep) -> SignedOut:
    return await _signed(runtime, body.url, agent=False)


@router.post("/jsapi/agent")
async def agent_signature(body: UrlIn, staff: StaffDep, runtime: RuntimeDep) -> SignedOut:
    return await _signed(runtime, body.url, agent=True)


@router.get("/me")
async def me(staff: StaffDep) -> dict[str, str]:
    return {"userid": staff.userid}


@router.get("/tasks")
async def my_tasks(staff: StaffDep, runtime: RuntimeDep) -> dict[str, object]:
    async with runtime.sessions() as session:
        items = await service.my_items(
            session=session, staff_userid=staff.userid, now=runtime.clock.now()
        )
    return {"items": [item_json(i) for i in items]}


@router.get("/groups/{chat_id}")
async def group(chat_id: Chat, staff: StaffDep, runtime: RuntimeDep) -> dict[str, object]:
    async with runtime.sessions() as session:
        found = await group_for(session, staff.userid, chat_id)
        card = await cards.group_card(session=session, group=found, now=runtime.clock.now())
    return card_json(card)


@router.get("/groups/{chat_id}/scripts")
async def scripts(
    chat_id: Chat,
    staff: StaffDep,
    runtime: RuntimeDep,
    q: Annotated[str, Query(max_length=50)] = "",
) -> dict[str, object]:
    """话术库 search by key, title or text (no rendering: one script at a time, below)."""
    async with runtime.sessions() as session:
        await group_for(session, staff.userid, chat_id)
        found = await search_scripts(session=session, q=q)
    return {"items": found}


@router.get("/groups/{chat_id}/scripts/{key}")
async def script(
    chat_id: Chat,
    key: Annotated[str, Path(max_length=100, pattern=r"^[a-z0-9][a-z0-9_.-]*$")],
    staff: StaffDep,
    runtime: RuntimeDep,
) -> dict[str, object]:
    """One script rendered for this group, ready to send."""
    async with runtime.sessions() as session:
        found = await group_for(session, staff.userid, chat_id)
        return await render_for_group(
            session=session,
            group=found,
            key=key,
            now=runtime.clock.now(),
            default_tz=runtime.settings.campbot_timezone,
            providers=runtime.extensions.context_providers.values(),
        )


async def _visible_item(session: AsyncSession, userid: str, item_id: int) -> OutboxMessage:
    """The item, if its chat is one this staff member runs (else Hidden: 403)."""
    row, _ = await service.get_item(session=session, item_id=item_id)
    if not await can_see_chat(session, userid, row.target, str(row.payload.get("chat"))):
        raise Hidden
    return row


async def _close(
    item_id: int, staff: StaffDep, runtime: RuntimeDep, *, skip: bool
) -> dict[str, object]:
    async with runtime.sessions.begin() as session:
        await _visible_item(session, staff.userid, item_id)
        close = service.skip if skip else service.record_sent
        closed = await close(
            session=session, item_id=item_id, by=staff.userid, now=runtime.clock.now()
        )
    return {**item_json(closed.item), "recorded": closed.recorded}


@router.post("/tasks/{item_id}/sent")
async def sent(item_id: ItemId, staff: StaffDep, runtime: RuntimeDep) -> dict[str, object]:
    """`sendChatMessage` answered ok: recorded once, however often it is tapped."""
    return await _close(item_id, staff, runtime, skip=False)


@router.post("/tasks/{item_id}/skip")
async def skipped(item_id: ItemId, staff: StaffDep, runtime: RuntimeDep) -> dict[str, object]:
    return await _close(item_id, staff, runtime, skip=True)


@router.post("/tasks/{item_id}/media")
async def media(item_id: ItemId, staff: StaffDep, runtime: RuntimeDep) -> dict[str, str]:
    """The item's image uploaded (media/upload, reused 2.5 days) for `sendChatMessage`."""
    async with runtime.sessions() as session:
        row = await _visible_item(session, staff.userid, item_id)
    image = service.image_of(row)
    if not image or runtime.wecom is None:
        raise NotFound("这条内容没有图片。")
    try:
        media_id = await runtime.wecom.upload_media(
            kind="image", filename="image.png", content=image
        )
    except WeComError as exc:
        raise Conflict(f"图片上传失败：{exc.hint}") from exc
    return {"mediaid": media_id}


@router.get("/students/{external_userid}")
async def student(
    external_userid: Chat, staff: StaffDep, runtime: RuntimeDep
) -> dict[str, object]:
    now = runtime.clock.now()  # one clock reading: the card and its reminder agree
    async with runtime.sessions.begin() as session:
        member = await student_for(session, staff.userid, external_userid)
        card = await cards.student_card(
            session=session,
            member=member,
            now=now,
            public_base_url=runtime.settings.public_base_url,
        )
        reminder = await personal_reminder(
            session=session,
            card=card,
            now=now,
            public_base_url=runtime.settings.public_base_url,
            default_tz=runtime.settings.campbot_timezone,
        )
    return student_json(card, reminder)


class ReviewIn(BaseModel):
    entry_id: int = Field(ge=1, le=2**31 - 1)
    score: int = Field(ge=0, le=100)
    comment: str | None = Field(default=None, max_length=500)


@router.post("/students/{external_userid}/review")
async def review(
    external_userid: Chat, body: ReviewIn, staff: StaffDep, runtime: RuntimeDep
) -> dict[str, object]:
    """Review the student's homework from the chat (audited under the staff member's name)."""
    async with runtime.sessions.begin() as session:
        member = await student_for(session, staff.userid, external_userid)
        entry = await session.get(CheckinEntry, body.entry_id)
        if entry is None or entry.member_id != member.id:
            raise NotFound("这份作业不存在。")
        done = await checkin.review(
            session=session,
            actor=Actor(f"助教 {staff.userid}"),
            entry_id=body.entry_id,
            score=body.score,
            comment=body.comment,
            now=runtime.clock.now(),
            public_base_url=runtime.settings.public_base_url,
        )
    return {"entry_id": body.entry_id, "score": body.score, "notice_key": done.notice_key}


class XibaoIn(BaseModel):
    title: str = Field(min_length=1, max_length=100)
    detail: str = Field(default="", max_length=500)


@router.post("/students/{external_userid}/xibao", status_code=201)
async def report_xibao(
    external_userid: Chat, body: XibaoIn, staff: StaffDep, runtime: RuntimeDep
) -> dict[str, object]:
    """File a 喜报 for the student: it waits for an operator's approval, like a student's own."""
    async with runtime.sessions.begin() as session:
        member = await student_for(session, staff.userid, external_userid)
        filed = await xibao.report_achievement(
            session=session,
            member_id=member.id,
            title=body.title,
            detail=body.detail,
            now=runtime.clock.now(),
        )
    return {"id": filed.id, "status": filed.status}


class TagsIn(BaseModel):
    add: list[Tag] = Field(default_factory=list, max_length=20)
    remove: list[Tag] = Field(default_factory=list, max_length=20)


@router.put("/students/{external_userid}/tags")
async def tags(
    external_userid: Chat, body: TagsIn, staff: StaffDep, runtime: RuntimeDep
) -> dict[str, object]:
    async with runtime.sessions.begin() as session:
        member = await student_for(session, staff.userid, external_userid)
        view = await change_tags(
            session=session,
            actor=Actor(f"助教 {staff.userid}"),
            now=runtime.clock.now(),
            member_id=member.id,
            add=body.add,
            remove=body.remove,
        )
    return {"tags": list(view.tags)}


@router.get("/students/{external_userid}/images/{entry_id}/{n}", response_model=None)
async def image(
    external_userid: Chat,
    entry_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    n: Annotated[int, Path(ge=0, le=8)],
    staff: StaffDep,
    runtime: RuntimeDep,
    storage: StorageDep,
) -> Response:
    async with runtime.sessions() as session:
        member = await student_for(session, staff.userid, external_userid)
        entry = await session.get(CheckinEntry, entry_id)
    if entry is None or entry.member_id != member.id or n >= len(entry.images or []):
        raise NotFound("图片不存在。")
    key = str(entry.images[n])
    data = await storage.read(key)
    if data is None:
        raise NotFound("图片不存在。")
    return Response(data, media_type=content_type_of(key), headers=NO_STORE)
