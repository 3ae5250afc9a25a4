"""Members: create, filters, tags, cohort moves, and the signed, revocable personal link."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin import h5_tokens
from app.models import Member, MemberStatus
from tests.admin.conftest import PUBLIC_BASE_URL, Admin, problems


def token_of(member: dict[str, Any]) -> str:
    prefix = PUBLIC_BASE_URL + "/h5/m/"
    assert member["h5_url"].startswith(prefix)
    return str(member["h5_url"].removeprefix(prefix))


async def verify(sessions: async_sessionmaker[AsyncSession], token: str) -> int | None:
    async with sessions() as session:
        return await h5_tokens.verify(session=session, token=token)


async def test_create_and_the_personal_link(
    admin: Admin, sessions: async_sessionmaker[AsyncSession]
) -> None:
    cohort = await admin.cohort()
    member = await admin.created(
        "/members", {"external_userid": "wmStudent1", "name": "张三", "cohort_id": cohort["id"]}
    )
    assert member["cohort_id"] == cohort["id"]
    assert member["status"] == "active"
    assert member["tags"] == []
    assert member["userid"] is None
    assert (await admin.get(f"/members/{member['id']}")).json() == member
    assert await verify(sessions, token_of(member)) == member["id"]

    revoked = await admin.post(f"/members/{member['id']}/revoke-link")
    assert revoked.status_code == 200
    assert await verify(sessions, token_of(member)) is None  # the old link is dead
    new_token = token_of(revoked.json())
    assert new_token != token_of(member)
    assert await verify(sessions, new_token) == member["id"]
    entry = (await admin.get("/audit", params={"resource": "members"})).json()["items"][0]
    assert entry["action"] == "revoke_link"
    assert (entry["before"], entry["after"]) == ({"h5_token_version": 0}, {"h5_token_version": 1})


async def test_links_are_forgery_proof(
    admin: Admin, sessions: async_sessionmaker[AsyncSession]
) -> None:
    one = await admin.created("/members", {"userid": "u1"})
    two = await admin.created("/members", {"userid": "u2"})
    token = token_of(one)
    member_id, version, mac = token.split(".")
    for forged in [
        f"{two['id']}.{version}.{mac}",  # someone else's id with my signature
        f"{member_id}.1.{mac}",  # a version I was not given
        f"{member_id}.{version}.{mac[:-1]}A"
        if mac[-1] != "A"
        else f"{member_id}.{version}.{mac[:-1]}B",
        f"0{member_id}.{version}.{mac}",
        token + ".",
        "",
        "x" * 500,
        "1.0.\x00" * 3,
    ]:
        assert await verify(sessions, forged) is None, forged
    assert await verify(sessions, token) == one["id"]


def test_sign_and_parse() -> None:
    key = b"k" * 32
    token = h5_tokens.sign(key, 7, 3)
    assert h5_tokens.parse(key, token) == (7, 3)
    assert h5_tokens.parse(b"other" * 8, token) is None
    assert h5_tokens.parse(key, token.replace("7.", "8.", 1)) is None


async def test_one_id_exactly_and_no_duplicates(admin: Admin) -> None:
    assert problems(await admin.post("/members", json={"name": "无名"})) == {
        "external_userid": "external_userid 与 userid 须填且只填一个。"
    }
    both = await admin.post("/members", json={"external_userid": "wm1", "userid": "u1"})
    assert problems(both) == {"external_userid": "external_userid 与 userid 须填且只填一个。"}
    first = await admin.created("/members", {"external_userid": "wm1"})
    again = await admin.post("/members", json={"external_userid": "wm1", "name": "又一次"})
    assert again.status_code == 409
    assert f"/members/{first['id']}" in again.json()["detail"]
    assert problems(await admin.post("/members", json={"userid": "u9", "cohort_id": 5})) == {
        "cohort_id": "训练营期次 5 不存在。"
    }
    assert (await admin.get("/members")).json()["total"] == 1
    assert (await admin.get("/members/999")).json() == {"detail": "学员 999 不存在。"}


async def test_list_filters(admin: Admin, sessions: async_sessionmaker[AsyncSession]) -> None:
    three = await admin.cohort(channel_state="c3")
    four = await admin.cohort(channel_state="c4", name="第 4 期")
    people = [
        ("wmA", "张三", three),
        ("wmB", "张三丰", three),
        ("wmC", "李四", four),
        ("wmD", "王五_100%", None),
    ]
    made = {}
    for external_userid, name, cohort in people:
        made[name] = await admin.created(
            "/members",
            {
                "external_userid": external_userid,
                "name": name,
                "cohort_id": cohort and cohort["id"],
            },
        )
    async with sessions.begin() as session:
        await session.execute(
            update(Member).where(Member.external_userid == "wmB").values(status=MemberStatus.LOST)
        )
    tagged = await admin.post(
        f"/members/{made['张三']['id']}/tags", json={"add": ["VIP", " 复训 "]}
    )
    assert tagged.json()["tags"] == ["VIP", "复训"]
    await admin.post(f"/members/{made['李四']['id']}/tags", json={"add": ["VIP"]})

    async def names(**params: Any) -> list[str]:
        page = (await admin.get("/members", params=params)).json()
        assert page["total"] == len(page["items"])
        return [m["name"] for m in page["items"]]

    assert await names() == ["张三", "张三丰", "李四", "王五_100%"]
    assert await names(cohort_id=three["id"]) == ["张三", "张三丰"]
    assert await names(status="lost") == ["张三丰"]
    assert await names(tag="VIP") == ["张三", "李四"]
    assert await names(tag="VIP", cohort_id=four["id"]) == ["李四"]
    assert await names(q="张三") == ["张三", "张三丰"]
    assert await names(q="wmc") == ["李四"]
    assert await names(q="_100%") == ["王五_100%"]
    assert await names(q="%") == ["王五_100%"]  # a literal percent sign, not a wildcard
    assert await names(cohort_id=three["id"], status="active", tag="复训", q="三") == ["张三"]
    assert problems(await admin.get("/members", params={"status": "gone"})) == {
        "status": "取值应为以下之一：active、lost、removed"
    }
    page = (await admin.get("/members", params={"limit": 1, "offset": 1})).json()
    assert page["total"] == 4
    assert [m["name"] for m in page["items"]] == ["张三丰"]


async def test_tags_add_remove_and_audit(admin: Admin) -> None:
    member = await admin.created("/members", {"userid": "u1"})
    path = f"/members/{member['id']}/tags"
    assert (await admin.post(path, json={"add": ["b", "a", "a"]})).json()["tags"] == ["a", "b"]
    assert (await admin.post(path, json={"add": ["c"], "remove": ["a", "zzz"]})).json()[
        "tags"
    ] == [
        "b",
        "c",
    ]
    assert (await admin.post(path, json={"remove": ["nope"]})).json()["tags"] == ["b", "c"]
    assert problems(await admin.post(path, json={"add": ["x" * 33]})) == {
        "add.0": "最多 32 个字符"
    }
    assert (await admin.post("/members/999/tags", json={"add": ["a"]})).status_code == 404
    entries = (await admin.get("/audit", params={"resource": "members"})).json()["items"]
    assert [e["action"] for e in entries] == ["tags", "tags", "create"]
    assert (entries[0]["before"]["tags"], entries[0]["after"]["tags"]) == (["a", "b"], ["b", "c"])


async def test_patch_moves_cohorts(admin: Admin) -> None:
    three = await admin.cohort(channel_state="c3")
    four = await admin.cohort(channel_state="c4")
    member = await admin.created("/members", {"userid": "u1", "cohort_id": three["id"]})
    moved = await admin.patch(
        f"/members/{member['id']}", json={"cohort_id": four["id"], "name": "转期学员"}
    )
    assert moved.status_code == 200
    assert (moved.json()["cohort_id"], moved.json()["name"]) == (four["id"], "转期学员")
    assert (await admin.get(f"/cohorts/{three['id']}")).json()["member_count"] == 0
    assert (await admin.get(f"/cohorts/{four['id']}")).json()["member_count"] == 1
    assert problems(await admin.patch(f"/members/{member['id']}", json={"status": None})) == {
        "status": "不能为 null"
    }
