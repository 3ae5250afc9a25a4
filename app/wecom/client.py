"""WeComClient: every call CampBot makes to WeCom, on one shared httpx.AsyncClient.

The client owns the protocol rules (ARCHITECTURE §1 rule 4): the token is added
to each call and refreshed once on 40001/40014/42001; -1 is retried at most
three times with backoff; everything else surfaces as a typed error
(`app.wecom.errors`) for the caller — the outbox — to retry, wait or give up.
Transport errors are never retried here: a send whose answer was lost may have
been delivered, and only the outbox knows whether repeating it is safe.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import Clock
from app.wecom import media_cache
from app.wecom.errors import (
    GetTokenError,
    RateLimitedError,
    SystemBusyError,
    TokenError,
    WeComAPIError,
    WeComTransportError,
    api_error,
)
from app.wecom.tokens import IssuedToken, TokenStore
from app.wecom.types import (
    CorpTagGroup,
    ExternalContact,
    GroupChat,
    GroupChatList,
    GroupMsgSendResult,
    MessageSendResult,
    MsgTemplateResult,
)

JSON = dict[str, Any]
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
BUSY_BACKOFF_S = (0.5, 1.0, 2.0)  # WeCom: "建议重试次数不超过3次"
# Media ids live 3 days; reuse them for a little less.
MEDIA_REUSE = timedelta(days=2, hours=12)
# media/get: the id is unknown or past its 3 days; asking again will not help.
INVALID_MEDIA_ID = 40007


class WeComClient:
    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        corp_id: str,
        agent_id: int | None,
        secret: str,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = http
        self.corp_id = corp_id
        self.agent_id = agent_id
        self._secret = secret
        self._sessions = sessions
        self._clock = clock
        self._sleep = sleep
        self.tokens = TokenStore(
            app_key=f"{corp_id}:{agent_id}", sessions=sessions, clock=clock, fetch=self._gettoken
        )

    # -- transport -------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any],
        json: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
    ) -> JSON:
        try:
            response = await self._http.request(
                method, path, params=params, json=json, files=files
            )
        except httpx.TransportError as exc:
            raise WeComTransportError(f"{path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise WeComTransportError(f"{path}: HTTP {response.status_code}")
        if response.status_code != 200:
            raise WeComAPIError(-response.status_code, f"HTTP {response.status_code}", path=path)
        try:
            data: JSON = response.json()
        except ValueError as exc:
            raise WeComTransportError(f"{path}: answer is not JSON") from exc
        errcode = int(data.get("errcode") or 0)  # a missing errcode means success
        if errcode:
            raise api_error(errcode, str(data.get("errmsg", "")), path=path)
        return data

    async def _busy_retried(self, attempt: Callable[[], Awaitable[T]]) -> T:
        for wait in (*BUSY_BACKOFF_S, None):
            try:
                return await attempt()
            except SystemBusyError:
                if wait is None:
                    raise
                await self._sleep(wait)
        raise AssertionError("unreachable")

    async def _gettoken(self) -> IssuedToken:
        params = {"corpid": self.corp_id, "corpsecret": self._secret}
        try:
            data = await self._busy_retried(
                lambda: self._request("GET", "/cgi-bin/gettoken", params=params)
            )
        except (SystemBusyError, RateLimitedError):
            raise
        except WeComAPIError as exc:
            # From gettoken even 40001 is no stale token but a wrong secret: permanent.
            raise GetTokenError(exc.errcode, exc.errmsg, path=exc.path) from exc
        return IssuedToken(str(data["access_token"]), int(data.get("expires_in") or 7200))

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
    ) -> JSON:
        """An access-token call: one refresh and retry on a rejected token, -1 retried."""

        async def attempt() -> JSON:
            token = await self.tokens.get()
            query = {**(params or {}), "access_token": token}
            try:
                return await self._request(method, path, params=query, json=json, files=files)
            except TokenError:
                query["access_token"] = await self.tokens.refresh(rejected=token)
                return await self._request(method, path, params=query, json=json, files=files)

        return await self._busy_retried(attempt)

    async def call_webhook(
        self,
        path: str,
        *,
        key: str,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
    ) -> JSON:
        """A group-robot call: authenticated by its key alone, never with a token."""
        query = {**(params or {}), "key": key}
        return await self._busy_retried(
            lambda: self._request("POST", path, params=query, json=json, files=files)
        )

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

    async def get_media(self, *, media_id: str) -> bytes:
        """media/get: a temporary media's bytes (a member's image in an app message; ids
        live 3 days). WeCom answers a failure with a JSON errcode body instead of the file:
        40007 (invalid or expired media_id) is permanent, the rest as for `call`."""
        path = "/cgi-bin/media/get"

        async def attempt() -> bytes:
            token = await self.tokens.get()
            query = {"media_id": media_id, "access_token": token}
            try:
                return await self._download(path, params=query)
            except TokenError:
                query["access_token"] = await self.tokens.refresh(rejected=token)
                return await self._download(path, params=query)

        return await self._busy_retried(attempt)

    async def _download(self, path: str, *, params: Mapping[str, Any]) -> bytes:
        """A GET whose success is a file; a JSON answer is an error, raised as `_request`'s."""
        try:
            response = await self._http.get(path, params=params)
        except httpx.TransportError as exc:
            raise WeComTransportError(f"{path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise WeComTransportError(f"{path}: HTTP {response.status_code}")
        if response.status_code != 200:
            raise WeComAPIError(-response.status_code, f"HTTP {response.status_code}", path=path)
        content_type = response.headers.get("content-type", "")
        # Errors come as application/json or text/plain; no image starts with `{`.
        if "json" in content_type or "text/plain" in content_type or response.content[:1] == b"{":
            try:
                data = response.json()
            except ValueError as exc:
                raise WeComTransportError(f"{path}: answer is neither a file nor JSON") from exc
            errcode = int(data.get("errcode") or 0) if isinstance(data, dict) else 0
            if errcode:
                raise api_error(errcode, str(data.get("errmsg", "")), path=path)
            raise WeComTransportError(f"{path}: a JSON answer without the file")
        if not response.content:
            raise WeComTransportError(f"{path}: empty answer")
        return response.content

    async def _cached_media(
        self, *, scope: str, kind: str, content: bytes, upload: Callable[[], Awaitable[str]]
    ) -> str:
        digest = hashlib.sha256(content).hexdigest()
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
