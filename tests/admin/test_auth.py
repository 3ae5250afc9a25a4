"""Every /admin/api route needs a live bearer token; operator tokens are made, used, revoked."""

from __future__ import annotations

import hashlib
import re

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.models import OperatorToken
from app.api.admin.route import AdminRoute
from app.clock import ManualClock
from tests.admin.conftest import ADMIN_TOKEN, Admin
from tests.support import AppHarness

BAD_HEADERS = [
    pytest.param({}, id="missing"),
    pytest.param({"Authorization": "Bearer wrong-token"}, id="wrong"),
    pytest.param({"Authorization": f"Bearer {ADMIN_TOKEN}x"}, id="longer"),
    pytest.param({"Authorization": f"Basic {ADMIN_TOKEN}"}, id="not-bearer"),
    pytest.param({"Authorization": "Bearer "}, id="empty"),
    pytest.param({"Authorization": "Bearer 令牌".encode()}, id="non-ascii"),
]


def admin_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, concrete path) for every admin route, path parameters filled with 1."""
    found = []
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if not path.startswith("/admin/api"):
            continue
        for method in sorted(route.methods or ()):
            found.append((method, re.sub(r"\{[^}]+\}", "1", path)))
    return found


async def test_the_route_table_is_the_admin_api(harness: AppHarness) -> None:
    routes = set(admin_routes(harness.app))
    for expected in [
        ("POST", "/admin/api/cohorts"),
        ("PATCH", "/admin/api/cohorts/1"),
        ("DELETE", "/admin/api/groups/1"),
        ("GET", "/admin/api/members"),
        ("POST", "/admin/api/members/1/tags"),
        ("POST", "/admin/api/outbox/1/retry"),
        ("POST", "/admin/api/outbox/1/cancel"),
        ("POST", "/admin/api/tokens"),
        ("DELETE", "/admin/api/tokens/1"),
        ("GET", "/admin/api/audit"),
    ]:
        assert expected in routes
    for route in iter_route_contexts(harness.app.routes):
        if (route.path or "").startswith("/admin/api"):
            # AdminRoute is what checks the token: a plain APIRoute here would be open.
            assert isinstance(route.original_route, AdminRoute), route.path


@pytest.mark.parametrize("headers", BAD_HEADERS)
async def test_every_admin_route_refuses_a_missing_or_wrong_token(
    harness: AppHarness, headers: dict[str, str | bytes]
) -> None:
    routes = admin_routes(harness.app)
    assert len(routes) >= 20
    for method, path in routes:
        # A malformed body too: the token is checked before the body is read.
        response = await harness.client.request(method, path, headers=headers, content=b"{")
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert "令牌" in response.json()["detail"]


async def test_without_admin_token_and_operator_tokens_everything_is_refused(
    open_app: AppHarness,
) -> None:
    for method, path in admin_routes(open_app.app):
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
            response = await open_app.client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path)


async def test_an_operator_token_works_without_admin_token(
    open_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = "cbt_made-by-the-cli"
    async with sessions.begin() as session:
        session.add(
            OperatorToken(
                name="ops",
                token_sha256=hashlib.sha256(token.encode()).hexdigest(),
                prefix=token[:10],
                created_by="cli",
                created_at=clock.now(),
            )
        )
    assert (await Admin(open_app, token).get("/cohorts")).status_code == 200


async def test_operator_token_lifecycle(
    admin: Admin, harness: AppHarness, sessions: async_sessionmaker[AsyncSession]
) -> None:
    created = await admin.created("/tokens", {"name": "alice"})
    token = created["token"]
    assert token.startswith("cbt_")
    assert created["prefix"] == token[:10]
    assert created["revoked_at"] is None
    assert created["created_by"] == "admin"

    async with sessions() as session:
        row = (await session.execute(select(OperatorToken))).scalar_one()
    assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {row.name, row.prefix, row.token_sha256}

    listed = (await admin.get("/tokens")).json()
    assert listed["total"] == 1
    assert "token" not in listed["items"][0]

    alice = Admin(harness, token)
    cohort = await alice.cohort()
    audit = (await admin.get("/audit", params={"resource": "cohorts"})).json()["items"]
    assert audit[0]["actor"] == "alice"
    assert audit[0]["resource_id"] == str(cohort["id"])

    assert (await alice.delete(f"/tokens/{created['id']}")).status_code == 204
    refused = await alice.get("/cohorts")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert (await admin.delete(f"/tokens/{created['id']}")).status_code == 409
    assert (await admin.get("/tokens")).json()["total"] == 0
    assert (await admin.get("/tokens", params={"include_revoked": "true"})).json()["total"] == 1

    actions = [
        (e["actor"], e["action"])
        for e in (await admin.get("/audit", params={"resource": "tokens"})).json()["items"]
    ]
    assert actions == [("alice", "revoke"), ("admin", "create")]
    # The audit log never holds the token or its hash.
    assert token not in (await admin.get("/audit")).text
    assert row.token_sha256 not in (await admin.get("/audit")).text


async def test_token_names(admin: Admin) -> None:
    reserved = await admin.post("/tokens", json={"name": "admin"})
    assert reserved.status_code == 422
    assert reserved.json()["detail"][0]["field"] == "name"
    await admin.created("/tokens", {"name": "bob"})
    duplicate = await admin.post("/tokens", json={"name": "bob"})
    assert duplicate.status_code == 409
    assert "bob" in duplicate.json()["detail"]
    assert (await admin.delete("/tokens/999")).status_code == 404


async def test_openapi_documents_every_admin_route(harness: AppHarness) -> None:
    response = await harness.client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    operations = [
        (method, path, op)
        for path, item in spec["paths"].items()
        if path.startswith("/admin/api")
        for method, op in item.items()
    ]
    assert len(operations) == len(admin_routes(harness.app))
    for method, path, op in operations:
        assert op.get("summary"), (method, path)
        assert op["security"] == [{"HTTPBearer": []}], (method, path)
        assert "401" in op["responses"], (method, path)
        ok = [code for code in op["responses"] if code.startswith("2")]
        assert ok, (method, path)
        if ok != ["204"]:
            content = op["responses"][ok[0]].get("content", {})
            if "application/json" in content:
                assert "schema" in content["application/json"], (method, path)
            else:
                assert content, (method, path)  # a file (image, CSV, SVG) names its type
        if "422" in op["responses"]:
            schema = op["responses"]["422"]["content"]["application/json"]["schema"]
            assert schema["$ref"].endswith("/ValidationErrorOut")
