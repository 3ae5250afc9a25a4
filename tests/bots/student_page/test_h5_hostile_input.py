"""Hostile input to the students' H5 routes never answers 500 and never stores half a row:
odd tokens, control characters in every text field, odd `day` and `kind` values, and
images whose header lies about what follows."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import func, select

from bots.checkin.models import CheckinEntry
from bots.qa.models import QaUnanswered
from bots.xibao.models import Achievement
from tests.bots.student_page.support import H5, png

JSON = {"Accept": "application/json"}


async def _count(h5: H5, model: type) -> int:
    async with h5.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


# --------------------------------------------------------------------------- tokens

HOSTILE_TOKENS = [
    "0.0.AAAAAAAAAAAAAAAAAAAAAA",
    "99999999999999999999.0.AAAAAAAAAAAAAAAAAAAAAA",
    "2147483648.0.AAAAAAAAAAAAAAAAAAAAAA",
    "１.0.AAAAAAAAAAAAAAAAAAAAAA",
    "²",
    "١.0.x",
    "1" * 10_000,
    "%00",
    "..%2F..%2Fetc",
    "小林",
    "1.0.%F0%9F%9A%80",
    "1.99999999999999999999.AAAAAAAAAAAAAAAAAAAAAA",
]


@pytest.mark.parametrize("token", HOSTILE_TOKENS)
async def test_hostile_tokens_are_refused_not_failed(h5: H5, token: str) -> None:
    for method, suffix in (
        ("GET", ""),
        ("POST", "/checkin"),
        ("GET", "/faq?q=x"),
        ("POST", "/achievements"),
        ("GET", "/img/" + "a" * 64 + ".png"),
    ):
        response = await h5.client.request(
            method, f"/h5/m/{token}{suffix}", data={"text": "x", "title": "t"}
        )
        assert response.status_code in (403, 404), (method, suffix, response.status_code)


# --------------------------------------------------------------------------- text fields

HOSTILE_TEXT = ["a\x00b", "\x00", "a\x01\x1b[31mb", "\ufffe\uffff", "x" * 100_000, "\u202e🚀"]


@pytest.mark.parametrize("text", HOSTILE_TEXT)
async def test_hostile_checkin_text_is_refused_or_kept(h5: H5, text: str) -> None:
    response = await h5.client.post(h5.url(suffix="/checkin"), data={"text": text}, headers=JSON)

    assert response.status_code in (200, 413, 422), response.text
    if response.status_code != 200:
        assert await _count(h5, CheckinEntry) == 0
        assert response.json()["detail"][0]["message"]
    if "\x00" in text or "\x01" in text:  # PostgreSQL refuses NUL: refused on both backends
        assert response.json()["detail"] == [
            {"field": "text", "message": "内容里有无法保存的特殊字符，请删除后再试"}
        ]


async def test_a_nul_in_the_checkin_form_page_shows_the_reason(h5: H5) -> None:
    response = await h5.client.post(h5.url(suffix="/checkin"), data={"text": "a\x00b"})

    assert response.status_code == 422
    assert "内容里有无法保存的特殊字符" in response.text


@pytest.mark.parametrize("text", HOSTILE_TEXT)
async def test_hostile_faq_query_is_refused_or_answered(h5: H5, text: str) -> None:
    response = await h5.client.get(h5.url(suffix="/faq"), params={"q": text[:5000]}, headers=JSON)

    assert response.status_code in (200, 422), response.text
    if "\x00" in text.strip("\x00"):
        assert response.json()["detail"][0]["field"] == "q"
        assert await _count(h5, QaUnanswered) == 0


@pytest.mark.parametrize("text", HOSTILE_TEXT)
async def test_hostile_achievement_text_is_refused_or_kept(h5: H5, text: str) -> None:
    kept = 0
    for data in ({"title": text, "detail": "d"}, {"title": "出单", "detail": text}):
        response = await h5.client.post(h5.url(suffix="/achievements"), data=data, headers=JSON)
        assert response.status_code in (200, 413, 422), response.text
        if "\x00" in text:
            assert response.status_code == 422
        kept += response.status_code == 200
    assert await _count(h5, Achievement) == kept


# --------------------------------------------------------------------------- day and kind

BAD_DAYS = ["-1", "366", "9999", "99999999999", "abc", "1.5", "1e3", "²", "١", "１", " 1 ", "+1"]


@pytest.mark.parametrize("day", BAD_DAYS)
async def test_odd_days_are_refused_with_a_reason(h5: H5, day: str) -> None:
    response = await h5.client.post(
        h5.url(suffix="/checkin"), data={"text": "补卡", "day": day}, headers=JSON
    )

    assert response.status_code in (200, 409, 422), response.text
    if response.status_code != 200:
        assert response.json()["detail"][0]["field"] == "day"
    if day == "²":  # a digit int() refuses
        assert response.status_code == 422


@pytest.mark.parametrize("kind", ["", "CHECKIN", "admin", "leave ", "\x00", "x" * 5000])
async def test_odd_kinds_are_refused(h5: H5, kind: str) -> None:
    response = await h5.client.post(
        h5.url(suffix="/checkin"), data={"text": "t", "kind": kind}, headers=JSON
    )

    assert response.status_code in (200, 422), response.text


async def test_duplicate_fields_and_missing_content_type(h5: H5) -> None:
    url = h5.url(suffix="/checkin")
    dup = await h5.client.post(
        url,
        content=b"text=a&text=b&day=1&day=x",
        headers={**JSON, "content-type": "application/x-www-form-urlencoded"},
    )
    assert dup.status_code in (200, 422), dup.text
    bare = await h5.client.post(url, content=b"text=a", headers=JSON)
    assert bare.status_code in (400, 415, 422), bare.text
    junk = await h5.client.post(
        url,
        content=b"\xff\xfe\x00garbage",
        headers={**JSON, "content-type": "multipart/form-data"},
    )
    assert junk.status_code in (400, 422), junk.text
    latin = await h5.client.post(
        url,
        content=b"text=%ed%a0%80%ff%fe",
        headers={**JSON, "content-type": "application/x-www-form-urlencoded"},
    )
    assert latin.status_code in (200, 422), latin.text


# --------------------------------------------------------------------------- images


def _lying_png() -> bytes:
    return png()[:40] + b"garbage" * 100


def _bomb_png() -> bytes:
    data = bytearray(png(size=1))
    # IHDR width/height at bytes 16..24: declare 60000x60000 (the CRC is then wrong too).
    data[16:24] = (60000).to_bytes(4, "big") * 2
    return bytes(data)


def _gif_frames(count: int) -> bytes:
    frames = [Image.new("P", (4, 4), i % 256) for i in range(count)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def _big_header(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("lying.png", _lying_png()),
        ("bomb.png", _bomb_png()),
        ("anim.gif", _gif_frames(1000)),
        ("p.webp", png(fmt="WEBP")),
        ("empty.png", b""),
        ("huge.png", _big_header("PNG")),
        ("svg.png", b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
    ],
)
async def test_odd_images_are_checked_not_failed(h5: H5, name: str, data: bytes) -> None:
    response = await h5.client.post(
        h5.url(suffix="/checkin"),
        data={"text": "图"},
        files=[("images", (name, data, "image/png"))],
        headers=JSON,
    )

    assert response.status_code in (200, 413, 415, 422), response.text
    if response.status_code != 200:
        assert await _count(h5, CheckinEntry) == 0
        assert h5.storage.keys() == []


@pytest.mark.parametrize("charset", ["unicode_escape", "raw_unicode_escape", "utf-16", "bogus"])
async def test_a_multipart_charset_that_decodes_to_lone_surrogates_is_refused(
    h5: H5, charset: str
) -> None:
    # Starlette decodes the parts in the charset the Content-Type names, any Python codec:
    # `unicode_escape` turns "\ud800" into a lone surrogate no database can store.
    body = (
        b'--x\r\nContent-Disposition: form-data; name="text"\r\n\r\nok \\ud800 \\x00\r\n--x--\r\n'
    )
    for path in ("/checkin", "/achievements"):
        response = await h5.client.post(
            h5.url(suffix=path),
            content=body.replace(b'"text"', b'"title"') if path == "/achievements" else body,
            headers={
                **JSON,
                "content-type": f"multipart/form-data; boundary=x; charset={charset}",
            },
        )
        assert response.status_code in (200, 422), (path, response.text)
        if charset.endswith("unicode_escape"):
            assert response.status_code == 422


async def test_reopening_a_form_address_leads_back_to_the_page_in_chinese(h5: H5) -> None:
    # After a refusal the browser's address is the form's POST address; a reload from the
    # WeChat menu, or the address shared, is a GET there: never an English 405.
    for suffix in ("/checkin", "/achievements"):
        response = await h5.client.get(h5.url(suffix=suffix))
        assert response.status_code == 303, suffix
        assert response.headers["location"] == h5.url()
        assert response.headers["cache-control"] == "no-store"
        refused = await h5.client.get(f"/h5/m/1.0.{'A' * 22}{suffix}")
        assert refused.status_code == 403
        assert "链接无效" in refused.text
