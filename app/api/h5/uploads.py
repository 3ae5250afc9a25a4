"""Reading an H5 form post with images, within limits, before anything is stored.

The whole body is capped while it streams in (before and during multipart parsing), each
image is capped, and an image's type is what Pillow finds in its bytes (JPEG, PNG, GIF or
WebP), never the client's Content-Type or file name. What is kept of an image is its bytes
without identifying metadata (GPS, camera, times, thumbnails: `app.image_metadata`), and
its storage key is the SHA-256 of those. Every refusal is an UploadRefused with a Chinese
message for the student and the HTTP status to answer.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import Request
from PIL import Image
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import (
    HTTPException,  # FastAPI's is a subclass; multipart errors raise this
)
from starlette.types import Message

from app.image_metadata import MetadataError, strip_metadata
from app.storage import content_key

MAX_IMAGES = 9
MAX_IMAGE_MB = 10
MAX_IMAGE_BYTES = MAX_IMAGE_MB * 1024 * 1024
MAX_TEXT_CHARS = 2000
# Nine full-size images plus room for the text fields and multipart framing.
MAX_BODY_BYTES = MAX_IMAGES * MAX_IMAGE_BYTES + 1024 * 1024
# Far below what the body cap allows anyway; more parts than this is not our form.
_MAX_PARTS = 64
# Pillow's formats, and the content type each is stored and served as.
FORMATS: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}
# Control characters no keyboard types (NUL above all: PostgreSQL refuses it), and lone
# surrogates, which no UTF-8 database takes (a multipart `charset=raw_unicode_escape` makes them).
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
# A 10 MB file can still unpack to a huge bitmap; phones shoot well under this.
MAX_PIXELS = 60_000_000


class UploadRefused(Exception):
    def __init__(self, status_code: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class CheckedImage:
    data: bytes  # as stored: without identifying metadata
    content_type: str  # from the bytes
    key: str = ""  # its storage key (`content_key`), hashed with the check, off the loop

    def storage_key(self) -> str:
        return self.key or content_key(self.data, self.content_type)


@dataclass(frozen=True, slots=True)
class Submission:
    fields: dict[str, str]  # the text fields, last value wins
    images: tuple[CheckedImage, ...]


class _BodyTooLarge(Exception):
    pass


def _too_large() -> UploadRefused:
    return UploadRefused(
        413, "images", f"提交内容太大：最多 {MAX_IMAGES} 张图片，每张不超过 {MAX_IMAGE_MB} MB"
    )


def _capped(request: Request, limit: int) -> Request:
    """The same request whose body stream fails once more than `limit` bytes came in
    (a Content-Length can lie, or be absent with chunked encoding)."""
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLarge
        return message

    return Request(request.scope, receive)


async def _parse(request: Request) -> FormData:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    try:
        return await _capped(request, MAX_BODY_BYTES).form(
            max_files=_MAX_PARTS, max_fields=_MAX_PARTS
        )
    except _BodyTooLarge:
        raise _too_large() from None
    except HTTPException:  # Starlette's answer to a malformed multipart body
        raise UploadRefused(400, "form", "表单格式不正确，请刷新页面后重试") from None


async def read_submission(request: Request) -> Submission:
    """The form's fields and its checked images; UploadRefused for anything over a limit."""
    form = await _parse(request)
    try:
        fields: dict[str, str] = {}
        uploads: list[UploadFile] = []
        for name, value in form.multi_items():
            if isinstance(value, str):
                fields[name] = value
            elif name == "images" and (value.size or value.filename):
                uploads.append(value)  # an empty, unnamed part is "no file chosen"
        check_text_fields(fields)
        if len(fields.get("text", "")) > MAX_TEXT_CHARS:
            raise UploadRefused(
                422, "text", f"文字最多 {MAX_TEXT_CHARS} 字，现在是 {len(fields['text'])} 字"
            )
        return Submission(fields=fields, images=await _read_images(uploads))
    finally:
        await form.close()


def check_text_fields(fields: dict[str, str]) -> None:
    """UploadRefused (422) naming the first field with a character no database stores
    (a control character, a lone surrogate) in it."""
    for name, value in fields.items():
        if _UNSTORABLE.search(value):
            raise UploadRefused(422, name, "内容里有无法保存的特殊字符，请删除后再试")


async def _read_images(uploads: Sequence[UploadFile]) -> tuple[CheckedImage, ...]:
    if len(uploads) > MAX_IMAGES:
        raise UploadRefused(
            422, "images", f"最多上传 {MAX_IMAGES} 张图片，这次选了 {len(uploads)} 张"
        )
    blobs: list[bytes] = []
    for number, upload in enumerate(uploads, start=1):
        if upload.size is not None and upload.size > MAX_IMAGE_BYTES:
            raise _oversized(number)
        data = await upload.read(MAX_IMAGE_BYTES + 1)
        if len(data) > MAX_IMAGE_BYTES:
            raise _oversized(number)
        blobs.append(data)
    # Pillow parses headers and checksums, the metadata walk reads the whole file and the
    # storage key is a SHA-256 of it: all off the event loop, in one trip to the thread pool.
    checked = await asyncio.to_thread(lambda: [_check(blob) for blob in blobs])
    for number, found in enumerate(checked, start=1):
        if found is None:
            raise UploadRefused(
                415, "images", f"第 {number} 个文件不是图片（支持 JPEG、PNG、GIF、WebP）"
            )
        if found == "":
            raise UploadRefused(422, "images", f"第 {number} 张图片的尺寸太大")
    return tuple(image for image in checked if isinstance(image, CheckedImage))


def check_image(data: bytes) -> CheckedImage:
    """One image from elsewhere (an image a member sent the app) checked as an upload is:
    size, type by content, pixels; UploadRefused with the reason otherwise. Blocking (Pillow,
    metadata, SHA-256): call it in a thread."""
    if len(data) > MAX_IMAGE_BYTES:
        raise UploadRefused(413, "images", f"图片超过 {MAX_IMAGE_MB} MB")
    found = _check(data)
    if found is None:
        raise UploadRefused(415, "images", "不是图片（支持 JPEG、PNG、GIF、WebP）")
    if not isinstance(found, CheckedImage):
        raise UploadRefused(422, "images", "图片的尺寸太大")
    return found


def _check(data: bytes) -> CheckedImage | str | None:
    """The image as it is kept (identifying metadata stripped, keyed by the stripped bytes);
    None when it is no image we take (or one too malformed to strip); "" when too large."""
    found = image_type(data)
    if not found:
        return found
    try:
        kept = strip_metadata(data, found)
    except MetadataError:
        return None
    return CheckedImage(data=kept, content_type=found, key=content_key(kept, found))


def _oversized(number: int) -> UploadRefused:
    return UploadRefused(413, "images", f"第 {number} 张图片超过 {MAX_IMAGE_MB} MB")


def image_type(data: bytes) -> str | None:
    """The content type Pillow finds in `data` (JPEG, PNG, GIF, WebP); None when it is none
    of these or is broken; "" when it is an image of more than MAX_PIXELS."""
    try:
        with Image.open(io.BytesIO(data), formats=list(FORMATS)) as image:
            found = FORMATS.get(image.format or "")
            width, height = image.size
            image.verify()
    except Image.DecompressionBombError:
        return ""
    # Pillow raises many types (OSError, SyntaxError, struct.error, ...) on malformed input.
    except Exception:
        return None
    if found is not None and width * height > MAX_PIXELS:
        return ""
    return found
