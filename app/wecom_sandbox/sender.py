"""WeCom → CampBot: encrypted, signed callbacks that keep the sandbox state consistent.

An add_external_contact callback registers the contact and carries a real welcome
code; a change_external_chat callback carries the versions the group just moved
between. `redeliver()` replays the identical request, as WeCom's retries do.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from app.wecom.crypto import CallbackCrypto
from app.wecom_sandbox import callback_xml
from app.wecom_sandbox.callbacks import CallbackBuilder, PassiveReplyMessage, SignedCallback
from app.wecom_sandbox.state import SandboxState


@dataclass(frozen=True, slots=True)
class SentCallback:
    callback: SignedCallback
    plaintext: str
    response: httpx.Response
    welcome_code: str | None = None
    # What CampBot answered in the HTTP response itself, decrypted (None: `success`).
    passive_reply: PassiveReplyMessage | None = None


class CallbackSender:
    """Posts callbacks to CampBot through `client` (ASGI in tests, a URL when running)."""

    def __init__(
        self,
        state: SandboxState,
        client: httpx.AsyncClient,
        *,
        token: str,
        encoding_aes_key: str,
        agent_id: int,
        corp_id: str | None = None,
        path: str = "/wecom/callback",
    ) -> None:
        crypto = CallbackCrypto(
            token=token, encoding_aes_key=encoding_aes_key, receive_id=corp_id or state.corp_id
        )
        self.state = state
        self.client = client
        self.path = path
        self.corp_id = crypto.receive_id
        self.agent_id = agent_id
        self._app = CallbackBuilder(crypto, agent_id=str(agent_id))
        # Customer-contact events arrive with an empty AgentID (research notes §7-8).
        self._contact = CallbackBuilder(crypto)
        self.sent: list[SentCallback] = []

    @property
    def last(self) -> SentCallback:
        if not self.sent:
            raise LookupError("no callback sent yet")
        return self.sent[-1]

    async def _post(self, callback: SignedCallback) -> httpx.Response:
        return await self.client.post(
            self.path,
            params=callback.query,
            content=callback.body.encode(),
            headers={"content-type": "text/xml"},
        )

    async def _send(
        self, plaintext: str, builder: CallbackBuilder, welcome_code: str | None = None
    ) -> SentCallback:
        callback = builder.post(plaintext, at=self.state.clock.now())
        response = await self._post(callback)
        sent = SentCallback(callback, plaintext, response, welcome_code, self._reply(response))
        self.sent.append(sent)
        return sent

    async def send(self, plaintext: str) -> SentCallback:
        """Any plaintext XML, as an app callback."""
        return await self._send(plaintext, self._app)

    async def redeliver(self, last: SentCallback | None = None) -> SentCallback:
        """The identical request again (same nonce, signature and ciphertext): WeCom's retry."""
        original = last or self.last
        response = await self._post(original.callback)
        sent = SentCallback(
            original.callback,
            original.plaintext,
            response,
            original.welcome_code,
            self._reply(response),
        )
        self.sent.append(sent)
        return sent

    def _reply(self, response: httpx.Response) -> PassiveReplyMessage | None:
        if response.status_code != 200:
            return None
        return self._app.read_reply(response.text)

    @property
    def passive_replies(self) -> list[PassiveReplyMessage]:
        """Every passive reply CampBot answered a callback with, in order."""
        return [s.passive_reply for s in self.sent if s.passive_reply is not None]

    async def verify_url(self, echo: str) -> httpx.Response:
        """The GET WeCom sends when an admin saves the callback URL."""
        callback = self._app.verify_url(echo, at=self.state.clock.now())
        return await self.client.get(self.path, params=callback.query)

    async def add_external_contact(
        self, external_userid: str, *, userid: str, name: str | None = None, state: str = ""
    ) -> SentCallback:
        """A customer adds `userid`; the callback's WelcomeCode works on send_welcome_msg."""
        self.state.add_external_contact(external_userid, name or external_userid, userid, state)
        code = self.state.issue_welcome_code(userid, external_userid)
        plaintext = callback_xml.external_contact_added(
            self.corp_id,
            userid=userid,
            external_userid=external_userid,
            state=state,
            welcome_code=code,
            at=self.state.clock.now(),
        )
        return await self._send(plaintext, self._contact, code)

    async def del_follow_user(self, external_userid: str, *, userid: str) -> SentCallback:
        """The customer deleted `userid`."""
        self.state.remove_follow_user(external_userid, userid)
        plaintext = callback_xml.follow_user_deleted(
            self.corp_id, userid=userid, external_userid=external_userid, at=self.state.clock.now()
        )
        return await self._send(plaintext, self._contact)

    async def chat_members_joined(
        self, chat_id: str, members: Iterable[str], *, join_scene: int = 3
    ) -> SentCallback:
        """Members join customer group `chat_id` (groupchat/get join_scene 1/2/3)."""
        change = self.state.join_customer_group(chat_id, members, join_scene=join_scene)
        # The callback documents JoinScene 0 (invited, directly or by link) and 3 (QR code).
        plaintext = callback_xml.chat_members_changed(
            self.corp_id,
            change,
            detail="add_member",
            scene=3 if join_scene == 3 else 0,
            at=self.state.clock.now(),
        )
        return await self._send(plaintext, self._contact)

    async def chat_members_left(
        self, chat_id: str, members: Iterable[str], *, quit_scene: int = 0
    ) -> SentCallback:
        """Members leave (QuitScene 0) or are removed by the owner/admin (1)."""
        change = self.state.leave_customer_group(chat_id, members)
        plaintext = callback_xml.chat_members_changed(
            self.corp_id, change, detail="del_member", scene=quit_scene, at=self.state.clock.now()
        )
        return await self._send(plaintext, self._contact)

    async def text_from_member(
        self, userid: str, content: str, *, msg_id: str | None = None
    ) -> SentCallback:
        """A corp member writes to the app in its 1:1 chat."""
        plaintext = callback_xml.member_text(
            self.corp_id,
            userid=userid,
            content=content,
            msg_id=msg_id or str(secrets.randbelow(10**19)),
            agent_id=self.agent_id,
            at=self.state.clock.now(),
        )
        return await self._send(plaintext, self._app)

    async def image_from_member(
        self, userid: str, data: bytes, *, media_id: str | None = None
    ) -> SentCallback:
        """A corp member sends the app an image: WeCom keeps `data` as temporary media (see
        `SandboxState.add_member_image`) unless `media_id` names one, and calls back with
        its MediaId and a PicUrl."""
        media = media_id if media_id is not None else self.state.add_member_image(data)
        plaintext = callback_xml.member_image(
            self.corp_id,
            userid=userid,
            pic_url=f"https://wework.qpic.cn/wwpic/{secrets.token_hex(12)}/0",
            media_id=media,
            msg_id=str(secrets.randbelow(10**19)),
            agent_id=self.agent_id,
            at=self.state.clock.now(),
        )
        return await self._send(plaintext, self._app)
