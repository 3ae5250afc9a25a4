"""Scripts and schedules over the admin API: an app with ADMIN_TOKEN, a client that sends it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

# Register every table before the `engine` fixture creates the schema.
import app.admin.models  # noqa: F401
import schedules.models  # noqa: F401
import scripts_library.models  # noqa: F401
from app.settings import Settings
from tests.support import AppHarness

ADMIN_TOKEN = "test-admin-token"
TZ = "Asia/Shanghai"


@pytest.fixture
def settings() -> Settings:
    # No WECOM_* settings: no sender loop starts, so outbox rows stay as the tests left them
    # (and nothing tries to reach the real WeCom).
    return Settings(ADMIN_TOKEN=ADMIN_TOKEN, _env_file=None)  # type: ignore[call-arg]


class Api:
    """The app's /admin/api with the bearer token on every request."""

    def __init__(self, harness: AppHarness) -> None:
        self.client = harness.client
        self.headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.request(
            method, "/admin/api" + path, headers=self.headers, **kwargs
        )

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PATCH", path, **kwargs)

    async def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = await self.request(method, path, json=body)
        assert response.status_code == status, (method, path, response.text)
        return response.json()

    async def created(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.ok("POST", path, body, status=201)
        return result


@pytest.fixture
def api(harness: AppHarness) -> Api:
    return Api(harness)


def problems(response: httpx.Response) -> dict[str, str]:
    """A 422 body as {field: message} (fields named more than once: messages joined)."""
    assert response.status_code == 422, response.text
    found: dict[str, str] = {}
    for problem in response.json()["detail"]:
        field = problem["field"]
        found[field] = (found[field] + "\n" if field in found else "") + problem["message"]
    return found


def script_body(key: str = "day1_tasks", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "key": key,
        "title": "第1天任务",
        "msgtype": "text",
        "body": "{{ group_name }}的同学们早！今天是第 {{ day }} 天。",
        "category": "daily",
    }
    return body | fields
