"""Membership tracking: keeps members and group membership in step with WeCom events.

Registered early and non-blocking, so capability handlers (welcome, …) that
react to the same events still run, and see the member row already written.
"""

from __future__ import annotations

from app.models import MemberStatus
from app.wecom.events import ExternalChatEvent, ExternalContactEvent
from bots.dispatch import Context, Router
from bots.dispatch.rules import ChangeType, UpdateDetail
from bots.membership import service

router = Router("membership")
FIRST = 10  # before every other capability, and non-blocking


@router.on(
    ExternalContactEvent,
    ChangeType("add_external_contact", "add_half_external_contact"),
    priority=FIRST,
    block=False,
)
async def on_contact_added(ctx: Context[ExternalContactEvent]) -> None:
    """学员添加了员工：记录学员、跟进员工和来源渠道。"""
    event = ctx.event
    await service.record_follow(
        session=ctx.session,
        external_userid=event.external_user_id,
        staff_userid=event.user_id,
        channel_state=event.state,
        now=ctx.now,
    )


@router.on(ExternalContactEvent, ChangeType("del_follow_user"), priority=FIRST, block=False)
async def on_student_left(ctx: Context[ExternalContactEvent]) -> None:
    """学员删除了员工：标记为流失。"""
    await service.record_unfollow(
        session=ctx.session,
        external_userid=ctx.event.external_user_id,
        status=MemberStatus.LOST,
        now=ctx.now,
    )


@router.on(ExternalContactEvent, ChangeType("del_external_contact"), priority=FIRST, block=False)
async def on_student_removed(ctx: Context[ExternalContactEvent]) -> None:
    """员工删除了学员：标记为已移除。"""
    await service.record_unfollow(
        session=ctx.session,
        external_userid=ctx.event.external_user_id,
        status=MemberStatus.REMOVED,
        now=ctx.now,
    )


@router.on(ExternalChatEvent, ChangeType("create"), priority=FIRST, block=False)
async def on_group_created(ctx: Context[ExternalChatEvent]) -> None:
    """客户群创建：登记该群。"""
    await service.ensure_customer_group(
        session=ctx.session, chat_id=ctx.event.chat_id, now=ctx.now
    )


@router.on(
    ExternalChatEvent,
    ChangeType("update"),
    UpdateDetail("add_member", "del_member"),
    priority=FIRST,
    block=False,
)
async def on_group_members_changed(ctx: Context[ExternalChatEvent]) -> None:
    """成员入群或退群：更新群成员。"""
    event = ctx.event
    group = await service.ensure_customer_group(
        session=ctx.session, chat_id=event.chat_id, now=ctx.now
    )
    service.apply_member_version(
        group, last=event.last_mem_ver, current=event.cur_mem_ver, now=ctx.now
    )
    if event.update_detail == "add_member":
        await service.record_joins(
            session=ctx.session,
            group=group,
            member_keys=event.mem_change_list,
            join_scene=event.join_scene,
            now=ctx.now,
        )
    else:
        await service.record_leaves(
            session=ctx.session,
            group=group,
            member_keys=event.mem_change_list,
            quit_scene=event.quit_scene,
            now=ctx.now,
        )


@router.on(ExternalChatEvent, ChangeType("dismiss"), priority=FIRST, block=False)
async def on_group_dismissed(ctx: Context[ExternalChatEvent]) -> None:
    """客户群解散：标记该群，成员全部离开。"""
    event = ctx.event
    group = await service.ensure_customer_group(
        session=ctx.session, chat_id=event.chat_id, now=ctx.now
    )
    await service.dismiss_group(session=ctx.session, group=group, now=ctx.now)
