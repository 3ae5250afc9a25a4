"""Content-addressed images shared by two students' entries: a refused H5 check-in must
never delete (or even write) a file, as another student's entry may reference the same one.
The POST records the entry under the images' keys first and writes files only once the
submission was accepted."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.admin import h5_tokens
from app.clock import ManualClock
from app.db import create_sessionmaker
from app.settings import Settings
from app.storage import FolderStorage
from bots.checkin.models import CheckinEntry
from tests.bots.checkin.camp import local, make_cohort, make_member
from tests.support import running_app


def png(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10), (shade, shade, shade)).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class RecordingStorage:
    """A folder storage that records each write and delete, and can run a step (another
    student's request) when a given key is first written."""

    folder: FolderStorage
    log: list[tuple[str, str]] = field(default_factory=list)
    on_put: Callable[[], Awaitable[object]] | None = None

    async def put(self, data: bytes, content_type: str) -> str:
        key = await self.folder.put(data, content_type)
        self.log.append(("put", key))
        if self.on_put is not None:
            step, self.on_put = self.on_put, None
            await step()
        return key

    async def exists(self, key: str) -> bool:
        return await self.folder.exists(key)

    async def read(self, key: str) -> bytes | None:
        return await self.folder.read(key)

    def url(self, key: str) -> str | None:
        return None

    async def delete(self, key: str) -> None:
        self.log.append(("delete", key))
        await self.folder.delete(key)


@dataclass
class Pair:
    client: httpx.AsyncClient
    storage: RecordingStorage
    tokens: dict[str, str]
    engine: AsyncEngine

    async def post(self, who: str, data: bytes, **fields: str) -> httpx.Response:
        return await self.client.post(
            f"/h5/m/{self.tokens[who]}/checkin",
            data={"text": "今天的打卡", **fields},
            files=[("images", ("a.png", data, "image/png"))],
            headers={"Accept": "application/json"},
        )

    async def images_of(self, who: str) -> list[str]:
        sessions = create_sessionmaker(self.engine)
        member_id = int(self.tokens[who].split(".", 1)[0])
        async with sessions() as session:
            rows = await session.scalars(
                select(CheckinEntry.images).where(CheckinEntry.member_id == member_id)
            )
            return [key for images in rows for key in images or ()]


@pytest.fixture
async def pair(settings: Settings, engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[Pair]:
    clock = ManualClock(local(1, 20))  # camp day 1, 20:00 Shanghai
    sessions = create_sessionmaker(engine)
    async with sessions() as session:
        cohort = await make_cohort(session)
        members = [await make_member(session, cohort, name) for name in ("小林", "小王")]
        by_id = await h5_tokens.tokens_for(
            session=session, member_ids=[m.id for m in members], now=clock.now()
        )
        await session.commit()
    tokens = {m.name or "": by_id[m.id] for m in members}
    storage = RecordingStorage(FolderStorage(tmp_path / "uploads"))
    async with running_app(settings=settings, clock=clock, engine=engine) as harness:
        harness.app.state.storage = storage
        yield Pair(harness.client, storage, tokens, engine)


async def test_a_refusal_writes_and_deletes_nothing(pair: Pair) -> None:
    shared = png(40)
    accepted = await pair.post("小林", shared)
    pair.storage.log.clear()

    refused = await pair.post("小王", shared, day="5")  # a day not yet come: 409

    assert accepted.status_code == 200
    assert refused.status_code == 409
    assert pair.storage.log == []
    [key] = await pair.images_of("小林")
    served = await pair.client.get(f"/h5/m/{pair.tokens['小林']}/img/{key}")
    assert (served.status_code, served.content) == (200, shared)


async def test_a_refusal_racing_an_accepted_upload_leaves_its_file(pair: Pair) -> None:
    """小林's upload of the same image lands while 小王's refused one is in flight (here:
    at 小王's first file write, if there were one). The file 小林's entry references stays."""
    shared = png(80)
    results: list[int] = []

    async def other_student() -> None:
        results.append((await pair.post("小林", shared)).status_code)

    pair.storage.on_put = other_student
    refused = await pair.post("小王", shared, day="5")
    if pair.storage.on_put is not None:  # 小王's request wrote nothing: 小林 uploads now
        pair.storage.on_put = None
        await other_student()

    assert refused.status_code == 409
    assert results == [200]
    [key] = await pair.images_of("小林")
    assert await pair.images_of("小王") == []
    assert pair.storage.folder.keys() == [key]
    assert ("delete", key) not in pair.storage.log
    served = await pair.client.get(f"/h5/m/{pair.tokens['小林']}/img/{key}")
    assert (served.status_code, served.content) == (200, shared)


async def test_an_accepted_upload_writes_after_recording(pair: Pair) -> None:
    picture = png(120)

    response = await pair.post("小林", picture)

    assert response.status_code == 200
    [key] = response.json()["entry"]["images"]
    assert pair.storage.log == [("put", key["key"])]
    assert await pair.storage.read(key["key"]) == picture
