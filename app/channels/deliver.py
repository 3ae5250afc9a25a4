"""Turning an outbox row into the WeCom call of its channel (the sender's `deliver`)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from app.channels.messages import OutMessage, check, vars_of
from app.channels.reach import LIMITS, Channel
from app.models import OutboxMessage
from app.sender import FAILED_TARGETS, PartlySent
from app.wecom.client import WeComClient
from app.wecom.errors import UndeliverableError

JSON = dict[str, Any]


def recipients(row: OutboxMessage) -> list[str]:
    """Who a mass-send row reaches: its target, or a merged task's students."""
    merged = row.payload.get("external_userids")
    return [str(t) for t in merged] if isinstance(merged, list) and merged else [row.target]


def refused_recipients(row: OutboxMessage) -> set[str]:
    """The recipients WeCom left out of the task it accepted (its `fail_list`)."""
    failed = row.payload.get(FAILED_TARGETS)
    return {str(t) for t in failed} if isinstance(failed, list) else set()


class ChannelDeliverer:
    """`await deliverer(row)` sends the row and returns WeCom's msgid when it gives one
    (as `PartlySent`, with the targets it refused, when it accepted a task for the others)."""

    def __init__(self, client: WeComClient) -> None:
        self.client = client
        self._routes: dict[str, Callable[[OutboxMessage], Awaitable[str | PartlySent | None]]] = {
            Channel.ROBOT: self._robot,
            Channel.APPCHAT: self._appchat,
            Channel.APP_MESSAGE: self._app_message,
            Channel.CUSTOMER_GROUP: self._mass_send,
            Channel.CUSTOMER_SINGLE: self._mass_send,
            Channel.WELCOME: self._welcome,
            Channel.MARK_TAG: self._mark_tag,
            Channel.REMIND: self._remind,
        }

    async def __call__(self, row: OutboxMessage) -> str | PartlySent | None:
        send = self._routes.get(row.channel)
        if send is None:
            raise UndeliverableError(f"未知的发送渠道：{row.channel}")
        return await send(row)

    @staticmethod
    def _message(row: OutboxMessage) -> OutMessage:
        message = OutMessage.from_json(row.payload["message"])  # type: ignore[arg-type]
        check(message, LIMITS[Channel(row.channel)])
        return message

    async def _robot(self, row: OutboxMessage) -> None:
        message = self._message(row)
        body: JSON = {"msgtype": message.msgtype}
        match message.msgtype:
            case "text":
                body["text"] = {
                    "content": message.content,
                    "mentioned_list": list(message.mentions),
                }
            case "markdown":
                # Robots @ people in markdown only through <@userid> inside the text.
                mentions = "".join(f"<@{userid}>" for userid in message.mentions)
                body["markdown"] = {"content": message.content + mentions}
            case "image":
                body["image"] = {
                    "base64": base64.b64encode(message.image).decode(),
                    "md5": hashlib.md5(message.image).hexdigest(),
                }
            case "news":
                body["news"] = {"articles": [vars_of(a) for a in message.articles]}
            case _:
                media_id = await self.client.upload_webhook_media(
                    key=row.target,
                    kind="file",
                    filename=message.filename or "file",
                    content=message.file,
                )
                body["file"] = {"media_id": media_id}
        await self.client.send_webhook(key=row.target, message=body)
        return None

    async def _app_body(self, message: OutMessage) -> JSON:
        """The message part shared by message/send and appchat/send."""
        match message.msgtype:
            case "text" | "markdown":
                return {"msgtype": message.msgtype, message.msgtype: {"content": message.content}}
            case "news":
                return {
                    "msgtype": "news",
                    "news": {"articles": [vars_of(a) for a in message.articles]},
                }
            case "image":
                media_id = await self.client.upload_media(
                    kind="image", filename="image.png", content=message.image
                )
                return {"msgtype": "image", "image": {"media_id": media_id}}
            case _:
                media_id = await self.client.upload_media(
                    kind="file", filename=message.filename or "file", content=message.file
                )
                return {"msgtype": "file", "file": {"media_id": media_id}}

    async def _appchat(self, row: OutboxMessage) -> None:
        await self.client.send_appchat(
            chatid=row.target, message=await self._app_body(self._message(row))
        )
        return None

    async def _app_message(self, row: OutboxMessage) -> str:
        result = await self.client.send_app_message(
            touser=[row.target], message=await self._app_body(self._message(row))
        )
        if row.target in result.invaliduser.split("|"):
            raise UndeliverableError(f"成员 {row.target} 不在应用可见范围内或不存在。")
        return result.msgid

    async def _attachments(self, message: OutMessage) -> list[JSON]:
        match message.msgtype:
            # A text may carry one image (a 喜报 and its poster): one task for both.
            case "image" | "text" if message.image:
                media_id = await self.client.upload_media(
                    kind="image", filename="image.png", content=message.image
                )
                return [{"msgtype": "image", "image": {"media_id": media_id}}]
            case "news":
                return [
                    {
                        "msgtype": "link",
                        "link": {
                            "title": a.title,
                            "url": a.url,
                            "desc": a.description,
                            "picurl": a.picurl,
                        },
                    }
                    for a in message.articles
                ]
            case "file":
                media_id = await self.client.upload_media(
                    kind="file", filename=message.filename or "file", content=message.file
                )
                return [{"msgtype": "file", "file": {"media_id": media_id}}]
            case _:
                return []

    async def _mass_send(self, row: OutboxMessage) -> str | PartlySent:
        message = self._message(row)
        group = row.channel == Channel.CUSTOMER_GROUP
        targets = recipients(row)
        result = await self.client.add_msg_template(
            chat_type="group" if group else "single",
            sender=str(row.payload["sender"]),
            chat_ids=targets if group else (),
            external_userids=() if group else targets,
            text=message.content if message.msgtype == "text" else None,
            attachments=await self._attachments(message),
        )
        if set(targets) <= set(result.fail_list):
            raise UndeliverableError(
                f"群发无法送达 {'、'.join(targets)}（不是该员工的客户或客户群）。"
            )
        refused = set(result.fail_list)
        failed = [t for t in targets if t in refused]
        return PartlySent(result.msgid, tuple(failed)) if failed else result.msgid

    async def _welcome(self, row: OutboxMessage) -> None:
        await self.client.send_welcome_msg(
            welcome_code=row.target,
            text=str(row.payload.get("text") or "") or None,
            attachments=list(row.payload.get("attachments") or []),  # type: ignore[call-overload]
        )
        return None

    async def _mark_tag(self, row: OutboxMessage) -> None:
        payload = row.payload
        await self.client.mark_tag(
            userid=str(payload["userid"]),
            external_userid=row.target,
            add_tag=list(payload.get("add_tag") or []),  # type: ignore[call-overload]
            remove_tag=list(payload.get("remove_tag") or []),  # type: ignore[call-overload]
        )
        return None

    async def _remind(self, row: OutboxMessage) -> None:
        await self.client.remind_groupmsg_send(msgid=row.target)
        return None
