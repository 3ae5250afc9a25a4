"""Bad input gets its documented 4xx, writes nothing, and never a 500."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import urlencode

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.callback import MAX_CLOCK_SKEW
from app.wecom.crypto import CallbackCrypto, callback_envelope
from app.wecom_sandbox.callbacks import CallbackBuilder, SignedCallback
from tests.support import AES_KEY, CORP_ID, T0, TOKEN, AppHarness, inbox_rows, text_message

BOMB = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    "<xml><Encrypt>&lol3;</Encrypt></xml>"
)
DTD_ONLY = '<!DOCTYPE xml SYSTEM "http://example.invalid/x.dtd"><xml><Encrypt>abc</Encrypt></xml>'
EXTERNAL = (
    '<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><Encrypt>&x;</Encrypt></xml>'
)

Case = Callable[[CallbackBuilder], tuple[str, str | bytes]]


def _signed_body(body: str, wecom: CallbackBuilder, encrypt: str = "") -> tuple[str, str]:
    """A correctly signed request around an arbitrary envelope carrying `encrypt`."""
    timestamp = str(int(T0.timestamp()))
    query = {
        "msg_signature": wecom.crypto.signature(timestamp, "n", encrypt),
        "timestamp": timestamp,
        "nonce": "n",
    }
    return "/wecom/callback?" + urlencode(query), body


def _with_encrypt(encrypt: str) -> Case:
    return lambda wecom: _signed_body(f"<xml><Encrypt>{encrypt}</Encrypt></xml>", wecom, encrypt)


def _valid(wecom: CallbackBuilder) -> SignedCallback:
    return wecom.post(text_message("9001"), at=T0)


def _tampered(wecom: CallbackBuilder) -> tuple[str, str]:
    good = _valid(wecom)
    return good.path.replace(good.query["msg_signature"], "0" * 40), good.body


def _other_corp(wecom: CallbackBuilder) -> tuple[str, str]:
    other = CallbackBuilder(
        CallbackCrypto(token=TOKEN, encoding_aes_key=AES_KEY, receive_id="wwanothercorp")
    )
    callback = other.post(text_message("9002"), at=T0)
    return callback.path, callback.body


def _wrong_key(wecom: CallbackBuilder) -> tuple[str, str]:
    stranger = CallbackCrypto(token=TOKEN, encoding_aes_key="Q" * 43, receive_id=CORP_ID)
    encrypted = stranger.encrypt(
        text_message("9003"),
        timestamp=str(int(T0.timestamp())),
        nonce="n",
        random16="fedcba9876543210",
    )
    return _signed_body(callback_envelope(encrypted, to_user=CORP_ID), wecom, encrypted.encrypt)


def _truncated(wecom: CallbackBuilder) -> tuple[str, str]:
    encrypted = wecom.crypto.encrypt(text_message("9004"), timestamp="0", nonce="n")
    return _with_encrypt(encrypted.encrypt[:-24])(wecom)


def _plaintext_not_xml(wecom: CallbackBuilder) -> tuple[str, str]:
    encrypted = wecom.crypto.encrypt(
        '{"MsgType": "text"}', timestamp=str(int(T0.timestamp())), nonce="n"
    )
    return _signed_body(callback_envelope(encrypted, to_user=CORP_ID), wecom, encrypted.encrypt)


def _signed_at(at: datetime) -> Case:
    def build(wecom: CallbackBuilder) -> tuple[str, str]:
        callback = wecom.post(text_message("9005"), at=at)
        return callback.path, callback.body

    return build


def _repeated_children(wecom: CallbackBuilder) -> tuple[str, str]:
    callback = wecom.post("<xml>" + "<a>1</a>" * 60_000 + "</xml>", at=T0)
    return callback.path, callback.body


def _huge(wecom: CallbackBuilder) -> tuple[str, bytes]:
    return _valid(wecom).path, b"<xml>" + b"x" * (2 * 1024 * 1024) + b"</xml>"


CASES: dict[str, tuple[Case, int]] = {
    "no query string": (lambda w: ("/wecom/callback", _valid(w).body), 400),
    "bad signature": (_tampered, 403),
    "non-XML body": (lambda w: (_valid(w).path, "hello, not xml"), 400),
    "XML with a DTD": (lambda w: _signed_body(DTD_ONLY, w), 400),
    "entity expansion (billion laughs)": (lambda w: _signed_body(BOMB, w), 400),
    "external entity": (lambda w: _signed_body(EXTERNAL, w), 400),
    "envelope without Encrypt": (
        lambda w: _signed_body("<xml><ToUserName>x</ToUserName></xml>", w),
        400,
    ),
    "non-base64 ciphertext": (_with_encrypt("%%%not-base64%%%"), 400),
    "ciphertext not whole blocks": (_with_encrypt(base64.b64encode(b"abc" * 7).decode()), 400),
    "truncated ciphertext": (_truncated, 400),
    "wrong AES key": (_wrong_key, 400),
    "decrypts to non-XML": (_plaintext_not_xml, 400),
    "another corp's message": (_other_corp, 403),
    "empty body": (lambda w: (_valid(w).path, ""), 400),
    "2 MiB body": (_huge, 413),
    "signed, 60,000 repeated children": (_repeated_children, 400),
    "timestamp 10 years ahead": (_signed_at(T0 + timedelta(days=3653)), 403),
    "timestamp just over the skew ahead": (
        _signed_at(T0 + MAX_CLOCK_SKEW + timedelta(seconds=1)),
        403,
    ),
    "timestamp not a number": (
        lambda w: (_valid(w).path.replace("timestamp=", "timestamp=x"), _valid(w).body),
        400,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_bad_input_is_refused_and_leaves_no_row(
    name: str,
    harness: AppHarness,
    wecom: CallbackBuilder,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    build, status = CASES[name]
    path, body = build(wecom)
    response = await harness.client.post(path, content=body)
    assert response.status_code == status, response.text
    assert response.text  # a reason, not an empty refusal
    assert await inbox_rows(sessions) == []


async def test_bad_get_verification_is_refused(harness: AppHarness) -> None:
    assert (await harness.client.get("/wecom/callback")).status_code == 400
    response = await harness.client.get(
        "/wecom/callback",
        params={"msg_signature": "0" * 40, "timestamp": "1", "nonce": "n", "echostr": "abc"},
    )
    assert response.status_code == 403


async def test_valid_callback_control(
    harness: AppHarness, wecom: CallbackBuilder, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The cases above differ from this accepted one only in what they break."""
    response = await harness.deliver(_valid(wecom))
    assert (response.status_code, response.text) == (200, "success")
    assert len(await inbox_rows(sessions)) == 1


async def test_timestamp_within_the_skew_ahead_is_accepted(
    harness: AppHarness, wecom: CallbackBuilder, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """WeCom's clock may run a little ahead of ours: that is not a forgery."""
    response = await harness.deliver(wecom.post(text_message("9006"), at=T0 + MAX_CLOCK_SKEW))
    assert (response.status_code, response.text) == (200, "success")
    assert len(await inbox_rows(sessions)) == 1
