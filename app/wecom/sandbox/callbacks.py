"""WeCom's side of callbacks: build encrypted, signed requests as WeCom sends them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from app.wecom.crypto import CallbackCrypto, Encrypted, callback_envelope


@dataclass(frozen=True, slots=True)
class SignedCallback:
    query: dict[str, str]
    body: str

    @property
    def path(self) -> str:
        return "/wecom/callback?" + urlencode(self.query)


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


def _signed_query(encrypted: Encrypted) -> dict[str, str]:
    return {
        "msg_signature": encrypted.msg_signature,
        "timestamp": encrypted.timestamp,
        "nonce": encrypted.nonce,
    }
