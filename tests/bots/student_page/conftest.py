"""Fixtures of the personal H5 page's tests: the page on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.admin import h5_tokens
from app.clock import ManualClock
from app.db import create_sessionmaker
from app.settings import Settings
from app.storage import FolderStorage
from tests.bots.checkin.camp import local, make_cohort, make_member
from tests.bots.student_page.support import H5
from tests.support import running_app


@pytest.fixture
async def h5(settings: Settings, engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[H5]:
    """小林 and 小王 in a cohort on its day 1 (20:00 Shanghai), 路人 in none."""
    clock = ManualClock(local(1, 20))  # camp day 1, 20:00 Shanghai
    sessions = create_sessionmaker(engine)
    async with sessions() as session:
        cohort = await make_cohort(session)
        members = [await make_member(session, cohort, name) for name in ("小林", "小王")]
        members.append(await make_member(session, None, "路人"))  # in no cohort
        ids = {m.name or "": m.id for m in members}
        by_id = await h5_tokens.tokens_for(
            session=session, member_ids=list(ids.values()), now=clock.now()
        )
        await session.commit()
    tokens = {name: by_id[member_id] for name, member_id in ids.items()}
    storage = FolderStorage(tmp_path / "uploads")
    async with running_app(settings=settings, clock=clock, engine=engine) as harness:
        harness.app.state.storage = storage
        yield H5(harness, sessions, clock, storage, tokens, ids)
