"""Callback crypto against the official vectors, and the failure modes intake maps to 4xx."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from app.errors import MalformedCallbackError, ReceiveIdError, SignatureError
from app.wecom.crypto import CallbackCrypto, passive_reply
from tests.support import AES_KEY, CORP_ID, TOKEN, crypto_vectors, needs_crypto_vectors


def _crypto(vector: dict[str, Any]) -> CallbackCrypto:
    return CallbackCrypto(
        token=vector["token"] or "unused",
        encoding_aes_key=vector["encoding_aes_key"],
        receive_id=vector["receive_id"],
    )


@needs_crypto_vectors
@pytest.mark.parametrize("vector", crypto_vectors("encrypt_deterministic"))
def test_encrypt_matches_official_vector(vector: dict[str, Any]) -> None:
    check = vector["encrypt_deterministic"]
    encrypted = _crypto(vector).encrypt(
        check["plaintext"],
        timestamp=check.get("timestamp", "0"),
        nonce=check.get("nonce", "n"),
        random16=check["random16"],
    )
    assert encrypted.encrypt == check["expected_encrypt"]
    if "expected_msg_signature" in check:
        assert encrypted.msg_signature == check["expected_msg_signature"]
        assert passive_reply(encrypted) == check["expected_reply_xml"].replace("\n", "")


def _ours() -> CallbackCrypto:
    return CallbackCrypto(token=TOKEN, encoding_aes_key=AES_KEY, receive_id=CORP_ID)


def test_round_trip_with_chinese_text() -> None:
    crypto = _ours()
    encrypted = crypto.encrypt("<xml><Content>打卡第3天</Content></xml>", timestamp="1", nonce="n")
    assert crypto.verify_and_decrypt(
        msg_signature=encrypted.msg_signature, timestamp="1", nonce="n", encrypt=encrypted.encrypt
    ) == ("<xml><Content>打卡第3天</Content></xml>")


def test_signature_is_checked_over_all_four_parts() -> None:
    crypto = _ours()
    encrypted = crypto.encrypt("<xml/>", timestamp="100", nonce="abc")
    with pytest.raises(SignatureError):
        crypto.verify(
            msg_signature=encrypted.msg_signature,
            timestamp="101",
            nonce="abc",
            encrypt=encrypted.encrypt,
        )
    with pytest.raises(SignatureError):
        crypto.verify(
            msg_signature=encrypted.msg_signature,
            timestamp="100",
            nonce="abd",
            encrypt=encrypted.encrypt,
        )
    # Upper-case hex is the same signature.
    crypto.verify(
        msg_signature=encrypted.msg_signature.upper(),
        timestamp="100",
        nonce="abc",
        encrypt=encrypted.encrypt,
    )


@pytest.mark.parametrize(
    ("ciphertext", "reason"),
    [
        ("not base64 at all!", "base64"),
        (base64.b64encode(b"x" * 20).decode(), "multiple"),
        ("", "multiple"),
    ],
)
def test_undecryptable_input_is_malformed(ciphertext: str, reason: str) -> None:
    with pytest.raises(MalformedCallbackError, match=reason):
        _ours().decrypt(ciphertext)


def test_truncated_ciphertext_is_malformed() -> None:
    encrypted = _ours().encrypt("<xml>" + "x" * 200 + "</xml>", timestamp="1", nonce="n")
    raw = base64.b64decode(encrypted.encrypt)
    truncated = base64.b64encode(raw[:-16]).decode()  # still whole AES blocks, padding lost
    with pytest.raises(MalformedCallbackError):
        _ours().decrypt(truncated)


def test_wrong_key_is_malformed_not_a_receive_id_mismatch() -> None:
    # A fixed random prefix keeps the garbage (and so the outcome) deterministic.
    encrypted = _ours().encrypt(
        "<xml><a>1</a></xml>", timestamp="1", nonce="n", random16="0123456789abcdef"
    )
    other = CallbackCrypto(token=TOKEN, encoding_aes_key="Z" * 43, receive_id=CORP_ID)
    with pytest.raises(MalformedCallbackError):
        other.decrypt(encrypted.encrypt)


def test_other_receive_id_is_refused() -> None:
    encrypted = _ours().encrypt("<xml/>", timestamp="1", nonce="n")
    elsewhere = CallbackCrypto(token=TOKEN, encoding_aes_key=AES_KEY, receive_id="wwother")
    with pytest.raises(ReceiveIdError):
        elsewhere.decrypt(encrypted.encrypt)
