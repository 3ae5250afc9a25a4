"""Membership tracking: keeps members and group membership in step with WeCom events.

Registered early and non-blocking, so capability handlers (welcome, …) that
react to the same events still run, and see the member row already written.
"""

from __future__ import annotations

from typing import cast

from app.models import MemberStatus
from app.wecom.events import ExternalChatEvent, ExternalContactEvent
from bots import membership_service as service
from bots.dispatch import Context, Router
from bots.rules import ChangeType, UpdateDetail

router = Router("membership")
FIRST = {"priority": 10, "block": False}


def _contact(ctx: Context) -> ExternalContactEvent:
    return cast(ExternalContactEvent, ctx.event)


def _chat(ctx: Context) -> ExternalChatEvent:
    return cast(ExternalChatEvent, ctx.event)


@router.on_event(
    "change_external_contact",
    ChangeType("add_external_contact", "add_half_external_contact"),
    **FIRST,
)
async def on_contact_added(ctx: Context) -> None:
    """学员添加了员工：记录学员、跟进员工和来源渠道。"""
    event = _contact(ctx)
    await service.record_follow(
        session=ctx.session,
        external_userid=event.external_user_id,
        staff_userid=event.user_id,
        channel_state=event.state,
        now=ctx.now,
    )


@router.on_event("change_external_contact", ChangeType("del_follow_user"), **FIRST)
async def on_student_left(ctx: Context) -> None:
    """学员删除了员工：标记为流失。"""
    await service.record_unfollow(
        session=ctx.session,
        external_userid=_contact(ctx).external_user_id,
        status=MemberStatus.LOST,
        now=ctx.now,
    )


@router.on_event("change_external_contact", ChangeType("del_external_contact"), **FIRST)
async def on_student_removed(ctx: Context) -> None:
    """员工删除了学员：标记为已移除。"""
    await service.record_unfollow(
        session=ctx.session,
        external_userid=_contact(ctx).external_user_id,
        status=MemberStatus.REMOVED,
        now=ctx.now,
    )


@router.on_event("change_external_chat", ChangeType("create"), **FIRST)
async def on_group_created(ctx: Context) -> None:
    """客户群创建：登记该群。"""
    await service.ensure_customer_group(
        session=ctx.session, chat_id=_chat(ctx).chat_id, now=ctx.now
    )


@router.on_event(
    "change_external_chat", ChangeType("update"), UpdateDetail("add_member", "del_member"), **FIRST
)
async def on_group_members_changed(ctx: Context) -> None:
    """成员入群或退群：更新群成员。"""
    event = _chat(ctx)
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


@router.on_event("change_external_chat", ChangeType("dismiss"), **FIRST)
async def on_group_dismissed(ctx: Context) -> None:
    """客户群解散：标记该群，成员全部离开。"""
    event = _chat(ctx)
    group = await service.ensure_customer_group(
        session=ctx.session, chat_id=event.chat_id, now=ctx.now
    )
    await service.dismiss_group(session=ctx.session, group=group, now=ctx.now)
