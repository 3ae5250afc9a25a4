"""Homework review through the admin API: the listing, images, scoring and commenting
(audited), bad input refused with nothing written, and the comment reaching the student
through the channel that can reach them and showing on their page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.admin.h5_tokens import member_url
from app.admin.models import AuditEntry
from app.clock import ManualClock
from app.models import OutboxMessage
from app.settings import Settings
from app.storage import FolderStorage
from bots.checkin import service
from bots.checkin.models import CheckinEntry, EntryKind
from tests.admin.conftest import PUBLIC_BASE_URL, Admin, admin_settings
from tests.bots.checkin.camp import local, make_cohort, make_member
from tests.support import running_app

Sessions = async_sessionmaker[AsyncSession]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@dataclass
class Desk:
    admin: Admin
    sessions: Sessions
    storage: FolderStorage
    ids: dict[str, int]  # entry name -> entry id
    members: dict[str, int]


async def _submit(session: AsyncSession, member_id: int, kind: EntryKind, **kw: object) -> int:
    await service.submit(
        session=session,
        member_id=member_id,
        kind=kind,
        text=str(kw.get("text", "我的作业")),
        images=kw.get("images", ()),  # type: ignore[arg-type]
        now=kw.get("now", local(1, 20)),  # type: ignore[arg-type]
    )
    entry_id = await session.scalar(
        select(CheckinEntry.id).where(
            CheckinEntry.member_id == member_id, CheckinEntry.kind == kind
        )
    )
    assert entry_id is not None
    return entry_id


@pytest.fixture
async def desk(
    settings: Settings, clock: ManualClock, engine: AsyncEngine, sessions: Sessions, tmp_path: Path
) -> AsyncIterator[Desk]:
    storage = FolderStorage(tmp_path / "uploads")
    key = await storage.put(PNG, "image/png")
    async with sessions.begin() as session:
        cohort = await make_cohort(session)
        lin = await make_member(session, cohort, "小林")
        lin.staff_userid = "zhangsan"
        wang = await make_member(session, cohort, "王五", userid="wangwu")
        await session.flush()
        ids = {
            "lin_homework": await _submit(session, lin.id, EntryKind.HOMEWORK, images=[key]),
            "lin_checkin": await _submit(session, lin.id, EntryKind.CHECKIN, text="打卡"),
            "wang_homework": await _submit(session, wang.id, EntryKind.HOMEWORK, now=local(1, 21)),
        }
        members = {"小林": lin.id, "王五": wang.id}
    clock.set(local(1, 22))
    async with running_app(settings=settings, clock=clock, engine=engine) as harness:
        harness.app.state.storage = storage
        yield Desk(Admin(harness), sessions, storage, ids, members)


@pytest.fixture
def settings() -> Settings:
    return admin_settings()


async def _rows(sessions: Sessions) -> list[OutboxMessage]:
    async with sessions() as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        return list((await session.execute(query)).scalars())


async def _audit(sessions: Sessions) -> list[AuditEntry]:
    async with sessions() as session:
        return list((await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars())


async def test_unreviewed_homework_is_listed_with_names_and_images(desk: Desk) -> None:
    response = await desk.admin.get(
        "/checkins", params={"cohort_id": 1, "day": 1, "kind": "homework", "reviewed": "false"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 2
    [lin, wang] = body["items"]
    assert (lin["id"], lin["member_name"], lin["kind"], lin["text"]) == (
        desk.ids["lin_homework"],
        "小林",
        "homework",
        "我的作业",
    )
    assert (lin["score"], lin["comment"], wang["member_name"]) == (None, None, "王五")
    assert lin["images"] == [f"/admin/api/checkins/{lin['id']}/images/0"]

    image = await desk.admin.get(lin["images"][0].removeprefix("/admin/api"))
    assert (image.status_code, image.content) == (200, PNG)
    assert image.headers["content-type"] == "image/png"
    assert (await desk.admin.get(f"/checkins/{lin['id']}/images/1")).status_code == 404
    # The image route is an admin route: no token, no image.
    anonymous = await desk.admin.harness.client.get(lin["images"][0])
    assert anonymous.status_code == 401

    checkins = await desk.admin.get("/checkins", params={"kind": "checkin"})
    assert [i["id"] for i in checkins.json()["items"]] == [desk.ids["lin_checkin"]]


async def test_a_review_is_audited_and_reaches_an_external_student_by_sop(
    desk: Desk,
) -> None:
    entry_id = desk.ids["lin_homework"]
    response = await desk.admin.post(
        f"/checkins/{entry_id}/review", json={"score": 92, "comment": "思路清晰，第二题再细一点"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["score"], body["comment"], body["reviewed_by"]) == (
        92,
        "思路清晰，第二题再细一点",
        "admin",
    )
    assert body["notice_key"] == f"review:{entry_id}:1"

    # The notice is the student's alone: a 群SOP item in their 1:1 chat, which their staff
    # member posts from the chat toolbar (no 群发 task, no 群发 slot spent).
    [row] = await _rows(desk.sessions)
    assert (row.key, row.channel, row.target, row.payload["sender"]) == (
        f"review:{entry_id}:1",
        "staff",
        "wm小林1",
        "zhangsan",
    )
    assert (row.payload["chat"], row.payload["title"]) == ("single", "作业点评")
    text = str(row.payload["message"]["content"])  # type: ignore[index]
    assert "92 分" in text
    assert "思路清晰，第二题再细一点" in text
    async with desk.sessions.begin() as session:
        url = await member_url(
            session=session,
            member_id=desk.members["小林"],
            public_base_url=PUBLIC_BASE_URL,
            now=local(1, 22),
        )
        page = await service.member_page(
            session=session, member_id=desk.members["小林"], now=local(1, 22)
        )
    assert url in text
    assert page.homework is not None
    assert (page.homework.score, page.homework.comment) == (92, "思路清晰，第二题再细一点")

    [audit] = await _audit(desk.sessions)
    assert (audit.resource, audit.resource_id, audit.action, audit.actor) == (
        "checkins",
        str(entry_id),
        "review",
        "admin",
    )
    assert (audit.before or {})["score"] is None
    assert (audit.after or {})["score"] == 92

    listed = await desk.admin.get("/checkins", params={"kind": "homework", "reviewed": "true"})
    assert [i["id"] for i in listed.json()["items"]] == [entry_id]

    # A corrected score is told again, under the next key.
    again = await desk.admin.post(f"/checkins/{entry_id}/review", json={"score": 95})
    assert again.json()["notice_key"] == f"review:{entry_id}:2"
    assert again.json()["comment"] is None
    assert [r.key for r in await _rows(desk.sessions)] == [
        f"review:{entry_id}:1",
        f"review:{entry_id}:2",
    ]


async def test_an_internal_member_is_told_by_app_message(desk: Desk) -> None:
    entry_id = desk.ids["wang_homework"]
    response = await desk.admin.post(f"/checkins/{entry_id}/review", json={"score": 60})
    assert response.status_code == 200, response.text
    [row] = await _rows(desk.sessions)
    assert (row.channel, row.target) == ("app_message", "wangwu")
    assert "60 分" in str(row.payload["message"]["content"])  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"score": 101}, "score"),
        ({"score": -1}, "score"),
        ({"score": "很好"}, "score"),
        ({}, "score"),
        ({"score": 80, "comment": "好" * 501}, "comment"),
        ({"score": 80, "comment": "a\x00b"}, "comment"),
        ({"score": 80, "extra": 1}, "extra"),
    ],
)
async def test_bad_values_are_422_and_change_nothing(
    desk: Desk, body: dict[str, object], field: str
) -> None:
    response = await desk.admin.post(f"/checkins/{desk.ids['lin_homework']}/review", json=body)
    assert response.status_code == 422, response.text
    [problem, *_] = response.json()["detail"]
    assert problem["field"] == field
    assert problem["message"]
    assert await _rows(desk.sessions) == []
    assert await _audit(desk.sessions) == []


async def test_a_check_in_cannot_be_reviewed_and_unknown_ids_are_404(desk: Desk) -> None:
    checkin = await desk.admin.post(
        f"/checkins/{desk.ids['lin_checkin']}/review", json={"score": 80}
    )
    assert checkin.status_code == 422
    assert "只有作业可以批改" in checkin.json()["detail"][0]["message"]
    missing = await desk.admin.post("/checkins/999999/review", json={"score": 80})
    assert missing.status_code == 404
    assert "999999" in missing.json()["detail"]
    assert (await desk.admin.get("/checkins/999999")).status_code == 404
    assert (await desk.admin.get("/checkins/999999/images/0")).status_code == 404
    assert await _rows(desk.sessions) == []
    assert await _audit(desk.sessions) == []
