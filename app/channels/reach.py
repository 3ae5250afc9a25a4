"""Which API reaches a group or a person, and enqueueing a message to them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from app import outbox
from app.channels.messages import APP, MASS_SEND, ROBOT, Limits, OutMessage, check
from app.models import Group, GroupChannel, Member
from app.wecom.errors import UndeliverableError


class Channel(StrEnum):
    ROBOT = "robot"  # group robot webhook
    APPCHAT = "appchat"  # an app-created internal group
    APP_MESSAGE = "app_message"  # message/send to one internal member
    CUSTOMER_GROUP = "customer_group"  # mass send to a customer group; the owner confirms
    CUSTOMER_SINGLE = "customer_single"  # mass send to one external contact
    WELCOME = "welcome"  # send_welcome_msg, within 20 s of the add event
    MARK_TAG = "mark_tag"
    REMIND = "remind_mass_send"  # nudge a mass-send's sender to confirm
    # 群SOP: a staff member posts it from the chat toolbar (`app.channels.staff`); the
    # target is the chat (a customer group's chat id, or an external userid for a 1:1 chat).
    STAFF = outbox.STAFF_CHANNEL


LIMITS: dict[Channel, Limits] = {
    Channel.ROBOT: ROBOT,
    Channel.APPCHAT: APP,
    Channel.APP_MESSAGE: APP,
    Channel.CUSTOMER_GROUP: MASS_SEND,
    Channel.CUSTOMER_SINGLE: MASS_SEND,
    Channel.STAFF: MASS_SEND,  # posted into a customer chat: what a 群发 could carry
}


@dataclass(frozen=True, slots=True)
class Destination:
    """Where an outbox row goes: the channel, its target there, and who must confirm it."""

    channel: Channel
    target: str
    sender: str = ""  # the member who must confirm a mass send, or post a 群SOP item
    # A 群SOP item's chat: "group" (a customer group) or "single" (a 1:1 chat).
    chat: str = ""

    @property
    def label(self) -> str:
        return f"{self.channel}:{self.target}"


def reach_group(group: Group) -> Destination:
    """The API that really reaches this group (ARCHITECTURE §2)."""
    name = group.name or group.chat_id or f"#{group.id}"
    if group.channel == GroupChannel.ROBOT:
        if not group.robot_key:
            raise UndeliverableError(f"群「{name}」通过群机器人发送，但没有填写机器人 key。")
        return Destination(Channel.ROBOT, group.robot_key)
    if not group.chat_id:
        raise UndeliverableError(f"群「{name}」没有填写群 ID（chat_id）。")
    if group.channel == GroupChannel.APPCHAT:
        return Destination(Channel.APPCHAT, group.chat_id)
    if not group.owner_userid:
        raise UndeliverableError(f"客户群「{name}」没有填写群主（owner_userid），无法群发。")
    return Destination(Channel.CUSTOMER_GROUP, group.chat_id, sender=group.owner_userid)


def reach_member(member: Member) -> Destination:
    """Internal members get app messages; external students a single mass send by their staff."""
    if member.userid:
        return Destination(Channel.APP_MESSAGE, member.userid)
    if member.external_userid and member.staff_userid:
        return Destination(
            Channel.CUSTOMER_SINGLE, member.external_userid, sender=member.staff_userid
        )
    raise UndeliverableError(
        f"学员「{member.name or member.id}」没有可用的触达方式（缺少跟进员工）。"
    )


def staff_of_group(group: Group) -> Destination:
    """The group's 群SOP: its assistant posts it, or its owner when none is assigned."""
    name = group.name or group.chat_id or f"#{group.id}"
    staff = group.assistant_userid or group.owner_userid
    if not (group.chat_id and staff):
        raise UndeliverableError(f"客户群「{name}」没有群主或助教，无法安排群SOP。")
    return Destination(Channel.STAFF, group.chat_id, sender=staff, chat="group")


def staff_of_member(member: Member) -> Destination:
    """An external student's 1:1 群SOP: the staff member they follow posts it."""
    if not (member.external_userid and member.staff_userid):
        raise UndeliverableError(
            f"学员「{member.name or member.id}」没有跟进员工，无法安排群SOP。"
        )
    return Destination(
        Channel.STAFF, member.external_userid, sender=member.staff_userid, chat="single"
    )


def message_payload(
    destination: Destination, message: OutMessage, *, title: str = ""
) -> dict[str, object]:
    """The outbox payload for `message` on `destination`, after the channel's limits accept it;
    a 群SOP item also says which chat kind it goes to and what it is (`title`)."""
    limits = LIMITS.get(destination.channel)
    if limits is None:
        raise UndeliverableError(f"{destination.channel} 不是消息渠道。")
    check(message, limits)
    payload: dict[str, object] = {"message": message.to_json(), "sender": destination.sender}
    if destination.channel == Channel.STAFF:
        payload.update(chat=destination.chat, title=title)
    return payload


async def enqueue_message(
    *,
    session: AsyncSession,
    key: str,
    destination: Destination,
    message: OutMessage,
    now: datetime,
    not_before: datetime | None = None,
    title: str = "",
) -> int | None:
    """Check and enqueue; None when `key` was already enqueued (nothing is sent twice)."""
    return await outbox.enqueue(
        session=session,
        key=key,
        channel=destination.channel,
        target=destination.target,
        payload=message_payload(destination, message, title=title),
        now=now,
        not_before=not_before,
    )
