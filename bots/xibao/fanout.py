"""One group's share of a 喜报: routed (a customer group over its 群发 quota gets a 群SOP item),
checked against its channel's limits, and enqueued under `xibao:{achievement}:{group}`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.messages import OutMessage
from app.channels.reach import Channel, Destination, enqueue_message, message_payload, reach_group
from app.channels.routing import Routing, route_group
from app.models import Group, GroupStatus
from app.wecom.errors import UndeliverableError
from bots.xibao.models import Achievement, Broadcast, BroadcastTarget


def outbox_key(achievement_id: int, group_id: int) -> str:
    return f"xibao:{achievement_id}:{group_id}"


async def target(
    session: AsyncSession,
    broadcast: Broadcast,
    achievement: Achievement,
    group: Group,
    *,
    text: OutMessage,
    png: bytes | None,
    now: datetime,
    routing: Routing,
    delivery: str,
) -> BroadcastTarget:
    target = BroadcastTarget(
        broadcast_id=broadcast.id, group_id=group.id, group_name=group.name or f"#{group.id}"
    )
    try:
        if group.status != GroupStatus.ACTIVE:
            raise UndeliverableError("群已解散。")
        route = reach_group(group)
        message = message_for(route, text, png)
        message_payload(route, message)  # checked against the channel's limits first
        key = outbox_key(achievement.id, group.id)
        # A customer group over its 群发 quota gets the 喜报 as a 群SOP item instead.
        route = await route_group(
            session=session,
            group=group,
            destination=route,
            delivery=delivery,
            routing=routing,
            key=key,
            now=now,
        )
        target.channel = route.channel
    except UndeliverableError as exc:
        target.error = str(exc)
        return target
    target.outbox_id = await enqueue_message(
        session=session, key=key, destination=route, message=message, now=now, title="喜报"
    )
    return target


def message_for(route: Destination, text: OutMessage, png: bytes | None) -> OutMessage:
    """The 喜报 as its channel takes it, in one send per group: a customer group's mass-send
    task carries the script's text with the poster attached (the owner confirms once); robots
    and app chats take one msgtype per call, so they get the poster, which itself says who,
    what, which camp and when. Without a poster every group gets the script's text."""
    if route.channel in (Channel.CUSTOMER_GROUP, Channel.STAFF):
        return OutMessage("text", content=text.content, image=png or b"")
    if png is None:
        return text
    return OutMessage("image", image=png)
