"""media/upload (3-day media_id) and media/uploadimg; multipart read byte for byte."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from app.clock import ManualClock
from app.wecom_sandbox.state import SandboxState
from tests.wecom_sandbox.support import AGENT, AMR, JPEG, MP4, PNG, SandboxApi

MB = 1024 * 1024


@pytest.mark.parametrize(
    ("kind", "data"),
    [("image", PNG), ("image", JPEG), ("voice", AMR), ("video", MP4), ("file", b"%PDF")],
)
async def test_upload_answers_the_documented_shape(
    api: SandboxApi, state: SandboxState, kind: str, data: bytes
) -> None:
    body = await api.upload("media/upload", data + b"\r\n--tail", type=kind)
    # The documented sample answers errmsg "" and a string created_at.
    assert (body["errcode"], body["errmsg"], body["type"]) == (0, "", kind)
    assert body["created_at"] == str(int(state.clock.now().timestamp()))
    assert state.media[body["media_id"]].size == len(data) + len(b"\r\n--tail")


async def test_multipart_bytes_survive_exactly(api: SandboxApi, state: SandboxState) -> None:
    data = PNG + b"\r\n\r\n--boundary-lookalike\r\n" + bytes(range(256))
    await api.upload("media/upload", data, filename="打卡.png", type="image")
    [call] = state.calls_to("media/upload")
    assert call.files is not None
    [uploaded] = call.files
    assert (uploaded.field, uploaded.filename, uploaded.size) == ("media", "打卡.png", len(data))
    assert uploaded.md5 == hashlib.md5(data, usedforsecurity=False).hexdigest()


@pytest.mark.parametrize(
    ("kind", "data", "errcode"),
    [
        ("sticker", PNG, 40005),
        ("image", b"", 44001),
        ("file", b"abcd", 40006),
        ("image", b"GIF89a-not-allowed", 40004),
        ("voice", b"RIFF-wave-not-amr", 40004),
        ("video", b"not an mp4 at all", 40004),
        ("image", PNG + b"\x00" * (10 * MB), 40009),
        ("video", MP4 + b"\x00" * (10 * MB), 40011),
        ("voice", AMR + b"\x00" * (2 * MB), 45001),
        ("file", b"\x00" * (20 * MB + 1), 45001),
    ],
)
async def test_upload_validation(
    api: SandboxApi, state: SandboxState, kind: str, data: bytes, errcode: int
) -> None:
    assert (await api.upload("media/upload", data, type=kind))["errcode"] == errcode
    assert state.media == {}


async def test_media_id_expires_after_3_days(
    api: SandboxApi, state: SandboxState, clock: ManualClock
) -> None:
    state.token_lifetime = 10 * 86400
    media_id = (await api.upload("media/upload", PNG, type="image"))["media_id"]
    message = {
        "touser": "zhangsan",
        "agentid": AGENT,
        "msgtype": "image",
        "image": {"media_id": media_id},
    }
    clock.advance(timedelta(days=3) - timedelta(seconds=1))
    assert (await api.post("message/send", message))["errcode"] == 0
    clock.advance(timedelta(seconds=1))
    assert (await api.post("message/send", message))["errcode"] == 40007


async def test_media_type_must_fit_the_message(api: SandboxApi) -> None:
    media_id = (await api.upload("media/upload", b"%PDF-1.4", type="file"))["media_id"]
    as_image = {
        "touser": "zhangsan",
        "agentid": AGENT,
        "msgtype": "image",
        "image": {"media_id": media_id},
    }
    as_file = {
        "touser": "zhangsan",
        "agentid": AGENT,
        "msgtype": "file",
        "file": {"media_id": media_id},
    }
    assert (await api.post("message/send", as_image))["errcode"] == 40007
    assert (await api.post("message/send", as_file))["errcode"] == 0


async def test_uploadimg_answers_a_permanent_url(api: SandboxApi) -> None:
    body = await api.upload("media/uploadimg", JPEG)
    assert body["errcode"] == 0
    assert body["url"].startswith("https://wework.qpic.cn/wwpic/")


@pytest.mark.parametrize(
    ("data", "errcode"), [(b"", 44001), (b"GIF89a-nope", 40004), (PNG + b"\x00" * (2 * MB), 40009)]
)
async def test_uploadimg_validation(api: SandboxApi, data: bytes, errcode: int) -> None:
    assert (await api.upload("media/uploadimg", data))["errcode"] == errcode
