"""Groups: channel-specific validation (reach_group's rules), conflicts, cohort links."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import quota
from app.clock import ManualClock
from app.models import Group, GroupMembership
from app.settings import QuotaMode
from tests.admin.conftest import Admin, problems

ROBOT_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0"


def group(**fields: Any) -> dict[str, Any]:
    return {
        "name": "3期 1 班",
        "channel": "customer",
        "chat_id": "wrOgQh",
        "owner_userid": "zhangsan",
    } | fields


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (group(channel="wechat"), "channel", "取值应为以下之一：robot、appchat、customer"),
        (
            group(channel="robot"),
            "robot_key",
            "群「3期 1 班」通过群机器人发送，但没有填写机器人 key。",
        ),
        (
            group(channel="appchat", chat_id=None),
            "chat_id",
            "群「3期 1 班」没有填写群 ID（chat_id）。",
        ),
        (group(chat_id=None), "chat_id", "群「3期 1 班」没有填写群 ID（chat_id）。"),
        (
            group(owner_userid=None),
            "owner_userid",
            "客户群「3期 1 班」没有填写群主（owner_userid），无法群发。",
        ),
        (
            group(robot_key="https://example.com/hook"),
            "robot_key",
            "机器人 webhook 地址里没有 key 参数",
        ),
        (group(cohort_id=99), "cohort_id", "训练营期次 99 不存在。"),
        (group(name="a\x00b"), "name", "不能包含换行、制表符等控制字符"),
    ],
)
async def test_invalid_groups_are_422_naming_the_field(
    admin: Admin, body: dict[str, Any], field: str, message: str
) -> None:
    assert problems(await admin.post("/groups", json=body)) == {field: message}
    assert (await admin.get("/groups")).json()["total"] == 0


async def test_each_channel_with_what_it_needs(admin: Admin) -> None:
    cohort = await admin.cohort()
    robot = await admin.created(
        "/groups",
        {"cohort_id": cohort["id"], "name": "助教群", "channel": "robot", "robot_key": ROBOT_URL},
    )
    assert robot["robot_key"] == "693a91f6-7xxx-4bc4-97a0"  # taken out of the pasted URL
    assert robot["cohort_id"] == cohort["id"]
    assert robot["status"] == "active"
    appchat = await admin.created(
        "/groups", group(channel="appchat", chat_id="inner1", owner_userid=None)
    )
    customer = await admin.created("/groups", group(cohort_id=cohort["id"]))
    assert customer["cohort_id"] == cohort["id"]
    assert appchat["cohort_id"] is None
    assert (await admin.get(f"/groups/{customer['id']}")).json() == customer

    in_cohort = (await admin.get("/groups", params={"cohort_id": cohort["id"]})).json()
    assert [g["id"] for g in in_cohort["items"]] == [robot["id"], customer["id"]]
    robots = (await admin.get("/groups", params={"channel": "robot"})).json()
    assert [g["id"] for g in robots["items"]] == [robot["id"]]
    assert (await admin.get(f"/cohorts/{cohort['id']}")).json()["group_count"] == 2


async def test_duplicate_chat_id_and_robot_key_are_409(admin: Admin) -> None:
    first = await admin.created("/groups", group())
    again = await admin.post("/groups", json=group(name="另一个"))
    assert again.status_code == 409
    assert "wrOgQh" in again.json()["detail"]
    assert f"/groups/{first['id']}" in again.json()["detail"]
    await admin.created("/groups", {"name": "r1", "channel": "robot", "robot_key": "k1"})
    assert (
        await admin.post("/groups", json={"name": "r2", "channel": "robot", "robot_key": "k1"})
    ).status_code == 409
    other = await admin.created("/groups", group(chat_id="other"))
    assert (
        await admin.patch(f"/groups/{other['id']}", json={"chat_id": "wrOgQh"})
    ).status_code == 409
    assert (await admin.get(f"/groups/{other['id']}")).json()["chat_id"] == "other"


async def test_patch_revalidates_the_channel_and_moves_cohorts(admin: Admin) -> None:
    cohort = await admin.cohort()
    made = await admin.created(
        "/groups", {"name": "r", "channel": "robot", "robot_key": "k", "cohort_id": cohort["id"]}
    )
    path = f"/groups/{made['id']}"
    assert problems(await admin.patch(path, json={"channel": "customer"})) == {
        "chat_id": "群「r」没有填写群 ID（chat_id）。"
    }
    assert problems(await admin.patch(path, json={"robot_key": None})) == {
        "robot_key": "群「r」通过群机器人发送，但没有填写机器人 key。"
    }
    assert problems(await admin.patch(path, json={"channel": None})) == {"channel": "不能为 null"}
    changed = await admin.patch(
        path,
        json={"channel": "customer", "chat_id": "c1", "owner_userid": "o1", "cohort_id": None},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["channel"] == "customer"
    assert changed.json()["cohort_id"] is None
    entry = (await admin.get("/audit", params={"resource": "groups"})).json()["items"][0]
    assert entry["before"]["cohort_id"] == cohort["id"]
    assert entry["after"]["cohort_id"] is None
    assert entry["before"]["channel"] == "robot"
    assert entry["after"]["channel"] == "customer"
    assert (await admin.get(f"/cohorts/{cohort['id']}")).json()["group_count"] == 0


async def test_groups_from_events_show_their_members_and_can_be_deleted(
    admin: Admin, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    now = clock.now()
    async with sessions.begin() as session:
        found = Group(
            chat_id="wrEvent",
            channel="customer",
            owner_userid="zhangsan",
            created_at=now,
            updated_at=now,
        )
        session.add(found)
        await session.flush()
        for n, left in enumerate([None, None, now]):
            session.add(
                GroupMembership(
                    group_id=found.id, member_key=f"wm{n}", joined_at=now, left_at=left
                )
            )
    listed = (await admin.get("/groups")).json()["items"]
    assert [(g["chat_id"], g["name"], g["member_count"]) for g in listed] == [("wrEvent", None, 2)]

    cohort = await admin.cohort()
    linked = await admin.patch(
        f"/groups/{found.id}", json={"cohort_id": cohort["id"], "name": "3期 2 班"}
    )
    assert linked.json()["cohort_id"] == cohort["id"]
    assert linked.json()["member_count"] == 2

    assert (await admin.delete(f"/groups/{found.id}")).status_code == 204
    assert (await admin.get(f"/groups/{found.id}")).status_code == 404
    assert (await admin.delete(f"/groups/{found.id}")).status_code == 404
    assert (await admin.delete(f"/cohorts/{cohort['id']}")).status_code == 204
    entry = (await admin.get("/audit", params={"resource": "groups"})).json()["items"][0]
    assert entry["action"] == "delete"
    assert entry["before"]["chat_id"] == "wrEvent"


async def test_each_customer_groups_quota_follows_its_cohorts_clock(
    admin: Admin, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    """At 20:00 UTC on 31 March it is already April in Shanghai: a Shanghai cohort's group is
    in April's window, a Los Angeles cohort's still in March's; a group of no cohort follows
    CAMPBOT_TIMEZONE (Shanghai)."""
    clock.advance(timedelta(days=30, hours=11))
    west = await admin.cohort(timezone="America/Los_Angeles")
    east = await admin.cohort(name="第 4 期", channel_state="write4", timezone="Asia/Shanghai")
    await admin.created("/groups", group(cohort_id=west["id"], chat_id="west1"))
    await admin.created("/groups", group(cohort_id=east["id"], chat_id="east1", name="4期"))
    await admin.created("/groups", group(chat_id="loose1", name="散群"))
    await admin.created(
        "/groups",
        group(channel="robot", robot_key="k1", name="机器人群", chat_id=None, owner_userid=None),
    )
    async with sessions.begin() as session:
        spent = await quota.spend(
            session=session,
            target="east1",
            mode=QuotaMode.MONTH_DAYS,
            tz="Asia/Shanghai",
            now=clock.now(),
            outbox_key="t1",
        )
        assert spent
    listed = (await admin.get("/groups")).json()["items"]
    shown = {g["chat_id"] or g["name"]: g["mass_send_quota"] for g in listed}
    assert shown["机器人群"] is None
    assert (shown["west1"]["window_start"], shown["west1"]["used"]) == ("2026-03-01", 0)
    assert (shown["east1"]["window_start"], shown["east1"]["used"]) == ("2026-04-01", 1)
    assert (shown["loose1"]["window_start"], shown["loose1"]["used"]) == ("2026-04-01", 0)
    assert shown["east1"]["left"] == shown["east1"]["limit"] - 1 == 29
