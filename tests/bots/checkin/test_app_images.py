"""Images sent to the app 1:1, end to end through /wecom/callback: downloaded with media/get
before the event's transaction, checked as H5 uploads are, stored in the storage the H5 page
serves from; expired or non-image media still count the check-in and say so; a WeCom
outage leaves the event to the sweeper. Plus `WeComClient.get_media` against the sandbox."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import schedules.models  # noqa: F401 - cohort hooks re-plan schedules: their tables
from app import inbox, inbox_recovery
from app.admin import h5_tokens
from app.clock import ManualClock
from app.models import InboxEvent
from app.sender import Sender
from app.settings import Settings
from app.storage import FolderStorage
from app.wecom.client import WeComClient
from app.wecom.errors import WeComAPIError, WeComTransportError
from app.wecom_sandbox.sender import CallbackSender
from app.wecom_sandbox.server import sandbox_transport
from app.wecom_sandbox.state import SandboxState
from bots.checkin import service
from bots.checkin.models import CheckinEntry, EntryKind
from tests.bots.checkin.camp import make_cohort, make_member
from tests.images import assert_private, phone_jpeg, pixels
from tests.support import AES_KEY, AGENT_ID, APP_SECRET, CORP_ID, TOKEN, AppHarness, running_app

Sessions = async_sessionmaker[AsyncSession]
STUDENT, STRANGER = "lisi", "wangwu"
START = date(2026, 2, 28)  # the test clock's 2026-03-01 17:00 Shanghai is day 1
MEDIA_GET = "/cgi-bin/media/get"
SAVED_NOTE = re.compile(r"⚠️ 图片没能保存（(?P<reason>.+)），请重新发送图片。")


def image(color: tuple[int, int, int], fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (12, 12), color).save(buffer, format=fmt)
    return buffer.getvalue()


def key_of(data: bytes, extension: str = "jpg") -> str:
    return f"{hashlib.sha256(data).hexdigest()}.{extension}"


@dataclass
class Camp:
    harness: AppHarness
    sandbox: SandboxState
    wecom: CallbackSender
    sessions: Sessions
    clock: ManualClock
    storage: FolderStorage
    token: str

    @property
    def sender(self) -> Sender:
        sender: Sender | None = self.harness.app.state.runtime.sender
        assert sender is not None
        return sender

    async def send_image(self, userid: str, data: bytes) -> None:
        sent = await self.wecom.image_from_member(userid, data)
        assert sent.response.status_code == 200

    async def replies(self) -> list[str]:
        for _ in range(12):
            await self.sender.run_once()
            self.clock.advance(timedelta(seconds=3))
        return [call.json["text"]["content"] for call in self.sandbox.calls_to("message/send")]

    async def entries(self) -> list[CheckinEntry]:
        async with self.sessions() as session:
            rows = await session.scalars(select(CheckinEntry).order_by(CheckinEntry.id))
            return list(rows)

    async def statuses(self) -> list[str]:
        async with self.sessions() as session:
            rows = await session.scalars(select(InboxEvent.status).order_by(InboxEvent.id))
            return [str(status) for status in rows]


@pytest.fixture
def storage(upload_folder: FolderStorage) -> FolderStorage:
    """The app's storage for handlers and the H5 page alike (conftest's per-test folder)."""
    return upload_folder


@pytest.fixture
async def camp(
    settings: Settings,
    clock: ManualClock,
    engine: AsyncEngine,
    sessions: Sessions,
    storage: FolderStorage,
) -> AsyncIterator[Camp]:
    sandbox = SandboxState(corp_id=CORP_ID, apps={AGENT_ID: APP_SECRET}, clock=clock)
    sandbox.add_user(STUDENT, "李四")
    sandbox.add_user(STRANGER, "王五")
    async with sessions.begin() as session:
        cohort = await make_cohort(session, start=START)
        member = await make_member(session, cohort, "李四", userid=STUDENT)
        tokens = await h5_tokens.tokens_for(
            session=session, member_ids=[member.id], now=clock.now()
        )
        token = tokens[member.id]
    async with running_app(
        settings=settings,
        clock=clock,
        engine=engine,
        wecom_transport=sandbox_transport(sandbox),
        sender=False,
    ) as harness:
        wecom = CallbackSender(
            sandbox, harness.client, token=TOKEN, encoding_aes_key=AES_KEY, agent_id=AGENT_ID
        )
        yield Camp(harness, sandbox, wecom, sessions, clock, storage, token)


async def test_an_image_is_downloaded_stored_and_shown_on_the_page(camp: Camp) -> None:
    red, blue = image((200, 20, 20)), image((20, 20, 200), fmt="PNG")

    await camp.send_image(STUDENT, red)
    await camp.wecom.text_from_member(STUDENT, "打卡：配图是今天的笔记")
    await camp.send_image(STUDENT, blue)
    await camp.send_image(STUDENT, red)  # the same image again is not added twice

    [entry] = await camp.entries()
    assert entry.text == "配图是今天的笔记"
    assert entry.images == [key_of(red), key_of(blue, "png")]
    assert camp.storage.keys() == sorted(entry.images)
    assert len(camp.sandbox.calls_to(MEDIA_GET)) == 3
    replies = await camp.replies()
    assert len(replies) == 4
    assert replies[0].startswith("✅ 打卡成功（第 1 天）")
    assert not any(SAVED_NOTE.search(text) for text in replies)

    page = await camp.harness.client.get(f"/h5/m/{camp.token}")
    assert f'<img src="/h5/m/{camp.token}/img/{key_of(red)}"' in page.text
    assert "图片在企业微信里" not in page.text
    served = await camp.harness.client.get(f"/h5/m/{camp.token}/img/{key_of(blue, 'png')}")
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert served.content == blue


async def test_expired_media_still_checks_in_and_says_the_image_was_not_saved(
    camp: Camp,
) -> None:
    stale = camp.sandbox.add_member_image(image((1, 2, 3)))
    camp.clock.advance(timedelta(days=3))  # WeCom keeps temporary media 3 days

    await camp.wecom.image_from_member(STUDENT, b"", media_id=stale)

    [entry] = await camp.entries()
    assert (entry.day, entry.text, entry.images) == (4, "打卡", [])
    [reply] = await camp.replies()
    assert reply.startswith("✅ 打卡成功（第 4 天）")
    found = SAVED_NOTE.search(reply)
    assert found is not None
    assert found["reason"] == "图片已过期"
    assert camp.storage.keys() == []
    assert await camp.statuses() == ["handled"]


async def test_bytes_that_are_no_image_keep_the_days_text(camp: Camp) -> None:
    await camp.wecom.text_from_member(STUDENT, "打卡 今天的笔记")
    await camp.send_image(STUDENT, b"%PDF-1.7 not a picture at all")

    [entry] = await camp.entries()
    assert (entry.text, entry.images) == ("今天的笔记", [])
    replies = await camp.replies()
    found = SAVED_NOTE.search(replies[-1])
    assert found is not None
    assert found["reason"] == "不是图片（支持 JPEG、PNG、GIF、WebP）"
    assert camp.storage.keys() == []


async def test_wecom_down_leaves_the_event_to_the_sweeper(camp: Camp) -> None:
    picture = image((5, 150, 5))
    camp.sandbox.respond_5xx(MEDIA_GET)

    await camp.send_image(STUDENT, picture)

    assert await camp.entries() == []
    assert await camp.statuses() == ["received"]  # nothing ran, nothing was written
    assert await camp.replies() == []
    camp.clock.advance(inbox.STUCK_AFTER + timedelta(seconds=1))
    runtime = camp.harness.app.state.runtime
    swept = await inbox_recovery.sweep_once(
        sessions=runtime.sessions, processor=runtime.processor, clock=camp.clock
    )

    assert swept == 1
    [entry] = await camp.entries()
    assert entry.images == [key_of(picture)]
    assert camp.storage.keys() == [key_of(picture)]
    assert await camp.statuses() == ["handled"]
    [reply] = await camp.replies()
    assert reply.startswith("✅ 打卡成功")


async def test_a_refused_checkin_writes_no_file(camp: Camp) -> None:
    pictures = [image((n, n, n)) for n in range(10, 20)]
    for picture in pictures:
        await camp.send_image(STUDENT, picture)

    [entry] = await camp.entries()
    assert entry.images == [key_of(p) for p in pictures[:9]]
    assert camp.storage.keys() == sorted(entry.images)  # the tenth was never written
    replies = await camp.replies()
    assert len(replies) == 10
    assert [text for text in replies if text.startswith("打卡没有成功：")] == [
        "打卡没有成功：最多上传 9 张图片，现在有 10 张。"
    ]


async def test_an_image_from_someone_in_no_camp_is_not_stored(camp: Camp) -> None:
    await camp.send_image(STRANGER, image((9, 9, 9)))

    assert await camp.entries() == []
    assert camp.storage.keys() == []
    assert await camp.replies() == []
    assert await camp.statuses() == ["handled"]


async def test_a_photo_sent_to_the_app_is_stored_without_its_location(camp: Camp) -> None:
    photo = phone_jpeg(orientation=6)

    await camp.send_image(STUDENT, photo)

    [entry] = await camp.entries()
    [key] = entry.images
    kept = await camp.storage.read(key)
    assert kept is not None
    assert key == key_of(kept)
    assert_private(kept, orientation=6)
    assert pixels(kept) == pixels(photo)
    served = await camp.harness.client.get(f"/h5/m/{camp.token}/img/{key}")
    assert served.content == kept


async def test_old_wecom_references_show_as_a_chip(camp: Camp) -> None:
    picture = image((90, 90, 90))
    stored = await camp.storage.put(picture, "image/jpeg")
    async with camp.sessions.begin() as session:
        member_id = int(camp.token.split(".", 1)[0])
        await service.submit(
            session=session,
            member_id=member_id,
            kind=EntryKind.CHECKIN,
            text="旧的打卡",
            images=["https://wework.qpic.cn/abc/0", "wecom-media:MEDIA2", stored],
            now=camp.clock.now(),
            source="app",
        )

    page = await camp.harness.client.get(f"/h5/m/{camp.token}")

    assert page.status_code == 200
    assert page.text.count('<span class="chip">图片在企业微信里</span>') == 2
    assert "wework.qpic.cn" not in page.text
    assert "wecom-media" not in page.text
    assert page.text.count(f'<img src="/h5/m/{camp.token}/img/') == 1


# --------------------------------------------------------------------------- the client


async def test_get_media_answers_the_bytes(
    wecom_client: WeComClient, sandbox: SandboxState
) -> None:
    picture = image((1, 1, 1), fmt="PNG")
    media_id = sandbox.add_member_image(picture, filename="a.png")

    assert await wecom_client.get_media(media_id=media_id) == picture
    [call] = sandbox.calls_to(MEDIA_GET)
    assert call.query["media_id"] == media_id


async def test_get_media_errors_are_typed(
    wecom_client: WeComClient, sandbox: SandboxState, clock: ManualClock
) -> None:
    media_id = sandbox.add_member_image(image((2, 2, 2)))
    clock.advance(timedelta(days=3))

    with pytest.raises(WeComAPIError) as expired:
        await wecom_client.get_media(media_id=media_id)
    assert (expired.value.errcode, expired.value.retryable) == (40007, False)
    sandbox.respond_5xx(MEDIA_GET)
    with pytest.raises(WeComTransportError):
        await wecom_client.get_media(media_id=media_id)


async def test_get_media_refreshes_a_rejected_token(
    wecom_client: WeComClient, sandbox: SandboxState
) -> None:
    picture = image((3, 3, 3))
    media_id = sandbox.add_member_image(picture)
    sandbox.fail_next(MEDIA_GET, 42001)

    assert await wecom_client.get_media(media_id=media_id) == picture
    assert [call.errcode for call in sandbox.calls_to(MEDIA_GET)] == [42001, None]
