"""A client for the sandbox that tests drive like a WeCom SDK would, minus the retries."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import httpx

from app.wecom_sandbox.state import SandboxState

CORP_ID = "wwsandboxcorp0001"
AGENT = 1000002
SECRET = "sandbox-app-secret"
OTHER_AGENT = 1000005
OTHER_SECRET = "sandbox-other-secret"
BASE_URL = "https://qyapi.weixin.qq.com"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
JPEG = b"\xff\xd8\xff\xe0" + b"\r\n" * 300
AMR = b"#!AMR\n" + b"\x00\x01" * 100
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200


def image_payload(raw: bytes = PNG) -> dict[str, str]:
    return {
        "base64": base64.b64encode(raw).decode(),
        "md5": hashlib.md5(raw, usedforsecurity=False).hexdigest(),
    }


class SandboxApi:
    def __init__(self, client: httpx.AsyncClient, state: SandboxState) -> None:
        self.client = client
        self.state = state
        self._tokens: dict[int, str] = {}

    async def token(self, agent: int = AGENT) -> str:
        if agent not in self._tokens:
            secret = self.state.apps[agent]
            r = await self.client.get(
                "/cgi-bin/gettoken", params={"corpid": CORP_ID, "corpsecret": secret}
            )
            self._tokens[agent] = r.json()["access_token"]
        return self._tokens[agent]

    async def post(
        self, path: str, body: Any = None, *, agent: int = AGENT, **params: str
    ) -> dict[str, Any]:
        query = {"access_token": await self.token(agent), **params}
        r = await self.client.post("/cgi-bin/" + path, params=query, json=body)
        assert r.status_code == 200
        return dict(r.json())

    async def get(self, path: str, *, agent: int = AGENT, **params: str) -> dict[str, Any]:
        query = {"access_token": await self.token(agent), **params}
        r = await self.client.get("/cgi-bin/" + path, params=query)
        assert r.status_code == 200
        return dict(r.json())

    async def upload(
        self, path: str, data: bytes, *, filename: str = "f.bin", **params: str
    ) -> dict[str, Any]:
        query = {"access_token": await self.token(), **params}
        files = {"media": (filename, data, "application/octet-stream")}
        r = await self.client.post("/cgi-bin/" + path, params=query, files=files)
        return dict(r.json())

    async def robot(self, key: str, body: Any) -> dict[str, Any]:
        r = await self.client.post("/cgi-bin/webhook/send", params={"key": key}, json=body)
        return dict(r.json())


def text(content: str, to: str = "zhangsan", agent: int = AGENT, **extra: Any) -> dict[str, Any]:
    return {
        "touser": to,
        "msgtype": "text",
        "agentid": agent,
        "text": {"content": content},
        **extra,
    }
