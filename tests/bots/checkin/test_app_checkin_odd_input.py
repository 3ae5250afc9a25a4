"""打卡 by app message with input WeCom's format allows but nobody expects: the event is
handled (entry recorded, confirmation sent), never failed for good."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from app.models import InboxEvent
from tests.bots.checkin import test_app_checkin
from tests.bots.checkin.test_app_checkin import STUDENT, Camp
from tests.support import AGENT_ID, CORP_ID

camp = test_app_checkin.camp  # the fixture: a cohort with the internal member lisi


def _text(userid: str, content: str, msg_id: str, at: int) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
        f"<FromUserName><![CDATA[{userid}]]></FromUserName>"
        f"<CreateTime>{at}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content>"
        f"<MsgId>{msg_id}</MsgId><AgentID>{AGENT_ID}</AgentID></xml>"
    )


async def test_a_very_long_msg_id_still_checks_in_and_answers(camp: Camp) -> None:
    # The reply's outbox key once embedded the raw MsgId: past the key column's 300
    # characters PostgreSQL refused the row and the event failed for good.
    long_id = secrets.token_hex(200)
    at = int(camp.clock.now().timestamp())
    sent = await camp.wecom.send(_text(STUDENT, "打卡 今天读完第三章", long_id, at))
    assert sent.response.status_code == 200

    [entry] = await camp.entries()
    assert entry.text == "今天读完第三章"
    [(to, text)] = await camp.replies()
    assert (to, text.splitlines()[0]) == (STUDENT, "✅ 打卡成功（第 1 天）")
    async with camp.sessions() as session:
        statuses = (await session.execute(select(InboxEvent.status))).scalars().all()
    assert statuses == ["handled"]
