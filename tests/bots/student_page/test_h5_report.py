"""「我有喜报」 on the personal H5 page, end to end on both backends: a report stores one
pending achievement for the token's member (never another's), bad input is refused with the
reason and stores nothing, and a revoked token is refused."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.admin import h5_tokens
from bots.xibao.models import Achievement, AchievementSource, AchievementStatus
from tests.bots.checkin.camp import local
from tests.bots.student_page.support import H5

FLASH = "已提交，助教审核后会在群里发喜报"
JSON = {"Accept": "application/json"}


async def _report(
    h5: H5, who: str = "小林", *, json: bool = False, **fields: str
) -> tuple[int, str, dict[str, object] | None, str]:
    response = await h5.client.post(
        h5.url(who, "/achievements"), data=fields, headers=JSON if json else {}
    )
    body = response.json() if json else None
    return response.status_code, response.headers.get("location", ""), body, response.text


async def _achievements(h5: H5) -> list[Achievement]:
    async with h5.sessions() as session:
        return list((await session.scalars(select(Achievement).order_by(Achievement.id))).all())


async def test_page_has_the_report_form(h5: H5) -> None:
    page = await h5.client.get(h5.url())

    assert "我有喜报" in page.text
    assert f'<form method="post" action="{h5.url(suffix="/achievements")}">' in page.text
    assert 'name="title" maxlength="100" required' in page.text
    assert 'name="detail" maxlength="500"' in page.text
    assert len(page.content) < 16_000  # still light on a phone
    h5.clock.set(local(9, 12))  # after the camp: results still come in
    assert "我有喜报" in (await h5.client.get(h5.url())).text


async def test_report_stores_one_pending_achievement_for_the_member(h5: H5) -> None:
    status, location, _, _ = await _report(
        h5, title=" 第一单出单啦 ", detail="美国站，客单价 39 美元", member_id="999"
    )

    assert status == 303
    assert location == h5.url() + "?ok=achievement#xibao"
    (achievement,) = await _achievements(h5)
    assert achievement.member_id == h5.ids["小林"]
    assert (achievement.title, achievement.detail) == ("第一单出单啦", "美国站，客单价 39 美元")
    assert achievement.status == AchievementStatus.PENDING
    assert achievement.source == AchievementSource.H5
    assert achievement.cohort_id is not None
    assert achievement.approved_at is None
    page = (await h5.client.get(location)).text
    assert f'<p class="flash ok" role="status" id="flash">{FLASH}</p>' in page


async def test_json_report_and_each_token_acts_for_its_own_member(h5: H5) -> None:
    status, _, body, _ = await _report(h5, "小王", json=True, title="上岸了")
    await _report(h5, "小林", title="拿到 offer")

    assert status == 200
    assert body is not None
    achievement = body["achievement"]
    assert isinstance(achievement, dict)
    assert body["ok"] is True
    assert (achievement["title"], achievement["detail"], achievement["status"]) == (
        "上岸了",
        "",
        "pending",
    )
    by_member = {a.member_id: a.title for a in await _achievements(h5)}
    assert by_member == {h5.ids["小王"]: "上岸了", h5.ids["小林"]: "拿到 offer"}
    assert achievement["id"] in {a.id for a in await _achievements(h5)}


# case -> (the fields, the field refused, the message)
REFUSALS: dict[str, tuple[dict[str, str], str, str]] = {
    "no title": (
        {"title": "  ", "detail": "出单了"},
        "title",
        "请填写喜报标题（如：出单啦、上岸了）。",
    ),
    "title too long": ({"title": "喜" * 101}, "title", "喜报标题不能超过 100 个字。"),
    "detail too long": (
        {"title": "出单啦", "detail": "单" * 501},
        "detail",
        "喜报详情不能超过 500 个字。",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
async def test_bad_input_is_422_with_the_reason_and_stores_nothing(h5: H5, case: str) -> None:
    fields, field, message = REFUSALS[case]

    json_status, _, body, _ = await _report(h5, json=True, **fields)
    form_status, location, _, html = await _report(h5, **fields)

    assert json_status == 422
    assert body == {"detail": [{"field": field, "message": message}]}
    assert form_status == 422
    assert location == ""
    assert f'<p class="flash err" role="alert" id="error">{message}</p>' in html
    assert "<details open><summary>出单、上岸、拿到 offer？告诉助教</summary>" in html
    if fields.get("detail"):  # the student's draft comes back in the form
        assert f'placeholder="说说详情（选填，最多 500 字）">{fields["detail"]}</textarea>' in html
    assert await _achievements(h5) == []


async def test_what_is_not_the_form_is_refused(h5: H5) -> None:
    url = h5.url(suffix="/achievements")
    with_file = await h5.client.post(
        url, data={"title": "出单啦"}, files={"poster": ("a.png", b"png", "image/png")}
    )
    too_big = await h5.client.post(
        url, data={"title": "出单啦", "detail": "x" * 70_000}, headers=JSON
    )

    assert with_file.status_code == 400
    assert "表单格式不正确" in with_file.text
    assert too_big.status_code == 413
    assert too_big.json()["detail"][0]["field"] == "form"
    assert await _achievements(h5) == []


async def test_revoked_token_answers_403_and_stores_nothing(h5: H5) -> None:
    old = h5.tokens["小林"]
    async with h5.sessions() as session:
        await h5_tokens.revoke(session=session, member_id=h5.ids["小林"], now=h5.clock.now())
        await session.commit()

    for token in (old, "1.0.x"):
        page = await h5.client.post(f"/h5/m/{token}/achievements", data={"title": "出单啦"})
        as_json = await h5.client.post(
            f"/h5/m/{token}/achievements", data={"title": "出单啦"}, headers=JSON
        )
        assert page.status_code == 403
        assert "链接无效或已失效" in page.text
        assert as_json.status_code == 403
        assert as_json.json() == {"detail": "链接无效或已失效，请联系助教获取新的链接。"}
    assert await _achievements(h5) == []
