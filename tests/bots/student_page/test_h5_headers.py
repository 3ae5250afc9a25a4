"""Every answer under /h5/ carries the page's private headers — the framework's 404, 405 and
trailing-slash redirect, refusals, validation errors and a crash included — and no redirect
sends the student (and the token in the path) to the Host header's site."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.h5.headers import FALLBACK_POLICY, H5Headers, same_origin_relative
from tests.bots.student_page.support import H5, png

PRIVATE = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}


def assert_private(response: httpx.Response) -> None:
    for name, value in PRIVATE.items():
        assert response.headers.get(name) == value, (name, response.status_code)
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_the_trailing_slash_redirect_is_relative_and_private(h5: H5) -> None:
    response = await h5.client.get(
        h5.url(suffix="/"), params={"ok": "checkin"}, headers={"Host": "evil.example"}
    )

    assert response.status_code in (307, 308)
    assert response.headers["location"] == h5.url() + "?ok=checkin"  # not evil.example
    assert_private(response)
    followed = await h5.client.get(response.headers["location"])
    assert followed.status_code == 200


@pytest.mark.parametrize(
    ("method", "suffix", "status"),
    [
        ("GET", "/nothing-here", 404),  # the framework's 404
        ("DELETE", "", 405),  # the framework's 405
        ("PUT", "/checkin", 405),
        ("GET", "/faq?q=" + "x" * 10, 200),
        ("GET", "/img/" + "a" * 64 + ".png", 404),
        ("GET", "/checkin", 303),  # a form's address: back to the page
    ],
)
async def test_framework_and_route_answers_are_private(
    h5: H5, method: str, suffix: str, status: int
) -> None:
    response = await h5.client.request(method, h5.url(suffix=suffix))

    assert response.status_code == status
    assert_private(response)


async def test_refusals_and_errors_are_private(h5: H5) -> None:
    refused = await h5.client.get("/h5/m/1.0.AAAAAAAAAAAAAAAAAAAAAA")
    assert refused.status_code == 403
    assert_private(refused)
    outside = await h5.client.get("/h5/nowhere/")
    assert outside.status_code == 404
    assert_private(outside)
    not_an_image = await h5.post(images=[("a.png", b"not an image", "image/png")])
    assert not_an_image.status_code == 415
    assert_private(not_an_image)


async def test_what_a_route_set_itself_is_kept(h5: H5) -> None:
    response = await h5.client.get(h5.url())
    assert "script-src 'nonce-" in response.headers["content-security-policy"]
    assert response.headers["content-security-policy"] != FALLBACK_POLICY

    posted = await h5.post(images=[("a.png", png(), "image/png")], json=True)
    key = posted.json()["entry"]["images"][0]["key"]
    image = await h5.client.get(h5.url(suffix=f"/img/{key}"))
    assert image.headers["cache-control"] == "private, max-age=31536000, immutable"
    assert image.headers["referrer-policy"] == "no-referrer"


async def test_a_crash_under_h5_is_answered_privately() -> None:
    async def crash(request: Request) -> Response:
        raise RuntimeError("boom")

    app = Starlette(routes=[Route("/h5/m/{token}", crash)])
    app.add_middleware(H5Headers)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://campbot") as client:
        response = await client.get("/h5/m/1.0.x")
        elsewhere = await client.get("/other")

    assert response.status_code == 500
    assert_private(response)
    assert "boom" not in response.text
    assert "cache-control" not in elsewhere.headers  # only /h5/ is touched


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://evil.example/h5/m/1.x", "/h5/m/1.x"),
        ("https://EVIL.example/h5/m/1.x?ok=1#top", "/h5/m/1.x?ok=1#top"),
        ("http://evil.example//other.example/x", "/other.example/x"),  # never `//host`
        ("https://bucket.example/signed?sig=1", "https://bucket.example/signed?sig=1"),
        ("/h5/m/1.x?ok=checkin", "/h5/m/1.x?ok=checkin"),
    ],
)
def test_only_locations_built_from_the_request_are_made_relative(
    location: str, expected: str
) -> None:
    assert same_origin_relative(location, "evil.example") == expected
