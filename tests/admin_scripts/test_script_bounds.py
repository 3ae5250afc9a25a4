"""Issue 10, findings 3 and 4: a template that would stall or bloat the service is refused
at save (POST and PUT /scripts) with the same 422 as any refused template — a Chinese
reason naming the bound, nothing stored — and neither saving, previewing nor sending one
stored before the bounds existed stalls the event loop for other requests (> 100 ms)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import ManualClock
from scripts_library.models import Script
from tests.admin_scripts.conftest import Api, problems, script_body
from tests.admin_scripts.test_schedules import EDIT, camp, schedule
from tests.hostile_templates import HOSTILE
from tests.lag import MAX_LAG_S, loop_lag

CASES = list(HOSTILE)


async def warm(api: Api) -> None:
    """One script saved and previewed first: what a process does once (compile its SQL,
    start a trial worker) is not what these tests measure."""
    await api.created("/scripts", script_body("warmup"))
    await api.ok("POST", "/scripts/warmup/preview")


async def test_a_normal_script_is_still_saved_and_previewed(api: Api) -> None:
    await warm(api)
    async with loop_lag() as lag:
        created = await api.created("/scripts", script_body())
        preview = await api.ok("POST", "/scripts/day1_tasks/preview")
    assert created["version"] == 1
    assert preview["content"] == "跨境电商实战营·6 期 3 群的同学们早！今天是第 3 天。"
    assert lag.worst < MAX_LAG_S


@pytest.mark.parametrize("case", CASES)
async def test_create_refuses_the_template_without_stalling(api: Api, case: str) -> None:
    await warm(api)
    body, reason = HOSTILE[case]
    async with loop_lag() as lag:
        response = await api.post("/scripts", json=script_body(body=body))
    assert reason in problems(response)["body"]
    assert lag.worst < MAX_LAG_S
    assert (await api.get("/scripts/day1_tasks")).status_code == 404  # nothing stored


@pytest.mark.parametrize("case", CASES)
async def test_update_refuses_the_template_without_stalling(api: Api, case: str) -> None:
    await warm(api)
    original = await api.created("/scripts", script_body())
    body, reason = HOSTILE[case]
    async with loop_lag() as lag:
        response = await api.put("/scripts/day1_tasks", json=EDIT | {"body": body})
    assert reason in problems(response)["body"]
    assert lag.worst < MAX_LAG_S
    assert await api.ok("GET", "/scripts/day1_tasks") == original  # nothing stored
    assert (await api.ok("GET", "/scripts/day1_tasks/versions"))["total"] == 1


async def _stored_unchecked(sessions: async_sessionmaker[AsyncSession], body: str) -> None:
    """The script's body replaced in the database, as one saved before the bounds existed."""
    async with sessions.begin() as session:
        await session.execute(update(Script).where(Script.key == "day1_tasks").values(body=body))


@pytest.mark.parametrize("case", CASES)
async def test_preview_of_a_stored_runaway_is_refused_without_stalling(
    api: Api, sessions: async_sessionmaker[AsyncSession], case: str
) -> None:
    await warm(api)
    await api.created("/scripts", script_body())
    body, reason = HOSTILE[case]
    await _stored_unchecked(sessions, body)
    async with loop_lag() as lag:
        response = await api.post("/scripts/day1_tasks/preview")
    assert reason in problems(response)["context"]
    assert lag.worst < MAX_LAG_S


@pytest.mark.parametrize("case", CASES)
async def test_sending_a_stored_runaway_fails_without_stalling(
    api: Api, sessions: async_sessionmaker[AsyncSession], clock: ManualClock, case: str
) -> None:
    # 立即发送 renders in the server process, as every push, welcome and 喜报 does.
    created = await schedule(api, await camp(api))
    await api.ok("POST", f"/schedules/{created['id']}/run")  # warm: two rows, one per group
    clock.advance(timedelta(minutes=1))  # a second 立即发送 is another occurrence
    body, reason = HOSTILE[case]
    await _stored_unchecked(sessions, body)
    async with loop_lag() as lag:
        response = await api.post(f"/schedules/{created['id']}/run")
    assert response.status_code == 409, response.text
    assert reason in response.json()["detail"]
    assert lag.worst < MAX_LAG_S
    assert (await api.ok("GET", "/outbox"))["total"] == 2  # nothing more enqueued
