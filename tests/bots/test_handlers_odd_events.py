"""Events students and WeCom really send, in shapes nobody planned for: each is handled
(the inbox row ends `handled`, never failed for good), and a student hears Chinese."""

from __future__ import annotations

import io
from datetime import timedelta

from PIL import Image
from sqlalchemy import delete, select

from app.admin.models import Cohort
from app.models import OutboxMessage
from app.wecom_sandbox import callback_xml
from app.wecom_sandbox.records import MemberChange
from bots.group_welcome.models import GroupJoinPending
from tests.bots.checkin import test_app_checkin
from tests.bots.checkin.test_app_checkin import STUDENT
from tests.bots.group_welcome import test_group_welcome
from tests.bots.welcome import test_welcome
from tests.support import inbox_rows

welcome_camp = test_welcome.camp
group_camp = test_group_welcome.camp
checkin_camp = test_app_checkin.camp
settings = test_welcome.settings
script = test_welcome.script


async def _statuses(sessions: test_welcome.Sessions) -> set[str]:
    return {row.status for row in await inbox_rows(sessions)}


# --------------------------------------------------------------------------- welcome


async def test_a_state_naming_a_deleted_cohort_enrolls_and_welcomes_nobody(
    welcome_camp: test_welcome.Camp,
) -> None:
    camp = welcome_camp
    async with camp.sessions.begin() as session:
        await session.execute(delete(Cohort))

    await camp.add()

    assert await _statuses(camp.sessions) == {"handled"}
    assert camp.welcome_calls() == []
    assert await camp.cohorts_of_student() == []


async def test_odd_states_never_fail_the_event(
    welcome_camp: test_welcome.Camp,
) -> None:
    camp = welcome_camp
    for index, state in enumerate(["x" * 30, "camp6' OR 1=1", "学员🚀", "camp6 "]):
        await camp.wecom.add_external_contact(
            f"wmOdd{index}", userid=test_welcome.STAFF, state=state
        )
    assert await _statuses(camp.sessions) == {"handled"}


async def test_a_stranger_deleting_staff_is_reported_without_failing(
    welcome_camp: test_welcome.Camp,
) -> None:
    camp = welcome_camp
    await camp.wecom.del_follow_user("wmNeverSeen", userid=test_welcome.STAFF)

    assert await _statuses(camp.sessions) == {"handled"}
    [alert] = await camp.outbox("app_message")
    assert "wmNeverSeen" in alert.payload["message"]["content"]


# --------------------------------------------------------------------------- group joins


async def test_a_join_in_a_chat_campbot_does_not_know_is_handled(
    group_camp: test_group_welcome.Camp,
) -> None:
    camp = group_camp
    change = MemberChange("wrNeverSeenChat", ("wmA", "wmB"), "v1", "v2")
    plaintext = callback_xml.chat_members_changed(
        camp.wecom.corp_id, change, detail="add_member", scene=3, at=camp.clock.now()
    )
    await camp.wecom.send(plaintext)
    camp.clock.advance(timedelta(seconds=11))

    assert await _statuses(camp.sessions) == {"handled"}
    assert await camp.flush() == 0
    assert await camp.rows(GroupJoinPending) == []


# --------------------------------------------------------------------------- 1:1 打卡


async def test_an_image_with_neither_picurl_nor_media_id_is_no_checkin(
    checkin_camp: test_app_checkin.Camp,
) -> None:
    camp = checkin_camp
    await camp.image(STUDENT, pic_url="", media_id="")

    assert await camp.entries() == []
    assert await camp.replies() == []
    assert await _statuses(camp.sessions) == {"handled"}


def _png(shade: int) -> bytes:
    """A distinct small PNG per shade (content-addressed storage would merge equal ones)."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (shade * 20, 100, 150)).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_a_tenth_image_is_refused_in_chinese_and_the_nine_stay(
    checkin_camp: test_app_checkin.Camp,
) -> None:
    camp = checkin_camp
    for number in range(10):
        media_id = camp.sandbox.add_member_image(_png(number), filename=f"{number}.png")
        await camp.image(STUDENT, pic_url="", media_id=media_id)

    [entry] = await camp.entries()
    assert len(entry.images) == 9
    async with camp.sessions() as session:
        rows = await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))
        replies = [row.payload["message"]["content"] for row in rows.scalars()]
    assert len(replies) == 10
    assert replies[-1] == "打卡没有成功：最多上传 9 张图片，现在有 10 张。"
    assert await _statuses(camp.sessions) == {"handled"}


async def test_a_checkin_after_the_camp_ended_is_answered_in_chinese(
    checkin_camp: test_app_checkin.Camp,
) -> None:
    camp = checkin_camp
    camp.clock.advance(timedelta(days=30))
    await camp.wecom.text_from_member(STUDENT, "打卡 还想打")

    assert await camp.entries() == []
    [(_, text)] = await camp.replies()
    assert text == "打卡没有成功：本期训练营已经结束，不能再打卡了。"
    assert await _statuses(camp.sessions) == {"handled"}


async def test_a_checkin_before_the_camp_opens_is_answered_in_chinese(
    checkin_camp: test_app_checkin.Camp,
) -> None:
    camp = checkin_camp
    async with camp.sessions.begin() as session:
        cohort = (await session.execute(select(Cohort))).scalar_one()
        cohort.start_date = cohort.start_date + timedelta(days=10)
    await camp.wecom.text_from_member(STUDENT, "打卡")

    assert await camp.entries() == []
    [(_, text)] = await camp.replies()
    assert text.startswith("打卡没有成功：训练营 ")
    assert await _statuses(camp.sessions) == {"handled"}


async def test_nothing_is_left_in_the_outbox_unsendable(
    checkin_camp: test_app_checkin.Camp,
) -> None:
    camp = checkin_camp
    await camp.wecom.text_from_member(STUDENT, "打卡 " + "长" * 5000)

    [(_, text)] = await camp.replies()
    assert text.startswith("打卡没有成功：内容太长了")
    async with camp.sessions() as session:
        statuses = set((await session.execute(select(OutboxMessage.status))).scalars())
    assert statuses == {"sent"}


async def test_a_leave_event_with_an_absurd_create_time_is_still_reported(
    welcome_camp: test_welcome.Camp,
) -> None:
    camp = welcome_camp
    plaintext = callback_xml.follow_user_deleted(
        camp.wecom.corp_id,
        userid=test_welcome.STAFF,
        external_userid="wmOddTime",
        at=camp.clock.now(),
    )
    stamp = str(int(camp.clock.now().timestamp()))
    for odd in ("99999999999999", "-99999999999999"):
        await camp.wecom.send(plaintext.replace(stamp, odd))

    assert await _statuses(camp.sessions) == {"handled"}
