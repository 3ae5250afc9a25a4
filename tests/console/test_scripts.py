"""话术库 in the console: the editor's live preview for a chosen student, the save's problems
beside the body with line numbers, versions with diff and rollback, and the pack's YAML
export and import with a summary of what changes."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.models import AuditEntry
from app.clock import ManualClock
from app.console.models import Role
from scripts_library.models import Script, ScriptVersion
from tests.console.support import Console, make_account, make_cohort, make_member, make_script
from tests.support import AppHarness

DRAFT = {"title": "第一天任务", "category": "daily", "msgtype": "text", "attachments": "[]"}


async def _script(sessions: async_sessionmaker[AsyncSession], clock: ManualClock) -> None:
    await make_script(
        sessions,
        clock,
        key="day1_tasks",
        title="第一天任务",
        body="{{ student_name }}，今天的任务是选品。",
    )


async def test_the_preview_follows_the_draft_for_a_chosen_student_and_saving_makes_a_version(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    await _script(sessions, clock)
    cohort = await make_cohort(sessions, clock)
    await make_member(sessions, clock, cohort, "大橙子")
    async with Console(console_app.app) as browser:
        await browser.sign_in("xiaolu")
        editor = await browser.get("/console/scripts/day1_tasks")
        assert "{{ student_name }}" in editor.text  # the palette and the body, as text
        draft = {**DRAFT, "body": "{{ student_name }}，第 {{ day }} 天加油！"}
        shown = await browser.hx_post(
            "/console/scripts/day1_tasks/preview", {**draft, "preview_member": "大橙子"}
        )
        assert "大橙子，第 3 天加油！" in shown.text
        assert "群机器人" in shown.text  # the per-channel checks
        saved = await browser.post("/console/scripts/day1_tasks", {**draft, "note": "加油版"})
        assert saved.status_code == 303, saved.text
    async with sessions() as session:
        script = await session.scalar(select(Script))
        assert script is not None
        assert script.version == 2
        version = await session.scalar(select(ScriptVersion).where(ScriptVersion.version == 2))
        assert version is not None
        assert version.author == "xiaolu"
        actor = await session.scalar(
            select(AuditEntry.actor).where(AuditEntry.resource == "scripts")
        )
    assert actor == "xiaolu"


async def test_a_broken_template_is_refused_beside_the_body_with_its_line(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    await _script(sessions, clock)
    broken = {**DRAFT, "body": "第一行\n{{ student_name"}
    async with Console(console_app.app) as browser:
        await browser.sign_in("xiaolu")
        preview = await browser.hx_post("/console/scripts/day1_tasks/preview", broken)
        assert "第 2 行语法错误" in preview.text
        refused = await browser.post("/console/scripts/day1_tasks", broken)
        assert refused.status_code == 422
        assert 'id="body-error"' in refused.text
        assert "第 2 行语法错误" in refused.text
        unknown = await browser.post(
            "/console/scripts/day1_tasks", {**DRAFT, "body": "{{ nmae }}"}
        )
        assert unknown.status_code == 422
        assert "未知变量：nmae" in unknown.text
        bad_json = await browser.post(
            "/console/scripts/day1_tasks", {**DRAFT, "body": "好", "attachments": "[{"}
        )
        assert bad_json.status_code == 422
        assert 'id="attachments-error"' in bad_json.text
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(ScriptVersion)) == 1


async def test_versions_diff_and_rollback(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    await _script(sessions, clock)
    async with Console(console_app.app) as browser:
        await browser.sign_in("xiaolu")
        await browser.post("/console/scripts/day1_tasks", {**DRAFT, "body": "新的任务"})
        listing = await browser.get("/console/scripts/day1_tasks/versions")
        assert "第 2 版" in listing.text
        diff = await browser.get("/console/scripts/day1_tasks/diff?a=1&b=2")
        assert "新的任务" in diff.text
        assert 'class="add"' in diff.text
        back = await browser.post("/console/scripts/day1_tasks/rollback", {"version": "1"})
        assert back.status_code == 303
    async with sessions() as session:
        script = await session.scalar(select(Script))
        assert script is not None
        assert script.version == 3
        assert script.body == "{{ student_name }}，今天的任务是选品。"


PACK = """scripts:
  - key: day1_tasks
    title: 第一天任务
    category: daily
    msgtype: text
    body: 导入后的任务
  - key: faq_refund
    title: 退款
    category: faq
    msgtype: text
    body: 退款请联系班主任。
"""


async def test_import_shows_what_changes_then_applies_it_and_export_reads_back(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    await _script(sessions, clock)
    async with Console(console_app.app) as browser:
        await browser.sign_in("xiaolu")
        upload = {"file": ("pack.yaml", PACK.encode(), "application/x-yaml")}
        planned = await browser.post("/console/scripts/_import/preview", files=upload)
        assert planned.status_code == 200, planned.text
        assert "新建 1 条，更新 1 条，0 条不变" in planned.text
        assert "导入后的任务" in planned.text  # the diff of the changed one
        async with sessions() as session:  # nothing written yet
            assert await session.scalar(select(func.count()).select_from(Script)) == 1
        done = await browser.post(
            "/console/scripts/_import", {"text": PACK, "source": "pack.yaml"}
        )
        assert "新建 1 条，更新 1 条，未变 0 条" in done.text
        exported = await browser.get("/console/scripts/_export.yaml")
        assert "faq_refund" in exported.text
        assert exported.headers["content-disposition"].startswith("attachment")
        bomb = 'a: &a ["x","x"]\nb: &b [*a,*a]\nc: [*b,*b]\nscripts: []\n'
        refused = await browser.post("/console/scripts/_import", {"text": bomb})
        assert refused.status_code == 422
        assert "不支持 YAML 锚点和别名" in refused.text
        broken = await browser.post("/console/scripts/_import", {"text": "scripts: [\n"})
        assert broken.status_code == 422
        assert "YAML 格式错误" in broken.text
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Script)) == 2
