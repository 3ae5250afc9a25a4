"""Group joins: newcomers of a robot group wait for their batch (joins within 10 s of the
first are greeted together by one robot post naming them), member lists are re-read from
WeCom when a version gap shows a lost callback, and customer groups' WeCom welcome template
follows the cohort's script.

Only the recording happens here, in the event's transaction and after membership (which
has already stored the joins and flagged a gap). Batches are flushed, groups re-synced and
templates kept in step by the background loop (bots.group_welcome.loop), between
transactions, because each needs WeCom.
"""

from __future__ import annotations

from app.wecom.events import ExternalChatEvent
from bots.dispatch import Context, Router
from bots.dispatch.rules import ChangeType, UpdateDetail
from bots.group_welcome import service

router = Router("group_welcome")


@router.on(
    ExternalChatEvent,
    ChangeType("update"),
    UpdateDetail("add_member"),
    priority=20,
    block=False,
)
async def on_members_joined(ctx: Context[ExternalChatEvent]) -> None:
    """新成员入群：记入待欢迎名单（机器人群里 10 秒内入群的合成一条欢迎，点名新同学）。"""
    event = ctx.event
    await service.queue_newcomers(
        session=ctx.session,
        chat_id=event.chat_id,
        member_keys=event.mem_change_list,
        joined_at=event.created_at or ctx.now,
        now=ctx.now,
    )
