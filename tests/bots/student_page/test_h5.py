"""The personal H5 page end to end, on both backends: the page, check-ins with images,
same-day edits, refusals that store nothing, tokens, and one student never seeing another's."""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import AsyncIterator, Callable

import pytest
from PIL import Image, ImageOps
from sqlalchemy import update

from app.admin import h5_tokens
from app.api.h5 import uploads
from bots.checkin.models import CheckinEntry, EntryKind
from tests.bots.checkin.camp import local
from tests.bots.student_page.support import H5, png
from tests.images import assert_private, phone_jpeg, pixels

# --------------------------------------------------------------------------- the page


async def test_page_shows_day_task_standing_and_forms(h5: H5) -> None:
    response = await h5.client.get(h5.url())

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    html = response.text
    assert "跨境电商实战营 · 6 期" in html
    assert '<div class="day" id="camp-day">第 1 天</div>' in html
    assert '<b id="streak">0</b>' in html
    assert "第 1 名" in html
    assert "共 2 人" in html
    assert 'name="kind" value="checkin"' in html
    assert 'name="kind" value="homework"' in html
    assert "最多 9 张图片，每张不超过 10 MB" in html
    assert "今天请假（还可请 2 天）" in html
    assert "补第 0 天" in html  # day 0 is inside the default 2-day 补卡 window
    # Fast on a phone: no external asset, and small.
    assert "http://" not in html
    assert "https://" not in html
    assert len(response.content) < 16_000


async def test_checkin_with_text_and_images(h5: H5) -> None:
    red, blue = png((220, 20, 20)), png((20, 20, 220), fmt="JPEG")

    response = await h5.post(
        text="第一天打卡：完成选品",
        images=[("a.png", red, "image/png"), ("b.jpg", blue, "image/jpeg")],
    )

    assert response.status_code == 303
    assert response.headers["location"] == h5.url() + "?ok=checkin#checkin"
    (entry,) = await h5.entries()
    assert (entry.kind, entry.day, entry.text) == (EntryKind.CHECKIN, 1, "第一天打卡：完成选品")
    assert len(entry.images) == 2
    assert entry.images[0].endswith(".png")
    assert entry.images[1].endswith(".jpg")
    assert sorted(h5.storage.keys()) == sorted(entry.images)

    page = (await h5.client.get(response.headers["location"])).text
    assert "打卡成功！" in page
    assert "✓ 已打卡" in page
    assert "第一天打卡：完成选品" in page
    assert '<b id="streak">1</b>' in page
    for key in entry.images:
        assert f'src="{h5.url(suffix="/img/" + key)}"' in page
    served = await h5.client.get(h5.url(suffix=f"/img/{entry.images[0]}"))
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert served.content == red


async def test_type_comes_from_the_bytes_not_the_client(h5: H5) -> None:
    gif = png((1, 2, 3), fmt="GIF")

    response = await h5.post(images=[("photo.jpg", gif, "image/jpeg")], json=True)

    assert response.status_code == 200
    (key,) = [image["key"] for image in response.json()["entry"]["images"]]
    assert key.endswith(".gif")
    served = await h5.client.get(h5.url(suffix=f"/img/{key}"))
    assert served.headers["content-type"] == "image/gif"


async def test_a_photo_is_stored_and_served_without_its_location(h5: H5) -> None:
    photo = phone_jpeg(orientation=6)  # GPS, camera, time, XMP, a comment; shot sideways

    response = await h5.post(images=[("IMG_0001.jpg", photo, "image/jpeg")], json=True)

    assert response.status_code == 200
    (key,) = [image["key"] for image in response.json()["entry"]["images"]]
    served = await h5.client.get(h5.url(suffix=f"/img/{key}"))
    assert served.status_code == 200
    kept = served.content
    assert h5.storage.keys() == [key]
    assert key == hashlib.sha256(kept).hexdigest() + ".jpg"  # named by what is stored
    assert_private(kept, orientation=6)  # still shown upright
    with Image.open(io.BytesIO(kept)) as image:
        assert ImageOps.exif_transpose(image).size == (32, 48)
    assert pixels(kept) == pixels(photo)  # the picture itself untouched


