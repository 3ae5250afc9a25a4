"""Outbox: listing by status, the error shown to operators, retry and cancel state rules."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import outbox
from app.clock import ManualClock
from app.models import OutboxMessage, OutboxStatus
from tests.admin.conftest import Admin, problems


async def enqueue(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, key: str, **values: object
) -> int:
    async with sessions.begin() as session:
        row_id = await outbox.enqueue(
            session=session,
            key=key,
            channel="robot",
            target="robot-key-1",
            payload={"message": {"msgtype": "text", "content": key}},
            now=clock.now(),
        )
        assert row_id is not None
        if values:
            await session.execute(
                update(OutboxMessage).where(OutboxMessage.id == row_id).values(**values)
            )
    return row_id


DEAD = {
    "status": OutboxStatus.DEAD,
    "attempts": 1,
    "last_errcode": 93000,
    "last_error": "webhook/send errcode 93000: invalid webhook url",
}


async def test_list_by_status_and_the_error_shown(
    admin: Admin, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    pending = await enqueue(sessions, clock, "push:1")
    dead = await enqueue(sessions, clock, "push:2", **DEAD)
    await enqueue(sessions, clock, "push:3", status=OutboxStatus.SENT, wecom_msgid="m1")

    everything = (await admin.get("/outbox")).json()
    assert everything["total"] == 3
    assert everything["items"][0]["key"] == "push:3"
    dead_only = (await admin.get("/outbox", params={"status": "dead"})).json()
    assert [row["id"] for row in dead_only["items"]] == [dead]

    shown = (await admin.get(f"/outbox/{dead}")).json()
    assert shown["errcode"] == 93000
    assert shown["last_error"] == DEAD["last_error"]
    assert "重新添加机器人" in shown["hint"]
    assert shown["payload"] == {"message": {"msgtype": "text", "content": "push:2"}}
    assert (await admin.get(f"/outbox/{pending}")).json()["hint"] is None
    assert problems(await admin.get("/outbox", params={"status": "lost"}))["status"].startswith(
        "取值应为以下之一：pending、claimed"
    )
    assert (await admin.get("/outbox/424242")).json() == {"detail": "待发消息 424242 不存在。"}


async def test_retry_only_dead_rows(
    admin: Admin, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    dead = await enqueue(sessions, clock, "push:dead", **(DEAD | {"attempts": 8}))
    pending = await enqueue(sessions, clock, "push:pending")
    clock.advance(timedelta(minutes=30))

    retried = await admin.post(f"/outbox/{dead}/retry")
    assert retried.status_code == 200, retried.text
    row = retried.json()
    assert (row["status"], row["attempts"]) == ("pending", 0)
    assert row["not_before"] == "2026-03-01T09:30:00Z"  # due now
    again = await admin.post(f"/outbox/{dead}/retry")
    assert again.status_code == 409
    assert "等待发送" in again.json()["detail"]
    assert (await admin.post(f"/outbox/{pending}/retry")).status_code == 409
    assert (await admin.post("/outbox/999/retry")).status_code == 404

    entry = (await admin.get("/audit", params={"resource": "outbox"})).json()["items"][0]
    assert (entry["actor"], entry["action"], entry["resource_id"]) == ("admin", "retry", str(dead))
    assert (entry["before"]["status"], entry["before"]["attempts"]) == ("dead", 8)
    assert (entry["after"]["status"], entry["after"]["attempts"]) == ("pending", 0)


async def test_cancel_only_pending_rows(
    admin: Admin, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    pending = await enqueue(sessions, clock, "push:pending")
    sent = await enqueue(sessions, clock, "push:sent", status=OutboxStatus.SENT)
    sending = await enqueue(sessions, clock, "push:sending", status=OutboxStatus.SENDING)

    cancelled = await admin.post(f"/outbox/{pending}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    for row_id in (pending, sent, sending):
        refused = await admin.post(f"/outbox/{row_id}/cancel")
        assert refused.status_code == 409, row_id
    assert (await admin.post(f"/outbox/{pending}/retry")).status_code == 409
    assert (await admin.get("/outbox", params={"status": "cancelled"})).json()["total"] == 1
    actions = [e["action"] for e in (await admin.get("/audit")).json()["items"]]
    assert actions == ["cancel"]
