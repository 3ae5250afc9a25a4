"""Scripts and their versions, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import scripts_library.models  # noqa: F401 - registers the tables for the engine fixture
from app.clock import ManualClock
from scripts_library import service
from scripts_library.errors import ScriptExistsError, ScriptNotFoundError, ScriptValidationError
from scripts_library.models import ScriptVersion
from tests.support import count_rows

Sessions = async_sessionmaker[AsyncSession]
BODY = "{{ student_name }}，今天是第 {{ day }} 天，记得打卡：{{ h5_url }}"


async def create(session: AsyncSession, clock: ManualClock, key: str = "checkin") -> None:
    await service.create_script(
        session=session,
        key=key,
        title="打卡提醒",
        msgtype="text",
        body=BODY,
        category="daily",
        author="运营小王",
        note="初稿",
        schedule_hint={
            "type": "cron",
            "cron": "0 21 * * *",
            "target": {"type": "members", "filter": "all"},
        },
        now=clock.now(),
    )


async def test_create_stores_version_one(sessions: Sessions, clock: ManualClock) -> None:
    async with sessions() as session:
        await create(session, clock)
        await session.commit()
    async with sessions() as session:
        script = await service.get_script(session=session, key="checkin")
        history = await service.versions(session=session, key="checkin")
    assert (script.version, script.body, script.created_at) == (1, BODY, clock.now())
    assert script.schedule_hint == {
        "type": "cron",
        "cron": "0 21 * * *",
        "target": {"type": "members", "filter": "all"},
    }
    assert [(v.version, v.author, v.note, v.body) for v in history] == [
        (1, "运营小王", "初稿", BODY)
    ]


async def test_create_refuses_a_taken_key_and_invalid_content(
    sessions: Sessions, clock: ManualClock
) -> None:
    async with sessions() as session:
        await create(session, clock)
        with pytest.raises(ScriptExistsError):
            await create(session, clock)
        with pytest.raises(ScriptValidationError) as caught:
            await service.create_script(
                session=session,
                key="bad",
                title="x",
                msgtype="text",
                body="{{ nope }}",
                category="daily",
                author="运营小王",
            )
        assert caught.value.problems[0].field == "body"
        await session.commit()
    assert await count_rows(sessions, ScriptVersion) == 1


async def test_history_diff_and_rollback(sessions: Sessions, clock: ManualClock) -> None:
    async with sessions() as session:
        await create(session, clock)
        clock.advance(timedelta(hours=1))
        await service.update_script(
            session=session,
            key="checkin",
            author="运营小李",
            note="更口语",
            body="{{ student_name }}，今天还没打卡哦～ 连续 {{ streak }} 天了！",
            now=clock.now(),
        )
        await service.update_script(
            session=session, key="checkin", author="运营小李", title="督学提醒", now=clock.now()
        )
        await session.commit()

    async with sessions() as session:
        history = await service.versions(session=session, key="checkin")
        assert [v.version for v in history] == [3, 2, 1]
        assert history[0].title == "督学提醒"
        assert history[1].title == "打卡提醒"
        text = await service.diff(session=session, key="checkin", a=1, b=2)
        assert text.startswith("--- checkin 第 1 版\n+++ checkin 第 2 版")
        assert "-body: '{{ student_name }}，今天是第 {{ day }} 天" in text
        assert "+body: '{{ student_name }}，今天还没打卡哦～" in text
        assert await service.diff(session=session, key="checkin", a=2, b=2) == ""

        script = await service.rollback(
            session=session, key="checkin", version=1, author="运营小王"
        )
        await session.commit()

    async with sessions() as session:
        history = await service.versions(session=session, key="checkin")
        script = await service.get_script(session=session, key="checkin")
    assert script.version == 4
    assert script.body == BODY
    assert script.title == "打卡提醒"
    assert [(v.version, v.note) for v in history][:2] == [(4, "回滚到第 1 版"), (3, "")]
    assert history[-1].body == BODY  # version 1 untouched
    assert [v.title for v in history] == ["打卡提醒", "督学提醒", "打卡提醒", "打卡提醒"]


async def test_unchanged_update_creates_no_version(sessions: Sessions, clock: ManualClock) -> None:
    async with sessions() as session:
        await create(session, clock)
        script = await service.update_script(
            session=session,
            key="checkin",
            author="运营小李",
            body=BODY + "\n\n  ",
            category="daily",
        )
        assert script.version == 1
        script = await service.rollback(
            session=session, key="checkin", version=1, author="运营小李"
        )
        assert script.version == 1
        await session.commit()
    assert await count_rows(sessions, ScriptVersion) == 1


async def test_invalid_update_keeps_the_current_version(
    sessions: Sessions, clock: ManualClock
) -> None:
    async with sessions() as session:
        await create(session, clock)
        with pytest.raises(ScriptValidationError) as caught:
            await service.update_script(
                session=session, key="checkin", author="运营小李", body="第一行\n{% for x in %}"
            )
        assert caught.value.problems[0].message.startswith("第 2 行语法错误")
        script = await service.get_script(session=session, key="checkin")
        assert script.version == 1


async def test_missing_scripts_and_versions(sessions: Sessions, clock: ManualClock) -> None:
    async with sessions() as session:
        with pytest.raises(ScriptNotFoundError, match="找不到话术「nope」"):
            await service.get_script(session=session, key="nope")
        await create(session, clock)
        with pytest.raises(ScriptNotFoundError, match="第 9 版"):
            await service.diff(session=session, key="checkin", a=1, b=9)
        with pytest.raises(ScriptNotFoundError):
            await service.rollback(session=session, key="checkin", version=9, author="x")


async def test_list_by_category_and_preview(sessions: Sessions, clock: ManualClock) -> None:
    async with sessions() as session:
        await create(session, clock, key="b_daily")
        await create(session, clock, key="a_daily")
        await service.create_script(
            session=session,
            key="hello",
            title="欢迎",
            msgtype="markdown",
            body="**{{ student_name }}** 欢迎！",
            category="onboarding",
            author="运营小王",
        )
        everything = await service.list_scripts(session=session)
        daily = await service.list_scripts(session=session, category="daily")
        sample = await service.preview(session=session, key="hello")
        mine = await service.preview(
            session=session, key="hello", context={"student_name": "阿杰"}
        )
        old = await service.preview(session=session, key="b_daily", version=1)
    assert [s.key for s in everything] == ["b_daily", "a_daily", "hello"]
    assert [s.key for s in daily] == ["b_daily", "a_daily"]
    assert (sample.msgtype, sample.content) == ("markdown", "**小林** 欢迎！")
    assert mine.content == "**阿杰** 欢迎！"
    assert old.content.startswith("小林，今天是第 3 天")
