"""Admin API fixtures: settings with ADMIN_TOKEN, and a client that sends it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import app.admin.models  # noqa: F401 - registers the admin tables before the engine creates them
from app.clock import ManualClock
from app.settings import Settings
from tests.support import AppHarness, running_app

ADMIN_TOKEN = "test-admin-token"
PUBLIC_BASE_URL = "https://camp.example.com"


def admin_settings(**overrides: Any) -> Settings:
    # No WECOM_* settings: no sender loop runs, so outbox rows stay as the tests leave them.
    values: dict[str, Any] = {"ADMIN_TOKEN": ADMIN_TOKEN, "PUBLIC_BASE_URL": PUBLIC_BASE_URL}
    values.update(overrides)
    return Settings(**values, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def settings() -> Settings:
    return admin_settings()


class Admin:
    """The harness's client with the bearer token on every request."""

    def __init__(self, harness: AppHarness, token: str = ADMIN_TOKEN) -> None:
        self.harness = harness
        self.headers = {"Authorization": f"Bearer {token}"}

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.harness.client.request(
            method, "/admin/api" + path, headers=self.headers, **kwargs
        )

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", path, **kwargs)

    async def created(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.post(path, json=body)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def cohort(self, **fields: Any) -> dict[str, Any]:
        body = {
            "name": "写作营 第 3 期",
            "camp": "21 天写作营",
            "start_date": "2026-03-02",
            "days": 21,
            "channel_state": "write3",
        }
        return await self.created("/cohorts", body | fields)


@pytest.fixture
def admin(harness: AppHarness) -> Admin:
    return Admin(harness)


@pytest.fixture
async def open_app(clock: ManualClock, engine: AsyncEngine) -> AsyncIterator[AppHarness]:
    """The app with ADMIN_TOKEN unset."""
    async with running_app(
        settings=admin_settings(ADMIN_TOKEN=None), clock=clock, engine=engine
    ) as running:
        yield running


def problems(response: httpx.Response) -> dict[str, str]:
    """A 422 body as {field: message}."""
    assert response.status_code == 422, response.text
    return {p["field"]: p["message"] for p in response.json()["detail"]}