async def test_same_day_resubmission_edits_the_entry(h5: H5) -> None:
    image = png()
    first = await h5.post(text="初稿", images=[("a.png", image, "image/png")], json=True)
    second = await h5.post(text="改过的版本", images=[("a.png", image, "image/png")], json=True)
    third = await h5.post(text="再改一次")  # a browser form this time

    assert first.json()["created"] is True
    assert second.json()["created"] is False
    assert second.json()["standing"]["streak"] == 1
    assert third.status_code == 303
    assert "ok=checkin-updated" in third.headers["location"]
    (entry,) = await h5.entries()
    assert entry.text == "再改一次"
    assert entry.images == []
    assert len(h5.storage.keys()) == 1  # the same image twice is stored once
    page = (await h5.client.get(third.headers["location"])).text
    assert "打卡已更新" in page
    assert "再改一次" in page
    assert "修改打卡" in page


async def test_homework_and_its_review_show_on_the_page(h5: H5) -> None:
    response = await h5.post(text="作业：选品表", kind="homework")
    assert response.status_code == 303
    assert "ok=homework" in response.headers["location"]
    async with h5.sessions() as session:
        await session.execute(
            update(CheckinEntry).values(score=92, comment="选品思路清晰<b>加油</b>")
        )
        await session.commit()

    page = (await h5.client.get(h5.url())).text

    assert "✓ 已提交作业" in page
    assert "作业：选品表" in page
    assert "助教点评 · 92 分：选品思路清晰&lt;b&gt;加油&lt;/b&gt;" in page
    assert '<b id="streak">0</b>' in page  # homework is not a check-in


async def test_leave_and_makeup_go_through_the_same_post(h5: H5) -> None:
    leave = await h5.post(text="", kind="leave")
    assert leave.status_code == 303
    assert "ok=leave" in leave.headers["location"]
    page = (await h5.client.get(h5.url())).text
    assert "今天已请假" in page
    assert "今天请假" not in page

    makeup = await h5.post(text="补昨天的", day="0")
    assert makeup.status_code == 303
    assert "ok=makeup" in makeup.headers["location"]
    days = {(e.day, e.status) for e in await h5.entries()}
    assert days == {(1, "leave"), (0, "makeup")}
    page = (await h5.client.get(makeup.headers["location"])).text
    assert "补卡成功" in page
    assert "补第 0 天" not in page


async def test_student_text_is_escaped(h5: H5) -> None:
    await h5.post(text='<script>alert("x")</script>')

    page = (await h5.client.get(h5.url())).text

    assert '<script>alert("x")</script>' not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


async def test_before_and_after_the_camp(h5: H5) -> None:
    h5.clock.set(local(-1, 12))
    before = await h5.client.get(h5.url())
    refused = await h5.post(text="提前打卡", json=True)

    assert "未开营" in before.text
    assert 'name="kind"' not in before.text
    assert refused.status_code == 409
    assert "开营后再来打卡" in refused.json()["detail"][0]["message"]

    h5.clock.set(local(9, 12))
    after = await h5.client.get(h5.url())
    assert "已结营" in after.text
    assert 'name="kind"' not in after.text
    assert await h5.entry_count() == 0


async def test_member_without_a_cohort_gets_a_plain_page(h5: H5) -> None:
    response = await h5.client.get(h5.url("路人"))
    assert response.status_code == 200
    assert "你还没有加入训练营" in response.text


# --------------------------------------------------------------------------- refusals


def _oversized() -> bytes:
    return png() + b"\0" * (uploads.MAX_IMAGE_BYTES - len(png()) + 1)


