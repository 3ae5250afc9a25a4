"""Keyword Q&A: answers 1:1 app messages from internal members.

Rules (`qa_rules`, edited at `/admin/api/qa-rules`) match through `bots.qa.matcher`. The
answer is a passive reply when fast enough: for a member's text the callback waits up to
`app.api.callback.PASSIVE_BUDGET_S` and carries the reply the handler offered
(`ctx.passive_reply`) in its HTTP answer, once the event's transaction committed; no API
call, no quota. Otherwise (budget passed, the sweeper re-runs the event, a second reply to
the same question) it goes out as an app message (`message/send`) through the outbox,
written in the event's transaction and pushed right after it commits
(`ctx.deliver_after_commit`). Either way it is sent exactly once.

Check-ins (`打卡 …`, the check-in handler's own pattern) are never answered here; a question
that merely starts with 打卡 (「打卡时间是几点」) is: nobody else would answer it.
"""

from __future__ import annotations

from typing import Any

from app.wecom.events import TextMessage
from bots.checkin import service as checkin
from bots.dispatch import Context, Router, RuleResult
from bots.qa import answer as qa_answer
from bots.qa import matching

router = Router("qa")
AFTER_CHECKIN = 60  # check-in's handlers register with lower (earlier) priorities


def _is_question(event: object) -> bool:
    """A member's text to the app that is not a check-in."""
    if not isinstance(event, TextMessage) or not event.from_user:
        return False
    return not checkin.is_checkin_text(event.content)


def a_question(ctx: Context[Any]) -> RuleResult:
    return _is_question(ctx.event)


def may_answer(event: TextMessage) -> bool:
    """For the callback: whether `on_question` may answer this text with a passive reply (a
    rule's keyword, or a literal a rule's regex needs, occurs in it), so it is worth waiting."""
    return _is_question(event) and matching.may_answer(event.content)


@router.on(TextMessage, a_question, priority=AFTER_CHECKIN, replies=may_answer)
async def on_question(ctx: Context[TextMessage]) -> None:
    """成员给应用发消息：按问答规则回复；没有规则匹配时记入「未解答问题」。"""
    event = ctx.event
    rows = await qa_answer.answer(
        session=ctx.session,
        userid=event.from_user,
        question=event.content,
        event_key=event.dedupe_key,
        public_base_url=ctx.settings.public_base_url,
        now=ctx.now,
        passive=ctx.passive_reply,
    )
    for row_id in rows:
        ctx.deliver_after_commit(row_id)
