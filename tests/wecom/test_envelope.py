"""`envelope_encrypt`: the one value intake reads from an unsigned body.

It must find `Encrypt` in every envelope WeCom (and the SDKs' samples) send, and refuse
anything that is not such a flat envelope where it starts, without parsing the rest.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import MalformedCallbackError
from app.wecom.crypto import CallbackCrypto, callback_envelope
from app.wecom.envelope import MAX_FIELDS, envelope_encrypt
from tests.support import AES_KEY, CORP_ID, SHARED, TOKEN, crypto_vectors, needs_crypto_vectors

SAMPLE = (
    SHARED
    / "fixtures"
    / "wecom"
    / "callbacks"
    / "envelope_encrypted__fastwego__EncryptMessage.xml"
)
B64 = "RypEvHKD8QQ+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X=="


@needs_crypto_vectors
@pytest.mark.parametrize("vector", crypto_vectors("decrypt", with_token=True))
def test_official_envelopes_give_the_signed_value(vector: dict[str, Any]) -> None:
    check = vector["decrypt"]
    crypto = CallbackCrypto(
        token=vector["token"],
        encoding_aes_key=vector["encoding_aes_key"],
        receive_id=vector["receive_id"],
    )
    crypto.verify(
        msg_signature=check["msg_signature"],
        timestamp=check["timestamp"],
        nonce=check["nonce"],
        encrypt=envelope_encrypt(check["body"].encode()),
    )


@needs_crypto_vectors
def test_documented_sample_envelope() -> None:
    assert envelope_encrypt(SAMPLE.read_bytes()) == "msg_encrypt"


def test_our_own_envelope() -> None:
    crypto = CallbackCrypto(token=TOKEN, encoding_aes_key=AES_KEY, receive_id=CORP_ID)
    encrypted = crypto.encrypt("<xml><MsgType>text</MsgType></xml>", timestamp="1", nonce="n")
    body = callback_envelope(encrypted, to_user=CORP_ID, agent_id="1000002")
    assert envelope_encrypt(body.encode()) == encrypted.encrypt


@pytest.mark.parametrize(
    "body",
    [
        f"<xml><Encrypt>{B64}</Encrypt></xml>",
        f"<xml><Encrypt><![CDATA[{B64}]]></Encrypt></xml>",
        f"<xml>\n\t<ToUserName><![CDATA[{CORP_ID}]]></ToUserName>\n\t<Encrypt>\n"
        f"  <![CDATA[ {B64} ]]>\n</Encrypt>\n\t<AgentID/>\n</xml>\n",
        f'<?xml version="1.0" encoding="UTF-8"?>\n<xml><Encrypt>{B64}</Encrypt></xml>',
        f"\ufeff<xml ><AgentID></AgentID><Encrypt >{B64}</Encrypt ></xml >",
    ],
    ids=["plain", "cdata", "indented", "declaration", "bom-and-spaces"],
)
def test_envelope_shapes(body: str) -> None:
    assert envelope_encrypt(body.encode()) == B64


HOSTILE = {
    "repeated empty elements": b"<xml>" + b"<a/>" * 262_140 + b"</xml>",
    "deep nesting": b"<a>" * 300_000,
    "nested field": b"<xml><ToUserName><a>x</a></ToUserName><Encrypt>abc</Encrypt></xml>",
    "attributes": b'<xml><Encrypt a="1" b="2">abc</Encrypt></xml>',
    "namespaces": b'<xml xmlns:a="u:a"><Encrypt>abc</Encrypt></xml>',
    "doctype": b'<!DOCTYPE xml SYSTEM "http://example.invalid/x.dtd"><xml><Encrypt>a</Encrypt></xml>',
    "doctype after declaration": b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x "y">]>'
    b"<xml><Encrypt>&x;</Encrypt></xml>",
    "entity reference": b"<xml><Encrypt>ab&amp;c</Encrypt></xml>",
    "character reference": b"<xml><Encrypt>&#65;</Encrypt></xml>",
    "comment": b"<xml><!-- x --><Encrypt>abc</Encrypt></xml>",
    "processing instruction": b"<xml><?pi x?><Encrypt>abc</Encrypt></xml>",
    "two Encrypt fields": b"<xml><Encrypt>abc</Encrypt><Encrypt>def</Encrypt></xml>",
    "no Encrypt": b"<xml><ToUserName>x</ToUserName></xml>",
    "empty Encrypt": b"<xml><Encrypt><![CDATA[ ]]></Encrypt></xml>",
    "too many fields": b"<xml>" + b"<F>1</F>" * MAX_FIELDS + b"<Encrypt>abc</Encrypt></xml>",
    "mismatched close": b"<xml><Encrypt>abc</Encrypted></xml>",
    "unclosed root": b"<xml><Encrypt>abc</Encrypt>",
    "unterminated CDATA": b"<xml><Encrypt><![CDATA[abc</Encrypt></xml>",
    "two CDATA sections": b"<xml><Encrypt><![CDATA[ab]]><![CDATA[c]]></Encrypt></xml>",
    "second root": b"<xml><Encrypt>abc</Encrypt></xml><xml/>",
    "text after the root": b"<xml><Encrypt>abc</Encrypt></xml>junk",
    "text in the root": b"<xml>junk<Encrypt>abc</Encrypt></xml>",
    "self-closing root": b"<xml/>",
    "not XML": b"hello, not xml",
    "JSON": b'{"encrypt": "abc"}',
    "Encrypt not UTF-8": b"<xml><Encrypt>\xff\xfe</Encrypt></xml>",
    "empty": b"",
}


@pytest.mark.parametrize("body", list(HOSTILE.values()), ids=list(HOSTILE))
def test_anything_but_a_flat_envelope_is_refused(body: bytes) -> None:
    with pytest.raises(MalformedCallbackError) as refused:
        envelope_encrypt(body)
    assert refused.value.status_code == 400
    assert refused.value.reason


@pytest.mark.parametrize("body", [HOSTILE["doctype"], HOSTILE["doctype after declaration"]])
def test_dtd_refusal_says_so(body: bytes) -> None:
    with pytest.raises(MalformedCallbackError, match="DTD"):
        envelope_encrypt(body)


def test_up_to_max_fields_are_read() -> None:
    body = b"<xml>" + b"<F>1</F>" * (MAX_FIELDS - 1) + b"<Encrypt>abc</Encrypt></xml>"
    assert envelope_encrypt(body) == "abc"
