"""The demo's staff at work: signing in to the sidebar (聊天工具栏) through the sandbox's
OAuth, and posting their due 群SOP items as the toolbar page does — `sendChatMessage` in
their WeCom client (recorded by the sandbox as a `chat_tool` delivery), then telling
CampBot it was sent — all through the sidebar's HTTP API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi import FastAPI

from app.wecom_sandbox.state import SandboxState


class SidebarError(Exception):
    """The sidebar did not answer as it should (the message says what)."""


@dataclass
class Desk:
    """One staff member's sidebar, signed in."""

    userid: str
    client: httpx.AsyncClient
    signed_at: datetime

    async def due(self) -> list[dict[str, Any]]:
        answer = await self.client.get("/sidebar/api/tasks")
        if answer.status_code != 200:
            raise SidebarError(f"{self.userid} 的侧边栏打不开：{answer.status_code} {answer.text}")
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    async def post(self, state: SandboxState, item: dict[str, Any]) -> None:
        """One tap on 发送: the client sends each part, then CampBot records it once."""
        if item["text"]:
            message = {"msgtype": "text", "text": {"content": item["text"]}}
            state.post_from_toolbar(self.userid, item["chat"], message)
        if item["has_image"]:
            media = await self.client.post(f"/sidebar/api/tasks/{item['id']}/media")
            image = {"msgtype": "image", "image": {"mediaid": media.json()["mediaid"]}}
            state.post_from_toolbar(self.userid, item["chat"], image)
        await self._close(item, "sent")

    async def skip(self, item: dict[str, Any]) -> None:
        await self._close(item, "skip")

    async def _close(self, item: dict[str, Any], how: str) -> None:
        answer = await self.client.post(f"/sidebar/api/tasks/{item['id']}/{how}")
        if answer.status_code != 200:
            raise SidebarError(f"群SOP {item['id']} {how}：{answer.status_code} {answer.text}")


async def sign_in(app: FastAPI, state: SandboxState, userid: str) -> Desk:
    """Open /sidebar/ as WeCom's client would: to the authorize page, which (the sandbox)
    mints a code for the member signed in, and back with it."""
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://campbot")
    first = await client.get("/sidebar/")
    if first.status_code != 302:
        await client.aclose()
        raise SidebarError(f"侧边栏没有要求登录：{first.status_code}")
    query = parse_qs(urlsplit(first.headers["location"]).query)
    back = urlsplit(query["redirect_uri"][0])
    code = state.jsapi.mint_code(userid, back.netloc, state.clock.now())
    done = await client.get(
        f"{back.path}?{back.query}", params={"code": code, "state": query["state"][0]}
    )
    if done.status_code != 303:
        await client.aclose()
        raise SidebarError(f"{userid} 登录侧边栏失败：{done.status_code} {done.text}")
    return Desk(userid, client, state.clock.now())
