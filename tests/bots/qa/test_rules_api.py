"""`/admin/api/qa-rules`: create, list, edit, delete, audited; bad input a 422 in Chinese."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.admin.models import AuditEntry
from bots.qa.models import QaRule
from bots.qa.service import bump_version
from tests.admin.conftest import problems
from tests.bots.qa.conftest import Desk


async def test_create_list_patch_delete_and_audit(desk: Desk) -> None:
    created = await desk.rule(patterns=["退款", "退费"], reply="找班主任", priority=5)
    assert created["id"] > 0
    assert (created["mode"], created["block"], created["enabled"], created["hits"]) == (
        "contains",
        True,
        True,
        0,
    )
    await desk.rule(mode="exact", patterns=["你好"], reply="你好呀")

    listed = (await desk.admin.get("/qa-rules", params={"mode": "contains"})).json()
    assert (listed["total"], [r["id"] for r in listed["items"]]) == (1, [created["id"]])

    path = f"/qa-rules/{created['id']}"
    patched = await desk.admin.patch(path, json={"reply": "请联系班主任", "cooldown_s": 60})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["reply"], patched.json()["cooldown_s"]) == ("请联系班主任", 60)
    assert (await desk.admin.delete(path)).status_code == 204
    assert (await desk.admin.get(path)).status_code == 404

    async with desk.sessions() as session:
        entries = (
            await session.scalars(
                select(AuditEntry).where(AuditEntry.resource == "qa-rules").order_by(AuditEntry.id)
            )
        ).all()
    assert [e.action for e in entries] == ["create", "create", "update", "delete"]
    update = entries[2]
    assert update.before is not None
    assert update.after is not None
    assert (update.before["reply"], update.after["reply"]) == ("找班主任", "请联系班主任")


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"patterns": ["[第"], "mode": "regex"}, "patterns[0]", "正则表达式写法有误"),
        ({"patterns": ["ok", r"(直播)\1"], "mode": "regex"}, "patterns[1]", "不支持反向引用"),
        ({"patterns": ["直播(?!回放)"], "mode": "regex"}, "patterns[0]", "不支持否定的前瞻"),
        ({"patterns": [r"(?<=几点)直播"], "mode": "regex"}, "patterns[0]", "后顾断言"),
        ({"patterns": [r"\d++元"], "mode": "regex"}, "patterns[0]", "不支持占有量词"),
        ({"patterns": [r"\w{100}"], "mode": "regex"}, "patterns[0]", "正则太复杂"),
        ({"patterns": ["直" * 201], "mode": "regex"}, "patterns.0", ""),
        ({"patterns": ["？！ "]}, "patterns[0]", "空格和标点"),
        ({"patterns": []}, "patterns", ""),
        ({"patterns": ["a"], "mode": "fuzzy"}, "mode", ""),
        ({"patterns": ["a"], "reply": None}, "reply", "只填一个"),
        ({"patterns": ["a"], "script_key": "nope", "reply": None}, "script_key", "nope"),
        ({"patterns": ["a"], "cohort_id": 99}, "cohort_id", "不存在"),
        ({"patterns": ["a"], "cooldown_s": -1}, "cooldown_s", ""),
        ({"patterns": ["a"], "typo": 1}, "typo", ""),
    ],
)
async def test_bad_rules_are_refused_naming_the_field(
    desk: Desk, body: dict[str, object], field: str, reason: str
) -> None:
    response = await desk.admin.post("/qa-rules", json={"mode": "contains", "reply": "x"} | body)
    found = problems(response)
    assert field in found, found
    assert reason in found[field]
    assert (await desk.admin.get("/qa-rules")).json()["total"] == 0


async def test_a_patch_that_breaks_the_rule_changes_nothing(desk: Desk) -> None:
    rule = await desk.rule(mode="regex", patterns=[r"几点.*直播"], reply="晚 8 点")
    response = await desk.admin.patch(f"/qa-rules/{rule['id']}", json={"patterns": [r"(几)\1"]})
    assert "反向引用" in problems(response)["patterns[0]"]
    stored = (await desk.admin.get(f"/qa-rules/{rule['id']}")).json()
    assert stored["patterns"] == [r"几点.*直播"]


async def test_a_stored_regex_re2_cannot_take_is_left_out_and_shown(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    # Saved before RE2 was the engine (the old checks took backreferences and \b).
    now = desk.clock.now()
    async with desk.sessions() as session:
        old = QaRule(
            patterns=[r"(直播)\1", "回放"], mode="regex", reply="回放在群文件", priority=1,
            block=True, cooldown_s=0, enabled=True, hits=0, created_at=now, updated_at=now,
        )  # fmt: skip
        session.add(old)
        await bump_version(session=session)
        await session.commit()
    fine = await desk.rule(mode="regex", patterns=[r"几点.*直播"], reply="晚 8 点", priority=2)

    await desk.ask("直播直播")  # only the left-out pattern would match
    await desk.ask("今晚几点直播回放")  # the old rule's other pattern still answers
    await desk.ask("今晚几点直播？")

    assert desk.replies() == ["回放在群文件", "晚 8 点"]
    assert "left out" in caplog.text
    listed = {r["id"]: r for r in (await desk.admin.get("/qa-rules")).json()["items"]}
    assert listed[old.id]["pattern_error"] == (
        "patterns[0]：不支持反向引用（\\1、(?P=name)）："
        "这类写法可能让匹配变得极慢，已不再支持；请改写，或改用关键词规则。"
    )
    assert listed[fine["id"]]["pattern_error"] is None
    shown = (await desk.admin.get(f"/qa-rules/{old.id}")).json()
    assert shown["pattern_error"].startswith("patterns[0]：不支持反向引用")
    fixed = await desk.admin.patch(f"/qa-rules/{old.id}", json={"patterns": ["直播{2}", "回放"]})
    assert fixed.json()["pattern_error"] is None
