"""素材: POST /cgi-bin/media/upload (temporary, 3 days), /cgi-bin/media/uploadimg, and
GET /cgi-bin/media/get (a temporary media's bytes)."""

from __future__ import annotations

from collections.abc import Callable

from app.wecom_sandbox.errcodes import WeComError
from app.wecom_sandbox.media_rules import is_amr, is_jpg_or_png, is_mp4
from app.wecom_sandbox.multipart import FilePart
from app.wecom_sandbox.records import FileBody, Json
from app.wecom_sandbox.request import ApiRequest
from app.wecom_sandbox.state import SandboxState, new_id

MIN_BYTES = 5
MB = 1024 * 1024
# path/96484: (max bytes, errcode when over, format check) per type.
UPLOAD_RULES: dict[str, tuple[int, int, Callable[[bytes], bool] | None]] = {
    "image": (10 * MB, 40009, is_jpg_or_png),
    "voice": (2 * MB, 45001, is_amr),
    "video": (10 * MB, 40011, is_mp4),
    "file": (20 * MB, 45001, None),
}
UPLOADIMG_MAX_BYTES = 2 * MB  # commonly quoted; the page does not say


def _media_part(req: ApiRequest) -> FilePart:
    part = req.file("media")
    if part is None or not part.data:
        raise WeComError(44001)
    if len(part.data) < MIN_BYTES:
        raise WeComError(40006)
    return part


def media_upload(state: SandboxState, req: ApiRequest) -> Json:
    media_type = req.query.get("type", "")
    rule = UPLOAD_RULES.get(media_type)
    if rule is None:
        raise WeComError(40005)
    part = _media_part(req)
    max_bytes, too_big, looks_right = rule
    if len(part.data) > max_bytes:
        raise WeComError(too_big)
    if looks_right is not None and not looks_right(part.data):
        raise WeComError(40004)
    media = state.add_media(media_type, len(part.data), filename=part.filename, data=part.data)
    return {
        "type": media_type,
        "media_id": media.media_id,
        "created_at": str(int(media.created_at.timestamp())),
    }


def media_uploadimg(state: SandboxState, req: ApiRequest) -> Json:
    part = _media_part(req)
    if len(part.data) > UPLOADIMG_MAX_BYTES:
        raise WeComError(40009)
    if not is_jpg_or_png(part.data):
        raise WeComError(40004)
    return {"url": f"https://wework.qpic.cn/wwpic/{new_id('', 24)}/0"}


# What qyapi labels a file with (its Content-Type), by media type; images by their bytes.
_CONTENT_TYPES = {"voice": "audio/amr", "video": "video/mp4", "file": "application/octet-stream"}


def media_get(state: SandboxState, req: ApiRequest) -> FileBody:
    """The file itself; an unknown or expired (3 days) media_id, or a robot's, is 40007."""
    media = state.live_media(req.query.get("media_id", ""))
    if media is None:
        raise WeComError(40007)
    return FileBody(media.data, _content_type(media.type, media.data), media.filename)


def _content_type(media_type: str, data: bytes) -> str:
    if media_type != "image":
        return _CONTENT_TYPES.get(media_type, "application/octet-stream")
    if data.startswith(b"\x89PNG"):
        return "image/png"
    return "image/jpeg" if data.startswith(b"\xff\xd8") else "application/octet-stream"
