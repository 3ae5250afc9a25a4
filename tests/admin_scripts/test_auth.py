"""Every /admin/api/scripts and /admin/api/schedules route refuses a missing or wrong token."""

from __future__ import annotations

import re

import pytest

from tests.support import AppHarness

PREFIXES = ("/admin/api/scripts", "/admin/api/schedules")
BAD_HEADERS = [
    pytest.param({}, id="missing"),
    pytest.param({"Authorization": "Bearer wrong-token"}, id="wrong"),
]


def _filled(path: str) -> str:
    # A script key is text, every other path parameter an id.
    return re.sub(r"\{(\w+)\}", lambda m: "k" if m.group(1) == "key" else "1", path)


def routes(harness: AppHarness) -> list[tuple[str, str]]:
    paths = harness.app.openapi()["paths"]
    return [
        (method.upper(), _filled(path))
        for path, item in paths.items()
        if path.startswith(PREFIXES)
        for method in item
    ]


async def test_the_route_table(harness: AppHarness) -> None:
    found = set(routes(harness))
    expected = {
        ("POST", "/admin/api/scripts"),
        ("GET", "/admin/api/scripts"),
        ("GET", "/admin/api/scripts/k"),
        ("PUT", "/admin/api/scripts/k"),
        ("GET", "/admin/api/scripts/k/versions"),
        ("GET", "/admin/api/scripts/k/versions/1"),
        ("GET", "/admin/api/scripts/k/diff"),
        ("POST", "/admin/api/scripts/k/rollback"),
        ("POST", "/admin/api/scripts/k/preview"),
        ("POST", "/admin/api/schedules"),
        ("GET", "/admin/api/schedules/calendar"),
        ("POST", "/admin/api/schedules/1/run"),
    }
    assert expected <= found


@pytest.mark.parametrize("headers", BAD_HEADERS)
async def test_every_route_refuses_a_missing_or_wrong_token(
    harness: AppHarness, headers: dict[str, str]
) -> None:
    found = routes(harness)
    assert len(found) >= 17
    # Every route's own 401, from one address: the admin throttle would step in otherwise.
    harness.allow_refusals(found)
    for method, path in found:
        # A malformed body too: the token is checked before the body is read.
        response = await harness.client.request(method, path, headers=headers, content=b"{")
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"


async def test_openapi_documents_the_token_and_the_401(harness: AppHarness) -> None:
    spec = harness.app.openapi()
    for path, item in spec["paths"].items():
        if not path.startswith(PREFIXES):
            continue
        for method, operation in item.items():
            assert operation.get("summary"), (method, path)
            assert operation["security"] == [{"HTTPBearer": []}], (method, path)
            assert "401" in operation["responses"], (method, path)
