"""What the personal H5 page's tests share: the page under test (`H5`, the `h5` fixture's
value) and a small image to upload."""

from __future__ import annotations

import io
from dataclasses import dataclass

import httpx
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import ManualClock
from app.storage import FolderStorage
from bots.checkin.models import CheckinEntry
from tests.support import AppHarness

Sessions = async_sessionmaker[AsyncSession]


def png(color: tuple[int, int, int] = (200, 30, 30), size: int = 16, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format=fmt)
    return buffer.getvalue()


@dataclass
class H5:
    harness: AppHarness
    sessions: Sessions
    clock: ManualClock
    storage: FolderStorage
    tokens: dict[str, str]  # member name -> token
    ids: dict[str, int]

    @property
    def client(self) -> httpx.AsyncClient:
        return self.harness.client

    def url(self, who: str = "小林", suffix: str = "") -> str:
        return f"/h5/m/{self.tokens[who]}{suffix}"

    async def post(
        self,
        who: str = "小林",
        *,
        text: str = "今天学完了第一课",
        images: list[tuple[str, bytes, str]] | None = None,
        json: bool = False,
        **fields: str,
    ) -> httpx.Response:
        files = [("images", image) for image in images or []]
        headers = {"Accept": "application/json"} if json else {}
        return await self.client.post(
            self.url(who, "/checkin"),
            data={"text": text, **fields},
            files=files or None,
            headers=headers,
        )

    async def entries(self) -> list[CheckinEntry]:
        async with self.sessions() as session:
            return list((await session.scalars(select(CheckinEntry))).all())

    async def entry_count(self) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count(CheckinEntry.id))) or 0)
