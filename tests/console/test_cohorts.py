"""期次 in the console: created and edited through the cohorts service with the API's reasons
beside the fields; groups from a pasted webhook URL; members with their link and QR code;
an assistant sees only their own cohorts."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.models import AuditEntry, Cohort
from app.clock import ManualClock
from app.console.models import Role
from app.models import Group
from tests.console.support import Console, make_account, make_cohort, make_member, only_id
from tests.support import AppHarness

COHORT = {
    "name": "第 6 期",
    "camp": "跨境电商实战营",
    "start_date": "2026-03-02",
    "days": "7",
    "channel_state": "camp6",
}


async def test_an_operator_creates_a_cohort_and_its_robot_group(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    async with Console(console_app.app) as browser:
        await browser.sign_in("xiaolu")
        created = await browser.post("/console/cohorts", COHORT)
        assert created.status_code == 303, created.text
        groups_page = created.headers["location"]
        url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=robot-key-0001"
        added = await browser.post(
            groups_page.removesuffix("/groups") + "/groups",
            {"name": "6期1群", "channel": "robot", "robot_key": url},
        )
        assert added.status_code == 303, added.text
        shown = await browser.get(groups_page)
    assert "6期1群" in shown.text
    async with sessions() as session:
        group = await session.scalar(select(Group))
        assert group is not None
        assert group.robot_key == "robot-key-0001"  # the key, taken from the pasted URL
        audited = set(
            await session.execute(
                select(AuditEntry.resource, AuditEntry.actor).where(
                    AuditEntry.resource != "accounts"
                )
            )
        )
    assert audited == {("cohorts", "xiaolu"), ("groups", "xiaolu")}


async def test_bad_input_gets_the_apis_reasons_beside_the_fields_and_saves_nothing(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    async with Console(console_app.app) as browser:
        await browser.sign_in("xiaolu")
        bad = {**COHORT, "start_date": "2026-02-30", "days": "0", "name": "a\x00b"}
        refused = await browser.post("/console/cohorts", bad)
        assert refused.status_code == 422
        assert 'id="start_date-error"' in refused.text
        assert "没有这一天" in refused.text
        assert "不能小于 1" in refused.text
        assert "不能包含换行、制表符等控制字符" in refused.text
        await browser.post("/console/cohorts", COHORT)
        taken = await browser.post("/console/cohorts", {**COHORT, "name": "第 7 期"})
        assert taken.status_code == 409
        assert "渠道 State「camp6」已被" in taken.text
        cohort_id = await only_id(sessions, Cohort.id)
        no_key = await browser.post(
            f"/console/cohorts/{cohort_id}/groups", {"name": "群", "channel": "robot"}
        )
        assert no_key.status_code == 422
        assert 'id="robot_key-error"' in no_key.text
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Cohort)) == 1
        assert await session.scalar(select(func.count()).select_from(Group)) == 0


async def test_members_show_their_link_and_qr_code_and_revoking_changes_it(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    cohort = await make_cohort(sessions, clock)
    member = await make_member(sessions, clock, cohort, "小林")
    await make_member(sessions, clock, cohort, "Amy")
    async with Console(console_app.app) as browser:
        await browser.sign_in("xiaolu")
        found = await browser.get(f"/console/cohorts/{cohort}/members?q=小林")
        assert "小林" in found.text
        assert "Amy" not in found.text
        page = await browser.get(f"/console/members/{member}")
        old = page.text.split('id="h5-link" value="')[1].split('"')[0]
        assert old.startswith("http://localhost:8000/h5/m/")
        qr = await browser.get(f"/console/members/{member}/qr.svg")
        assert qr.headers["content-type"].startswith("image/svg+xml")
        assert qr.text.lstrip().startswith(("<?xml", "<svg"))
        revoked = await browser.post(f"/console/members/{member}/revoke-link")
        assert revoked.status_code == 303
        again = await browser.get(f"/console/members/{member}?done=revoked")
        new = again.text.split('id="h5-link" value="')[1].split('"')[0]
        tagged = await browser.post(f"/console/members/{member}/tags", {"add": "学霸，上岸"})
        assert tagged.status_code == 303
        assert "学霸" in (await browser.get(f"/console/members/{member}")).text
    assert new != old
    assert (
        await console_app.client.get(old.removeprefix("http://localhost:8000"))
    ).status_code == 403


async def test_an_assistant_opens_only_their_own_cohorts(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    mine = await make_cohort(sessions, clock, name="6 期", state="camp6")
    theirs = await make_cohort(sessions, clock, name="7 期", state="camp7")
    other_student = await make_member(sessions, clock, theirs, "别人的学员")
    await make_account(sessions, clock, "zhujiao", Role.ASSISTANT, cohort_ids=[mine])
    async with Console(console_app.app) as browser:
        await browser.sign_in("zhujiao")
        listing = await browser.get("/console/cohorts")
        assert "6 期" in listing.text
        assert "7 期" not in listing.text
        assert (await browser.get(f"/console/cohorts/{mine}")).status_code == 200
        for path in (
            f"/console/cohorts/{theirs}",
            f"/console/cohorts/{theirs}/groups",
            f"/console/cohorts/{theirs}/members",
            f"/console/members/{other_student}",
        ):
            assert (await browser.get(path)).status_code == 403, path
        edit = await browser.post(f"/console/cohorts/{mine}", {"name": "改名"})
        assert edit.status_code == 403
