"""群机器人 webhook: keys, the 20-a-minute window, content rules, robot-only media."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from app.clock import ManualClock
from app.wecom_sandbox.state import SandboxState
from tests.wecom_sandbox.support import AMR, JPEG, PNG, SandboxApi, image_payload

KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"


def robot_text(content: str, **extra: Any) -> dict[str, Any]:
    return {"msgtype": "text", "text": {"content": content, **extra}}


async def upload(client: httpx.AsyncClient, key: str, data: bytes, kind: str = "file") -> Any:
    files = {"media": ("notes.pdf", data, "application/pdf")}
    r = await client.post(
        "/cgi-bin/webhook/upload_media", params={"key": key, "type": kind}, files=files
    )
    return r.json()


@pytest.fixture(autouse=True)
def robot(state: SandboxState) -> None:
    state.add_robot(KEY)


async def test_text_with_mentions(api: SandboxApi, state: SandboxState) -> None:
    body = robot_text(
        "打卡啦", mentioned_list=["zhangsan", "@all"], mentioned_mobile_list=["13800001111"]
    )
    assert await api.robot(KEY, body) == {"errcode": 0, "errmsg": "ok"}
    [delivery] = state.delivered("webhook")
    assert delivery.target == KEY
    assert delivery.mentioned == ("zhangsan", "@all", "13800001111")
    assert state.sent_messages() == [body]
    assert state.gettoken_count == 0


async def test_a_stray_access_token_is_rejected(
    client: httpx.AsyncClient, state: SandboxState
) -> None:
    r = await client.post(
        "/cgi-bin/webhook/send", params={"key": KEY, "access_token": "x"}, json=robot_text("hi")
    )
    assert r.json()["errcode"] == 40058
    assert state.deliveries == []


async def test_unknown_missing_and_removed_keys_are_93000(
    api: SandboxApi, client: httpx.AsyncClient, state: SandboxState
) -> None:
    assert (await api.robot("nope", robot_text("x")))["errcode"] == 93000
    r = await client.post("/cgi-bin/webhook/send", json=robot_text("x"))
    assert r.json()["errcode"] == 93000
    state.remove_robot(KEY)
    removed = await api.robot(KEY, robot_text("x"))
    assert removed["errcode"] == 93000
    assert removed["errmsg"].startswith("invalid webhook url, hint: [")


async def test_21st_message_in_a_minute_is_45009_and_the_window_slides(
    api: SandboxApi, state: SandboxState, clock: ManualClock
) -> None:
    for n in range(20):
        assert (await api.robot(KEY, robot_text(f"#{n}")))["errcode"] == 0
        clock.advance(timedelta(seconds=1))
    assert (await api.robot(KEY, robot_text("#20")))["errcode"] == 45009
    assert len(state.delivered("webhook")) == 20
    # 60 s after the first message one slot frees up; only one.
    clock.advance(timedelta(seconds=40))
    assert (await api.robot(KEY, robot_text("#21")))["errcode"] == 0
    assert (await api.robot(KEY, robot_text("#22")))["errcode"] == 45009
    other = "another-robot"
    state.add_robot(other)
    assert (await api.robot(other, robot_text("own window")))["errcode"] == 0


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        (robot_text(""), 44004),
        ({"msgtype": "text"}, 44004),
        (robot_text("a" * 2049), 40058),
        ({"msgtype": "markdown", "markdown": {"content": "a" * 4097}}, 40058),
        ({"msgtype": "voice_v2", "voice_v2": {}}, 40008),
        ({"msgtype": "image", "image": {"base64": "aGk=", "md5": "0" * 32}}, 301019),
        ({"msgtype": "image", "image": {"base64": "!!!", "md5": "0" * 32}}, 40058),
        ({"msgtype": "image", "image": image_payload(b"GIF89a" + b"\x00" * 20)}, 40004),
        ({"msgtype": "image", "image": image_payload(PNG + b"\x00" * (2 * 1024 * 1024))}, 40009),
        ({"msgtype": "news", "news": {"articles": []}}, 45008),
        ({"msgtype": "news", "news": {"articles": [{"title": "t", "url": "u"}] * 9}}, 45008),
        ({"msgtype": "file", "file": {}}, 41006),
        ({"msgtype": "file", "file": {"media_id": "unknown"}}, 40007),
        ({"msgtype": "template_card", "template_card": {"card_type": "vote"}}, 40058),
    ],
)
async def test_validation(
    api: SandboxApi, state: SandboxState, body: dict[str, Any], errcode: int
) -> None:
    assert (await api.robot(KEY, body))["errcode"] == errcode
    assert state.deliveries == []


async def test_length_errmsg_names_the_field(api: SandboxApi) -> None:
    body = await api.robot(KEY, {"msgtype": "markdown", "markdown": {"content": "长" * 1366}})
    assert body["errmsg"].startswith(
        "markdown.content exceed max length 4096. invalid Request Parameter, hint: ["
    )


@pytest.mark.parametrize(
    "body",
    [
        {"msgtype": "markdown", "markdown": {"content": "a" * 4096}},
        {"msgtype": "image", "image": image_payload(JPEG)},
        {"msgtype": "news", "news": {"articles": [{"title": "喜报", "url": "https://x"}] * 8}},
        {"msgtype": "template_card", "template_card": {"card_type": "text_notice"}},
    ],
)
async def test_accepted_shapes(api: SandboxApi, state: SandboxState, body: dict[str, Any]) -> None:
    assert (await api.robot(KEY, body))["errcode"] == 0
    assert state.delivered("webhook")[0].body == body


async def test_upload_media_then_send_file(
    api: SandboxApi, client: httpx.AsyncClient, state: SandboxState
) -> None:
    uploaded = await upload(client, KEY, b"%PDF-1.4 handout")
    assert (uploaded["errcode"], uploaded["type"]) == (0, "file")
    assert isinstance(uploaded["created_at"], str)
    assert uploaded["created_at"].isdigit()
    sent = await api.robot(KEY, {"msgtype": "file", "file": {"media_id": uploaded["media_id"]}})
    assert sent["errcode"] == 0
    [call] = state.calls_to("webhook/upload_media")
    assert call.files is not None
    assert call.files[0].size == len(b"%PDF-1.4 handout")


async def test_robot_media_is_usable_by_its_robot_only_and_for_3_days(
    api: SandboxApi, client: httpx.AsyncClient, state: SandboxState, clock: ManualClock
) -> None:
    state.add_robot("other")
    media_id = (await upload(client, KEY, b"%PDF-1.4 handout"))["media_id"]
    file_msg = {"msgtype": "file", "file": {"media_id": media_id}}
    assert (await api.robot("other", file_msg))["errcode"] == 40007
    clock.advance(timedelta(days=3))
    assert (await api.robot(KEY, file_msg))["errcode"] == 40007


async def test_voice_upload_must_be_amr(client: httpx.AsyncClient) -> None:
    assert (await upload(client, KEY, AMR, "voice"))["errcode"] == 0
    assert (await upload(client, KEY, b"RIFF....WAVE", "voice"))["errcode"] == 40004


@pytest.mark.parametrize(
    ("key", "data", "kind", "errcode"),
    [
        ("nope", b"", "file", 44001),  # probed: the file is checked before the key
        ("nope", b"hello", "file", 93000),
        (KEY, b"hello", "image", 40005),
        (KEY, b"hey", "file", 40006),
        (KEY, b"#!AMR" + b"\x00" * (2 * 1024 * 1024), "voice", 45001),
    ],
)
async def test_upload_validation(
    client: httpx.AsyncClient, key: str, data: bytes, kind: str, errcode: int
) -> None:
    assert (await upload(client, key, data, kind))["errcode"] == errcode


async def test_upload_without_a_media_part_is_44001(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/cgi-bin/webhook/upload_media",
        params={"key": KEY, "type": "file"},
        files={"file": ("a.txt", b"hello", "text/plain")},
    )
    assert r.json()["errcode"] == 44001
