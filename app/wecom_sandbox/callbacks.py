"""WeCom's side of callbacks: build encrypted, signed requests as WeCom sends them, and
read the encrypted passive reply CampBot may answer one with."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from app.errors import MalformedCallbackError
from app.wecom.crypto import CallbackCrypto, Encrypted, callback_envelope
from app.wecom.xml_fields import parse_xml


@dataclass(frozen=True, slots=True)
class SignedCallback:
    query: dict[str, str]
    body: str

    @property
    def path(self) -> str:
        return "/wecom/callback?" + urlencode(self.query)


@dataclass(frozen=True, slots=True)
class PassiveReplyMessage:
    """A passive reply as WeCom reads it: verified, decrypted, parsed."""

    to_user: str
    from_user: str
    create_time: int
    msg_type: str
    content: str
    plaintext: str


class CallbackBuilder:
    def __init__(self, crypto: CallbackCrypto, *, agent_id: str = "") -> None:
        self.crypto = crypto
        self.agent_id = agent_id

    def _encrypt(self, plaintext: str, at: datetime, nonce: str | None) -> Encrypted:
        return self.crypto.encrypt(
            plaintext, timestamp=str(int(at.timestamp())), nonce=nonce or secrets.token_hex(5)
        )

    def post(self, plaintext: str, *, at: datetime, nonce: str | None = None) -> SignedCallback:
        """A POST as WeCom sends it; a retry is the very same object sent again."""
        encrypted = self._encrypt(plaintext, at, nonce)
        body = callback_envelope(encrypted, to_user=self.crypto.receive_id, agent_id=self.agent_id)
        return SignedCallback(_signed_query(encrypted), body)

    def verify_url(self, echo: str, *, at: datetime) -> SignedCallback:
        """The GET WeCom sends when an admin saves the callback URL."""
        encrypted = self._encrypt(echo, at, None)
        return SignedCallback({**_signed_query(encrypted), "echostr": encrypted.encrypt}, "")

    def read_reply(self, answer: str) -> PassiveReplyMessage | None:
        """The passive reply in CampBot's answer to a callback, None for `success` or an
        empty answer. A reply WeCom would reject (bad signature, receive id, shape) raises."""
        if answer.strip() in ("", "success"):
            return None
        envelope = parse_xml(answer)
        fields = [envelope.get(name) for name in ("MsgSignature", "TimeStamp", "Nonce", "Encrypt")]
        if not all(isinstance(value, str) and value for value in fields):
            raise MalformedCallbackError(f"passive reply envelope lacks a field: {answer!r}")
        signature, timestamp, nonce, encrypt = (str(value) for value in fields)
        plaintext = self.crypto.verify_and_decrypt(
            msg_signature=signature, timestamp=timestamp, nonce=nonce, encrypt=encrypt
        )
        data = parse_xml(plaintext)
        return PassiveReplyMessage(
            to_user=str(data["ToUserName"]),
            from_user=str(data["FromUserName"]),
            create_time=int(data["CreateTime"]),
            msg_type=str(data["MsgType"]),
            content=str(data.get("Content", "")),
            plaintext=plaintext,
        )


def _signed_query(encrypted: Encrypted) -> dict[str, str]:
    return {
        "msg_signature": encrypted.msg_signature,
        "timestamp": encrypted.timestamp,
        "nonce": encrypted.nonce,
    }
