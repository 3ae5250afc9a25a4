"""Callback crypto (WeCom 加解密方案): signatures, AES-256-CBC, the receive-id check.

AES and the PKCS#7 (32-byte block) padding come from wechatpy's WeCom crypto.
What wechatpy leaves loose we tighten: signatures are compared in constant time,
and a decrypted buffer must have valid padding and a length that fits before its
receive id is trusted — so a wrong key reads as "undecryptable" (400), and only
a well-formed message for another corp reads as "wrong receive id" (403).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import struct
from dataclasses import dataclass

from wechatpy.crypto.base import WeChatCipher
from wechatpy.utils import WeChatSigner
from wechatpy.work.crypto import PrpCrypto

from app.errors import MalformedCallbackError, ReceiveIdError, SignatureError

_RANDOM_LEN = 16
_LEN_FIELD = struct.Struct(">I")
_BLOCK = 32


@dataclass(frozen=True, slots=True)
class Encrypted:
    encrypt: str
    msg_signature: str
    timestamp: str
    nonce: str


class CallbackCrypto:
    def __init__(self, *, token: str, encoding_aes_key: str, receive_id: str) -> None:
        self._token = token
        self._key = base64.b64decode(encoding_aes_key + "=")
        if len(self._key) != 32:
            raise ValueError("EncodingAESKey must decode to 32 bytes")
        self.receive_id = receive_id

    def signature(self, timestamp: str, nonce: str, encrypt: str) -> str:
        signer = WeChatSigner()
        signer.add_data(self._token, timestamp, nonce, encrypt)
        return str(signer.signature)

    def verify(self, *, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        expected = self.signature(timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected.encode(), msg_signature.lower().encode()):
            raise SignatureError("msg_signature does not match")

    def decrypt(self, encrypt: str) -> str:
        """The message inside `encrypt`, after checking padding, length and receive id."""
        try:
            raw = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedCallbackError("ciphertext is not valid base64") from exc
        if not raw or len(raw) % 16:
            raise MalformedCallbackError("ciphertext length is not a multiple of the AES block")
        padded: bytes = WeChatCipher(self._key).decrypt(raw)
        pad = padded[-1]
        if not 1 <= pad <= _BLOCK or padded[-pad:] != bytes([pad]) * pad:
            raise MalformedCallbackError("cannot decrypt: bad padding (wrong EncodingAESKey?)")
        content = padded[_RANDOM_LEN:-pad]
        if len(content) < _LEN_FIELD.size:
            raise MalformedCallbackError("cannot decrypt: message too short")
        (msg_len,) = _LEN_FIELD.unpack_from(content)
        if msg_len > len(content) - _LEN_FIELD.size:
            raise MalformedCallbackError("cannot decrypt: length field out of range")
        message = content[_LEN_FIELD.size : _LEN_FIELD.size + msg_len]
        receive_id = content[_LEN_FIELD.size + msg_len :]
        if not hmac.compare_digest(receive_id, self.receive_id.encode()):
            raise ReceiveIdError("message is addressed to another receive id")
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedCallbackError("decrypted message is not UTF-8") from exc

    def verify_and_decrypt(
        self, *, msg_signature: str, timestamp: str, nonce: str, encrypt: str
    ) -> str:
        self.verify(msg_signature=msg_signature, timestamp=timestamp, nonce=nonce, encrypt=encrypt)
        return self.decrypt(encrypt)

    def encrypt(
        self, plaintext: str, *, timestamp: str, nonce: str, random16: str | None = None
    ) -> Encrypted:
        """Encrypt and sign, as WeCom does for callbacks and we do for passive replies.

        `random16` fixes the random prefix, for the official deterministic vectors.
        """
        prp = PrpCrypto(self._key)
        if random16 is not None:
            prp.get_random_string = lambda: random16
        encrypt = prp.encrypt(plaintext, self.receive_id).decode()
        return Encrypted(encrypt, self.signature(timestamp, nonce, encrypt), timestamp, nonce)


def callback_envelope(encrypted: Encrypted, *, to_user: str, agent_id: str = "") -> str:
    """The POST body WeCom sends for an encrypted callback."""
    return (
        f"<xml><ToUserName><![CDATA[{to_user}]]></ToUserName>"
        f"<Encrypt><![CDATA[{encrypted.encrypt}]]></Encrypt>"
        f"<AgentID><![CDATA[{agent_id}]]></AgentID></xml>"
    )


def passive_reply(encrypted: Encrypted) -> str:
    """The XML answer that carries an encrypted passive reply."""
    return (
        f"<xml><Encrypt><![CDATA[{encrypted.encrypt}]]></Encrypt>"
        f"<MsgSignature><![CDATA[{encrypted.msg_signature}]]></MsgSignature>"
        f"<TimeStamp>{encrypted.timestamp}</TimeStamp>"
        f"<Nonce><![CDATA[{encrypted.nonce}]]></Nonce></xml>"
    )
