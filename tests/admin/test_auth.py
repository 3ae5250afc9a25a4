"""Every /admin/api route needs a live bearer token; operator tokens are made, used, revoked."""

from __future__ import annotations

import hashlib
import re

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.models import OperatorToken
from app.api.admin.route_class import AdminRoute
from app.api.admin.throttle import AuthThrottle
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
    # Every route's own 401, from one address: the throttle (tested below) would step in.
    harness.allow_refusals(routes)
    for method, path in routes:
        # A malformed body too: the token is checked before the body is read.
        response = await harness.client.request(method, path, headers=headers, content=b"{")
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert "令牌" in response.json()["detail"]


async def test_without_admin_token_and_operator_tokens_everything_is_refused(
    open_app: AppHarness,
) -> None:
    routes = admin_routes(open_app.app)
    open_app.allow_refusals(routes)
    for method, path in routes:
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


# --------------------------------------------------------------------------- brute force


def from_address(harness: AppHarness, host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=harness.app, client=(host, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://campbot")


async def test_wrong_tokens_from_one_address_are_throttled_with_retry_after(
    harness: AppHarness, sessions: async_sessionmaker[AsyncSession]
) -> None:
    wrong = {"Authorization": "Bearer guess-0001"}
    right = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with from_address(harness, "198.51.100.7") as guesser:
        for _ in range(10):
            assert (await guesser.get("/admin/api/cohorts", headers=wrong)).status_code == 401
        throttled = await guesser.get("/admin/api/cohorts", headers=wrong)
        assert throttled.status_code == 429
        assert 1 <= int(throttled.headers["retry-after"]) <= 60
        assert "错误次数过多" in throttled.json()["detail"]
        # Not even the right token is checked from there, on any admin route, any body.
        for method, path in [("GET", "/admin/api/cohorts"), ("POST", "/admin/api/tokens")]:
            refused = await guesser.request(method, path, headers=right, content=b"{")
            assert refused.status_code == 429
    async with from_address(harness, "203.0.113.9") as operator:
        assert (await operator.get("/admin/api/cohorts", headers=right)).status_code == 200
        assert (await operator.get("/admin/api/cohorts", headers=wrong)).status_code == 401
    async with sessions() as session:  # nothing the throttled requests asked for was done
        assert (await session.scalars(select(OperatorToken))).all() == []


async def test_successes_are_not_counted_and_failures_age_out(harness: AppHarness) -> None:
    now = [1000.0]
    harness.app.state.admin_throttle = AuthThrottle(monotonic=lambda: now[0])
    wrong = {"Authorization": "Bearer guess-0001"}
    right = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    client = harness.client
    for _ in range(30):
        assert (await client.get("/admin/api/cohorts", headers=right)).status_code == 200
    for second in range(10):  # one wrong token a second
        now[0] = 1000.0 + second
        assert (await client.get("/admin/api/cohorts", headers=wrong)).status_code == 401
    refused = await client.get("/admin/api/cohorts", headers=right)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "51"  # when the first failure leaves the window
    now[0] = 1060.0  # the first failure is a minute old: one more try is allowed
    assert (await client.get("/admin/api/cohorts", headers=right)).status_code == 200
    assert (await client.get("/admin/api/cohorts", headers=wrong)).status_code == 401
    assert (await client.get("/admin/api/cohorts", headers=right)).status_code == 429
    now[0] = 1070.0
    assert (await client.get("/admin/api/cohorts", headers=right)).status_code == 200


async def test_requests_without_a_token_guess_nothing_and_are_not_counted(
    harness: AppHarness,
) -> None:
    for _ in range(20):
        assert (await harness.client.get("/admin/api/cohorts")).status_code == 401
    right = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert (await harness.client.get("/admin/api/cohorts", headers=right)).status_code == 200


def test_the_table_of_addresses_is_bounded() -> None:
    throttle = AuthThrottle(max_addresses=100, max_failures=3)
    for n in range(5000):
        throttle.failed(f"10.0.{n // 256}.{n % 256}")
    assert throttle.addresses() == 100
    for _ in range(3):
        throttle.failed("192.0.2.1")
    assert throttle.retry_after("192.0.2.1") == 60
    assert throttle.retry_after("10.0.0.0") is None  # forgotten first: failed longest ago
