"""The 喜报 admin API around the broadcast: bad input refused with nothing written, a
student's report approved once, the certificate only after the camp ends."""

from __future__ import annotations

import io
from datetime import datetime

import httpx
import pytest
from PIL import Image
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.errors import InvalidInput
from app.admin.models import AuditEntry
from app.clock import ManualClock
from app.models import OutboxMessage
from app.wecom_sandbox.state import SandboxState
from bots.checkin.models import MemberScore
from bots.xibao import service as xibao_service
from bots.xibao.models import Achievement, Broadcast
from scripts_library.models import Script
from tests.bots.xibao.conftest import Admin, CampIds, seed_camp
from tests.support import count_rows


@pytest.fixture
async def camp(
    sessions: async_sessionmaker[AsyncSession], sandbox: SandboxState, clock: ManualClock
) -> CampIds:
    return await seed_camp(sessions, sandbox, clock, per_channel=1)


def _problems(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {p["field"]: p["message"] for p in response.json()["detail"]}


async def _nothing_written(sessions: async_sessionmaker[AsyncSession]) -> None:
    assert await count_rows(sessions, Achievement) == 0
    assert await count_rows(sessions, Broadcast) == 0
    assert await count_rows(sessions, OutboxMessage) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"member_id": 999, "title": "出单啦"}, "member_id"),
        ({"member_id": 1, "title": "  "}, "title"),
        ({"member_id": 1, "title": "出单\n啦"}, "title"),
        ({"member_id": 1, "title": "出" * 101}, "title"),
        ({"member_id": 1, "title": "出单啦", "detail": "x\x00y"}, "detail"),
        ({"member_id": 1, "title": "出单啦", "group_ids": [424242]}, "group_ids"),
        ({"member_id": 1, "title": "出单啦", "group_ids": []}, "group_ids"),
        ({"member_id": 1, "title": "出单啦", "group_ids": "all"}, "group_ids"),
        ({"member_id": 1, "title": "出单啦", "groups": [1]}, "groups"),
        ({"title": "出单啦"}, "member_id"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(
    admin: Admin, sessions, camp: CampIds, body: dict[str, object], field: str
) -> None:
    problems = _problems(await admin.post("/achievements", json=body))
    assert field in problems
    assert problems[field]
    await _nothing_written(sessions)


async def test_no_token_is_401(harness, camp: CampIds) -> None:
    response = await harness.client.post(
        "/admin/api/achievements", json={"member_id": camp.member_id, "title": "出单啦"}
    )
    assert response.status_code == 401


async def test_a_missing_script_is_a_409_saying_what_to_do(
    admin: Admin, sessions, camp: CampIds
) -> None:
    async with sessions.begin() as session:
        await session.execute(delete(Script).where(Script.key == "xibao"))
    response = await admin.post("/achievements", json={"member_id": camp.member_id, "title": "x"})
    assert response.status_code == 409
    assert "scripts import" in response.json()["detail"]
    await _nothing_written(sessions)


async def test_unknown_broadcast_is_404(admin: Admin) -> None:
    assert (await admin.get("/broadcasts/77")).status_code == 404
    assert (await admin.get("/broadcasts/77/poster.png")).status_code == 404


async def test_a_reported_achievement_waits_then_is_approved_once(
    admin: Admin, sessions, clock: ManualClock, camp: CampIds
) -> None:
    async with sessions.begin() as session:
        reported = await xibao_service.report_achievement(
            session=session,
            member_id=camp.member_id,
            title="上岸了",
            detail="拿到了心仪公司的 offer",
            now=clock.now(),
        )
    assert await count_rows(sessions, OutboxMessage) == 0
    listed = (await admin.get("/achievements", params={"status": "pending"})).json()
    assert [a["id"] for a in listed["items"]] == [reported.id]
    assert listed["total"] == 1
    assert listed["items"][0]["broadcast_id"] is None

    approved = await admin.post(f"/achievements/{reported.id}/approve")
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert (body["status"], body["source"], body["approved_by"]) == ("approved", "h5", "admin")
    progress = (await admin.get(f"/broadcasts/{body['broadcast_id']}")).json()
    assert (progress["total"], progress["pending"]) == (3, 3)
    # One row per group: the robot's, the app chat's, the customer group's.
    assert await count_rows(sessions, OutboxMessage) == 3
    [listed_now] = (await admin.get("/achievements")).json()["items"]
    assert listed_now["broadcast_id"] == body["broadcast_id"]
    assert listed_now["poster_missing"] == body["poster_missing"]

    again = await admin.post(f"/achievements/{reported.id}/approve")
    assert again.status_code == 409
    assert await count_rows(sessions, OutboxMessage) == 3
    assert (await admin.post("/achievements/999/approve")).status_code == 404


async def test_report_refuses_bad_input_with_the_field(sessions, clock: ManualClock) -> None:
    async with sessions.begin() as session:
        with pytest.raises(InvalidInput) as caught:
            await xibao_service.report_achievement(
                session=session, member_id=1, title="", detail="", now=clock.now()
            )
    assert caught.value.problems[0].field == "title"


async def _certificate(admin: Admin, member_id: int) -> httpx.Response:
    return await admin.get(f"/achievements/certificates/{member_id}.png")


async def test_certificate_only_once_the_camp_has_ended(
    admin: Admin, sessions, clock: ManualClock, camp: CampIds
) -> None:
    early = await _certificate(admin, camp.member_id)
    assert early.status_code == 409
    assert "结营" in early.json()["detail"]

    async with sessions.begin() as session:
        session.add(
            MemberScore(
                member_id=camp.member_id,
                cohort_id=camp.cohort_id,
                points=160,
                checked_days=7,
                homework_days=5,
                updated_at=clock.now(),
            )
        )
    clock.set(datetime.fromisoformat("2026-03-06T00:00:00+08:00"))  # day 7, the last day
    response = await _certificate(admin, camp.member_id)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (1080, 1440)

    assert (await _certificate(admin, 999)).status_code == 404
    elsewhere = await admin.get(
        f"/achievements/certificates/{camp.member_id}.png", params={"cohort_id": 999}
    )
    assert elsewhere.status_code == 404


async def test_the_audit_log_names_who_broadcast(admin: Admin, sessions, camp: CampIds) -> None:
    await admin.post("/achievements", json={"member_id": camp.member_id, "title": "出单啦"})
    async with sessions() as session:
        entry = (await session.execute(select(AuditEntry))).scalar_one()
        assert (entry.resource, entry.action, entry.actor) == ("achievements", "create", "admin")
        outbox_rows = await session.scalar(select(func.count()).select_from(OutboxMessage))
    assert outbox_rows == 3


async def test_without_a_cjk_font_the_certificate_is_a_503_saying_what_to_install(
    admin: Admin, sessions, clock: ManualClock, camp: CampIds, no_cjk_font: None
) -> None:
    clock.set(datetime.fromisoformat("2026-03-06T00:00:00+08:00"))  # the camp has ended
    response = await _certificate(admin, camp.member_id)
    assert response.status_code == 503
    assert "apt-get install -y fonts-wqy-microhei" in response.json()["detail"]


async def test_with_a_font_the_answer_has_no_poster_missing(admin: Admin, camp: CampIds) -> None:
    created = await admin.post(
        "/achievements", json={"member_id": camp.member_id, "title": "出单啦"}
    )
    assert created.status_code == 201
    assert created.json()["poster_missing"] is None
    progress = (await admin.get(f"/broadcasts/{created.json()['broadcast_id']}")).json()
    assert progress["poster_missing"] is None