Files = list[tuple[str, bytes, str]]
# case -> (the images, the text, the status, the message)
REFUSALS: dict[str, tuple[Callable[[], Files], str, int, str]] = {
    "oversized": (
        lambda: [("big.png", _oversized(), "image/png")],
        "",
        413,
        "第 1 张图片超过 10 MB",
    ),
    "not an image": (
        lambda: [("ok.png", png(), "image/png"), ("cv.png", b"%PDF-1.7 not a png", "image/png")],
        "",
        415,
        "第 2 个文件不是图片（支持 JPEG、PNG、GIF、WebP）",
    ),
    "ten images": (
        lambda: [(f"{n}.png", png((n, n, n)), "image/png") for n in range(10)],
        "",
        422,
        "最多上传 9 张图片，这次选了 10 张",
    ),
    "text too long": (
        lambda: [("ok.png", png(), "image/png")],
        "字" * 2001,
        422,
        "文字最多 2000 字，现在是 2001 字",
    ),
    "empty": (lambda: [], "  ", 422, "请写点什么或上传图片"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_refusal_is_clear_and_stores_nothing(h5: H5, case: str) -> None:
    make_images, text, status, message = REFUSALS[case]

    as_json = await h5.post(text=text or "文字", images=make_images(), json=True)
    as_form = await h5.post(text=text or "文字", images=make_images())

    assert as_json.status_code == status
    assert as_json.json() == {
        "detail": [{"field": as_json.json()["detail"][0]["field"], "message": message}]
    }
    assert as_form.status_code == status
    assert as_form.headers["content-type"].startswith("text/html")
    assert f'<p class="flash err" role="alert" id="error">{message}</p>' in as_form.text
    assert await h5.entry_count() == 0
    assert h5.storage.keys() == []
    assert not list((h5.storage.root).rglob("*.*"))  # no temp file either


async def test_body_over_the_cap_is_refused_while_streaming(
    h5: H5, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uploads, "MAX_BODY_BYTES", 200_000)
    blob = os.urandom(600_000)  # refused by size before anything looks at it

    async def chunks() -> AsyncIterator[bytes]:
        body = (
            b'--XX\r\nContent-Disposition: form-data; name="images"; filename="a.bmp"\r\n'
            b"Content-Type: image/png\r\n\r\n" + blob + b"\r\n--XX--\r\n"
        )
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    chunked = await h5.client.post(  # no Content-Length: the stream itself is counted
        h5.url(suffix="/checkin"),
        content=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=XX"},
    )
    declared = await h5.client.post(
        h5.url(suffix="/checkin"),
        content=b"x" * 200_001,
        headers={"Content-Type": "multipart/form-data; boundary=XX", "Accept": "application/json"},
    )

    assert chunked.status_code == 413
    assert "提交内容太大" in chunked.text
    assert declared.status_code == 413
    assert await h5.entry_count() == 0
    assert h5.storage.keys() == []


async def test_refused_submission_removes_images_it_wrote(h5: H5) -> None:
    """Images pass their checks, then the domain refuses (a day outside the 补卡 window):
    the files written for it are removed again; a file another entry holds stays."""
    kept = png((9, 9, 9))
    await h5.post(images=[("kept.png", kept, "image/png")])

    refused = await h5.post(
        text="补很久以前的",
        images=[("kept.png", kept, "image/png"), ("new.png", png((7, 7, 7)), "image/png")],
        day="5",
        json=True,
    )

    assert refused.status_code == 409
    assert refused.json()["detail"][0] == {
        "field": "day",
        "message": "第 5 天还没到，不能提前打卡。",
    }
    assert len(await h5.entries()) == 1
    (entry,) = await h5.entries()
    assert h5.storage.keys() == entry.images


async def test_bad_fields_are_refused(h5: H5) -> None:
    kind = await h5.post(kind="essay", json=True)
    day = await h5.post(day="yesterday", json=True)

    assert kind.status_code == 422
    assert kind.json()["detail"][0]["field"] == "kind"
    assert day.status_code == 422
    assert day.json()["detail"][0]["field"] == "day"
    assert await h5.entry_count() == 0


# --------------------------------------------------------------------------- tokens


def _tampered(token: str) -> str:
    last = token[-1]
    return token[:-1] + ("A" if last != "A" else "B")


async def _assert_refused(h5: H5, token: str) -> None:
    page = await h5.client.get(f"/h5/m/{token}")
    post = await h5.client.post(
        f"/h5/m/{token}/checkin",
        data={"text": "x"},
        files=[("images", ("a.png", png(), "image/png"))],
    )
    as_json = await h5.client.get(f"/h5/m/{token}", headers={"Accept": "application/json"})
    for response in (page, post):
        assert response.status_code == 403
        assert "链接无效或已失效" in response.text
        assert "小林" not in response.text
        assert "小王" not in response.text
        assert "训练营 ·" not in response.text
    assert as_json.status_code == 403
    assert as_json.json() == {"detail": "链接无效或已失效，请联系助教获取新的链接。"}


async def test_tampered_and_unknown_tokens_answer_403(h5: H5) -> None:
    token = h5.tokens["小林"]
    member_id, version, _ = token.split(".")
    forged_other = f"{int(member_id) + 1}.{version}.{token.split('.')[2]}"

    for bad in (_tampered(token), forged_other, "1.0.x", "not-a-token", "9" * 70):
        await _assert_refused(h5, bad)
    assert await h5.entry_count() == 0
    assert h5.storage.keys() == []


async def test_revoked_token_answers_403(h5: H5) -> None:
    old = h5.tokens["小林"]
    assert (await h5.client.get(f"/h5/m/{old}")).status_code == 200
    async with h5.sessions() as session:
        await h5_tokens.revoke(session=session, member_id=h5.ids["小林"], now=h5.clock.now())
        new = (
            await h5_tokens.tokens_for(
                session=session, member_ids=[h5.ids["小林"]], now=h5.clock.now()
            )
        )[h5.ids["小林"]]
        await session.commit()

    await _assert_refused(h5, old)
    assert (await h5.client.get(f"/h5/m/{new}")).status_code == 200


async def test_each_student_sees_only_their_own(h5: H5) -> None:
    lin_image, wang_image = png((1, 100, 1)), png((100, 1, 1))
    await h5.post("小林", text="小林的心得", images=[("l.png", lin_image, "image/png")])
    await h5.post("小王", text="小王的心得", images=[("w.png", wang_image, "image/png")])
    keys = {e.member_id: e.images[0] for e in await h5.entries()}
    lin_key, wang_key = keys[h5.ids["小林"]], keys[h5.ids["小王"]]

    lin_page = (await h5.client.get(h5.url("小林"))).text
    wang_page = (await h5.client.get(h5.url("小王"))).text

    assert "小林的心得" in lin_page
    assert "小王的心得" not in lin_page
    assert wang_key not in lin_page
    assert "小王的心得" in wang_page
    assert "小林的心得" not in wang_page
    assert lin_key not in wang_page
    assert (await h5.client.get(h5.url("小林", f"/img/{lin_key}"))).status_code == 200
    for who, key in (("小王", lin_key), ("小林", wang_key)):
        assert (await h5.client.get(h5.url(who, f"/img/{key}"))).status_code == 404
    # A key that is not one (a path, a listing) is the same 404, never a file.
    for key in ("..%2F..%2Fcampbot.db", "", "ab", lin_key.replace(".png", ".txt")):
        response = await h5.client.get(h5.url("小林", f"/img/{key}"))
        assert response.status_code == 404
    # Another member's token never reaches the first's image.
    outsider = await h5.client.get(h5.url("路人", f"/img/{lin_key}"))
    assert outsider.status_code == 404
    # And a page never lists images beyond its own entries.
    assert re.findall(r"/img/([0-9a-f]{64}\.\w+)", lin_page) == [lin_key]


async def test_a_form_with_too_many_parts_is_a_clear_400(h5: H5) -> None:
    """Starlette refuses the 65th file part itself; the student still reads why, in Chinese."""
    parts = b"".join(
        b'--x\r\nContent-Disposition: form-data; name="images"; filename="%d.png"\r\n'
        b"Content-Type: image/png\r\n\r\npng\r\n" % n
        for n in range(65)
    )
    response = await h5.client.post(
        h5.url(suffix="/checkin"),
        content=parts + b"--x--\r\n",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert response.status_code == 400
    assert "表单格式不正确" in response.text
