"""The welcome: a new contact is enrolled by channel, welcomed with their personal H5 link
inside WeCom's 20-second window and tagged by channel; a student who deletes their staff
member is reported to that staff member (流失提醒).

Registered after membership (priority 10), which has already recorded the member, and
non-blocking, so later capabilities still see these events. The welcome is written to the
outbox in the event's transaction and sent right after its commit through the same row
(ARCHITECTURE §1 rule 3). An event handled after the window (the sweeper, after a crash)
skips the fresh handler (`max_age`) and reaches the late one, which enrolls and tags as
usual and records the welcome as a `dead` outbox row saying it expired.

The WeCom reads (the student's name, the channel tag's id) are each registration's
`prepare` step: they run before the event's transaction opens (bots.dispatch), so a slow
WeCom or a token refresh never holds the database, and they hand their `Lookups` to the
handler as `ctx.matched["lookups"]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.wecom.events import ExternalContactEvent
from bots.dispatch import Context, Router
from bots.dispatch.rules import ChangeType, OlderThan
from bots.welcome import service
from bots.welcome.lookups import LOOKUP_TIMEOUT_S, WINDOW, Lookups, look_up, lookup_budget

router = Router("welcome")
AFTER_MEMBERSHIP = 20  # and non-blocking
ADDED = ChangeType("add_external_contact", "add_half_external_contact")

ContactContext = Context[ExternalContactEvent]


async def _look_up(ctx: ContactContext, *, seconds: float) -> Mapping[str, Any]:
    event = ctx.event
    if not event.state:  # no channel, so no cohort: nothing to welcome or tag
        return {}
    found = await look_up(
        ctx.wecom,
        external_userid=event.external_user_id,
        known_name=None,
        tag_name=event.state,  # a cohort matches when its channel_state is the State
        seconds=seconds,
    )
    return {"lookups": found}


async def _prepare_fresh(ctx: ContactContext) -> Mapping[str, Any]:
    seconds = lookup_budget(created_at=ctx.event.created_at, now=ctx.now)
    return await _look_up(ctx, seconds=seconds)


async def _prepare_late(ctx: ContactContext) -> Mapping[str, Any]:
    return await _look_up(ctx, seconds=LOOKUP_TIMEOUT_S)


def _lookups(ctx: ContactContext) -> Lookups:
    found = ctx.matched.get("lookups")
    return found if isinstance(found, Lookups) else Lookups()


async def _enroll(ctx: ContactContext) -> tuple[service.Enrollment, Lookups] | None:
    """Enrollment, and what the lookups found; None for a non-camp contact."""
    event = ctx.event
    enrollment = await service.enroll(
        session=ctx.session,
        external_userid=event.external_user_id,
        channel_state=event.state,
        now=ctx.now,
        hooks=ctx.cohort_hooks,
    )
    if enrollment is None:
        return None
    looked_up = _lookups(ctx)
    service.remember_name(enrollment.member, looked_up.student_name, now=ctx.now)
    # A name CampBot already had (operators may have set it) is the one to greet by.
    found = Lookups(enrollment.member.name or looked_up.student_name, looked_up.channel_tag_id)
    if found.channel_tag_id:
        await service.queue_channel_tag(
            session=ctx.session,
            external_userid=event.external_user_id,
            staff_userid=event.user_id,
            channel_state=enrollment.cohort.channel_state,
            tag_id=found.channel_tag_id,
            now=ctx.now,
        )
    return enrollment, found


@router.on(
    ExternalContactEvent,
    ADDED,
    max_age=WINDOW,
    prepare=_prepare_fresh,
    priority=AFTER_MEMBERSHIP,
    block=False,
)
async def on_contact_added(ctx: ContactContext) -> None:
    """学员添加了员工：按渠道入营，20 秒内发出欢迎语（含专属学习页），按渠道打标签。"""
    event = ctx.event
    enrolled = await _enroll(ctx)
    if enrolled is None or not event.welcome_code:
        return  # not a camp contact, or WeCom gave no code (an admin-set welcome went out)
    enrollment, found = enrolled
    row_id = await service.queue_welcome(
        session=ctx.session,
        enrollment=enrollment,
        welcome_code=event.welcome_code,
        staff_userid=event.user_id,
        student_name=found.student_name,
        public_base_url=ctx.settings.public_base_url,
        now=ctx.now,
    )
    if row_id is not None:
        ctx.deliver_after_commit(row_id)


@router.on(
    ExternalContactEvent,
    ADDED,
    OlderThan(WINDOW),
    prepare=_prepare_late,
    priority=AFTER_MEMBERSHIP,
    block=False,
)
async def on_contact_added_late(ctx: ContactContext) -> None:
    """欢迎语窗口已过：照常入营、打标签，把这条欢迎语记为过期（发件箱里的失败记录）。"""
    event = ctx.event
    enrolled = await _enroll(ctx)
    if enrolled is None or not event.welcome_code or event.created_at is None:
        return
    await service.record_unsent(
        session=ctx.session,
        key=service.welcome_key(event.external_user_id, event.welcome_code),
        welcome_code=event.welcome_code,
        reason=service.expired_reason(created_at=event.created_at, now=ctx.now),
        now=ctx.now,
    )


@router.on(
    ExternalContactEvent, ChangeType("del_follow_user"), priority=AFTER_MEMBERSHIP, block=False
)
async def on_student_left(ctx: ContactContext) -> None:
    """学员删除了员工：给这位员工发流失提醒（membership 已把学员标记为流失）。"""
    event = ctx.event
    if not event.user_id:
        return
    # A CreateTime no datetime can hold (`created_at` is None) must not fail the event.
    stamp = event.create_time if event.created_at is not None else None
    await service.queue_lost_alert(
        session=ctx.session,
        external_userid=event.external_user_id,
        staff_userid=event.user_id,
        create_time=stamp or int(ctx.now.timestamp()),
        default_tz=ctx.settings.campbot_timezone,
        now=ctx.now,
    )
