"""WeComClient: every call CampBot makes to WeCom, as one typed method per endpoint.

The protocol rules (the token, its refresh, -1 retried, typed errors, transport errors
never retried) are its base class's, `app.wecom.transport.WeComTransport`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any
from weakref import WeakValueDictionary

from app.wecom import media_cache
from app.wecom.jsapi import Tickets
from app.wecom.tokens import IssuedToken, TokenStore
from app.wecom.transport import JSON, WeComTransport
from app.wecom.types import (
    CorpTagGroup,
    ExternalContact,
    GroupChat,
    GroupChatList,
    GroupMsgSendResult,
    MessageSendResult,
    MsgTemplateResult,
)

# Media ids live 3 days; reuse them for a little less.
MEDIA_REUSE = timedelta(days=2, hours=12)
# media/get: the id is unknown or past its 3 days; asking again will not help.
INVALID_MEDIA_ID = 40007


class WeComClient(WeComTransport):
    """The endpoints CampBot uses; each answers a typed result or raises a WeComError."""

    _tickets: Tickets | None = None
    # One lock per content being uploaded, gone once nobody waits on it.
    _uploading: WeakValueDictionary[tuple[str, str, str], asyncio.Lock] | None = None

    # -- JS-SDK tickets and web sign-in (the staff sidebar) ----------------------------------

    async def get_jsapi_ticket(self) -> IssuedToken:
        """The corp's jsapi ticket (signs `config`); 400 fetches an hour per corp."""
        data = await self.call("GET", "/cgi-bin/get_jsapi_ticket")
        return IssuedToken(str(data["ticket"]), int(data.get("expires_in") or 7200))

    async def get_agent_config_ticket(self) -> IssuedToken:
        """The app's ticket (signs `agentConfig`); 100 fetches an hour per app."""
        data = await self.call("GET", "/cgi-bin/ticket/get", params={"type": "agent_config"})
        return IssuedToken(str(data["ticket"]), int(data.get("expires_in") or 7200))

    @property
    def tickets(self) -> Tickets:
        """Both tickets, cached in SQL and shared by every instance (`app.wecom.jsapi`)."""
        if self._tickets is None:
            app = f"{self.corp_id}:{self.agent_id}"
            self._tickets = Tickets(
                corp=TokenStore(
                    app_key=f"jsapi:{app}",
                    sessions=self._sessions,
                    clock=self._clock,
                    fetch=self.get_jsapi_ticket,
                    kind="jsapi_ticket",
                ),
                agent=TokenStore(
                    app_key=f"agent_ticket:{app}",
                    sessions=self._sessions,
                    clock=self._clock,
                    fetch=self.get_agent_config_ticket,
                    kind="agent_ticket",
                ),
            )
        return self._tickets

    async def user_of_code(self, *, code: str) -> str | None:
        """The corp member an OAuth `code` names (`auth/getuserinfo`; the legacy endpoint's
        `UserId` spelling read too); None for someone outside the corp. A code works once:
        a reused or expired one raises WeComAPIError 40029."""
        data = await self.call("GET", "/cgi-bin/auth/getuserinfo", params={"code": code})
        userid = data.get("userid") or data.get("UserId")
        return str(userid) if userid else None

    # -- messages --------------------------------------------------------------------------

    async def send_app_message(
        self,
        *,
        touser: Sequence[str],
        message: Mapping[str, Any],
        duplicate_check_interval: int = 1800,
    ) -> MessageSendResult:
        """message/send to internal members. WeCom's own duplicate check closes the window
        where an answer was lost and the outbox sends again."""
        body = {
            "touser": "|".join(touser),
            "agentid": self.agent_id,
            **message,
            "enable_duplicate_check": 1,
            "duplicate_check_interval": duplicate_check_interval,
        }
        return MessageSendResult.model_validate(
            await self.call("POST", "/cgi-bin/message/send", json=body)
        )

    async def send_appchat(self, *, chatid: str, message: Mapping[str, Any]) -> None:
        await self.call("POST", "/cgi-bin/appchat/send", json={"chatid": chatid, **message})

    async def send_webhook(self, *, key: str, message: Mapping[str, Any]) -> None:
        await self.call_webhook("/cgi-bin/webhook/send", key=key, json=message)

    async def send_welcome_msg(
        self,
        *,
        welcome_code: str,
        text: str | None = None,
        attachments: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        body: JSON = {"welcome_code": welcome_code}
        if text:
            body["text"] = {"content": text}
        if attachments:
            body["attachments"] = list(attachments)
        await self.call("POST", "/cgi-bin/externalcontact/send_welcome_msg", json=body)

    async def add_msg_template(
        self,
        *,
        chat_type: str,
        sender: str,
        chat_ids: Sequence[str] = (),
        external_userids: Sequence[str] = (),
        text: str | None = None,
        attachments: Sequence[Mapping[str, Any]] = (),
    ) -> MsgTemplateResult:
        """Create a mass-send task; it is sent only when `sender` confirms it in WeCom."""
        body: JSON = {"chat_type": chat_type, "sender": sender}
        if chat_ids:
            body["chat_id_list"] = list(chat_ids)
        if external_userids:
            body["external_userid"] = list(external_userids)
        if text:
            body["text"] = {"content": text}
        if attachments:
            body["attachments"] = list(attachments)
        return MsgTemplateResult.model_validate(
            await self.call("POST", "/cgi-bin/externalcontact/add_msg_template", json=body)
        )

    async def get_groupmsg_send_result(
        self, *, msgid: str, userid: str, cursor: str = "", limit: int = 500
    ) -> GroupMsgSendResult:
        body = {"msgid": msgid, "userid": userid, "limit": limit, "cursor": cursor}
        return GroupMsgSendResult.model_validate(
            await self.call("POST", "/cgi-bin/externalcontact/get_groupmsg_send_result", json=body)
        )

    async def remind_groupmsg_send(self, *, msgid: str) -> None:
        await self.call(
            "POST", "/cgi-bin/externalcontact/remind_groupmsg_send", json={"msgid": msgid}
        )

    # -- customer contact ------------------------------------------------------------------

    async def get_group_chat(self, *, chat_id: str, need_name: bool = False) -> GroupChat:
        data = await self.call(
            "POST",
            "/cgi-bin/externalcontact/groupchat/get",
            json={"chat_id": chat_id, "need_name": int(need_name)},
        )
        return GroupChat.model_validate(data["group_chat"])

    async def list_group_chats(
        self,
        *,
        owner_userids: Sequence[str] = (),
        cursor: str = "",
        limit: int = 1000,
        status_filter: int = 0,
    ) -> GroupChatList:
        body: JSON = {"status_filter": status_filter, "cursor": cursor, "limit": limit}
        if owner_userids:
            body["owner_filter"] = {"userid_list": list(owner_userids)}
        return GroupChatList.model_validate(
            await self.call("POST", "/cgi-bin/externalcontact/groupchat/list", json=body)
        )

    async def get_external_contact(self, *, external_userid: str) -> ExternalContact:
        return ExternalContact.model_validate(
            await self.call(
                "GET", "/cgi-bin/externalcontact/get", params={"external_userid": external_userid}
            )
        )

    async def mark_tag(
        self,
        *,
        userid: str,
        external_userid: str,
        add_tag: Sequence[str] = (),
        remove_tag: Sequence[str] = (),
    ) -> None:
        await self.call(
            "POST",
            "/cgi-bin/externalcontact/mark_tag",
            json={
                "userid": userid,
                "external_userid": external_userid,
                "add_tag": list(add_tag),
                "remove_tag": list(remove_tag),
            },
        )

    async def get_corp_tag_list(
        self, *, tag_ids: Sequence[str] = (), group_ids: Sequence[str] = ()
    ) -> list[CorpTagGroup]:
        data = await self.call(
            "POST",
            "/cgi-bin/externalcontact/get_corp_tag_list",
            json={"tag_id": list(tag_ids), "group_id": list(group_ids)},
        )
        return [CorpTagGroup.model_validate(g) for g in data.get("tag_group", [])]

    async def add_group_welcome_template(
        self, *, template: Mapping[str, Any], notify: bool = False
    ) -> str:
        body = {**template, "agentid": self.agent_id, "notify": int(notify)}
        data = await self.call(
            "POST", "/cgi-bin/externalcontact/group_welcome_template/add", json=body
        )
        return str(data["template_id"])

    async def edit_group_welcome_template(
        self, *, template_id: str, template: Mapping[str, Any]
    ) -> None:
        body = {**template, "template_id": template_id, "agentid": self.agent_id}
        await self.call("POST", "/cgi-bin/externalcontact/group_welcome_template/edit", json=body)

    # -- media -----------------------------------------------------------------------------

    async def upload_media(self, *, kind: str, filename: str, content: bytes) -> str:
        """media/upload, reusing the id of identical content uploaded in the last 2.5 days."""

        async def upload() -> str:
            data = await self.call(
                "POST",
                "/cgi-bin/media/upload",
                params={"type": kind},
                files={"media": (filename, content)},
            )
            return str(data["media_id"])

        return await self._cached_media(scope="app", kind=kind, content=content, upload=upload)

    async def upload_webhook_media(
        self, *, key: str, kind: str, filename: str, content: bytes
    ) -> str:
        """webhook/upload_media; the id works for this robot only, so it is cached per robot."""

        async def upload() -> str:
            data = await self.call_webhook(
                "/cgi-bin/webhook/upload_media",
                key=key,
                params={"type": kind},
                files={"media": (filename, content)},
            )
            return str(data["media_id"])

        return await self._cached_media(
            scope=f"robot:{key}", kind=kind, content=content, upload=upload
        )

    async def upload_image(self, *, filename: str, content: bytes) -> str:
        """media/uploadimg: a permanent URL for pictures inside news and welcome messages."""
        data = await self.call(
            "POST", "/cgi-bin/media/uploadimg", files={"media": (filename, content)}
        )
        return str(data["url"])

    async def _cached_media(
        self, *, scope: str, kind: str, content: bytes, upload: Callable[[], Awaitable[str]]
    ) -> str:
        digest = hashlib.sha256(content).hexdigest()
        # One upload of a content at a time per client: the sender sends a chunk of
        # rows at once, and a 喜报's poster goes to every group in it.
        if self._uploading is None:
            self._uploading = WeakValueDictionary()
        key = (scope, kind, digest)
        lock = self._uploading.get(key)
        if lock is None:
            lock = self._uploading[key] = asyncio.Lock()
        async with lock:
            return await self._lookup_or_upload(scope, kind, digest, upload)

    async def _lookup_or_upload(
        self, scope: str, kind: str, digest: str, upload: Callable[[], Awaitable[str]]
    ) -> str:
        now = self._clock.now()
        async with self._sessions.begin() as session:
            cached = await media_cache.lookup(
                session=session, scope=scope, kind=kind, content_hash=digest, now=now
            )
        if cached:
            return cached
        media_id = await upload()
        async with self._sessions.begin() as session:
            await media_cache.remember(
                session=session,
                scope=scope,
                kind=kind,
                content_hash=digest,
                media_id=media_id,
                expires_at=now + MEDIA_REUSE,
            )
        return media_id
