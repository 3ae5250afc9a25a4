"""The forms of the student page: the entry's kind and day, and a small text-only form read
with its body capped while it streams in."""

from __future__ import annotations

from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.types import Message, Receive

from app.api.h5.uploads import UploadRefused, check_text_fields

KINDS = ("checkin", "homework", "leave")
# The 喜报 form: 100 + 500 characters, urlencoded (9 bytes a CJK character), with room to spare.
TEXT_FORM_MAX_BYTES = 64 * 1024


async def read_text_form(request: Request) -> dict[str, str]:
    """A small text-only form (urlencoded or multipart), its body capped while it streams in."""
    refused = UploadRefused(413, "form", "提交内容太大，请删减后再试")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > TEXT_FORM_MAX_BYTES:
        raise refused
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > TEXT_FORM_MAX_BYTES:
            raise refused
    replayed = Request(request.scope, _replay(bytes(body)))
    try:
        form = await replayed.form(max_files=0, max_fields=16)
    except (HTTPException, MultiPartException):
        # Starlette's own HTTPException (not FastAPI's subclass) for a malformed body or a
        # file part; MultiPartException when the scope carries no app.
        raise UploadRefused(400, "form", "表单格式不正确，请刷新页面后重试") from None
    try:
        fields = {name: value for name, value in form.multi_items() if isinstance(value, str)}
    finally:
        await form.close()
    check_text_fields(fields)
    return fields


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def kind_and_day(fields: dict[str, str]) -> tuple[str, int | None]:
    kind = fields.get("kind") or "checkin"
    if kind not in KINDS:
        raise UploadRefused(422, "kind", "kind 应为 checkin、homework 或 leave")
    raw_day = fields.get("day", "").strip()
    if not raw_day:
        return kind, None
    # isdecimal, not isdigit: "²" is a digit that int() refuses.
    if not raw_day.isdecimal() or len(raw_day) > 4:
        raise UploadRefused(422, "day", "day 应为训练营的第几天（整数）")
    return kind, int(raw_day)
