"""The WeCom transport: how every call reaches WeCom, on one shared httpx.AsyncClient.

It owns the protocol rules (ARCHITECTURE §1 rule 4): the token is added to each call
and refreshed once on 40001/40014/42001; -1 is retried at most three times with
backoff; everything else surfaces as a typed error (`app.wecom.errors`) for the
caller — the outbox — to retry, wait or give up. Transport errors are never retried
here: a send whose answer was lost may have been delivered, and only the outbox knows
whether repeating it is safe. `app.wecom.client.WeComClient` adds the typed endpoints.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import Clock
from app.wecom.errors import (
    GetTokenError,
    RateLimitedError,
    SystemBusyError,
    TokenError,
    WeComAPIError,
    WeComTransportError,
    api_error,
)
from app.wecom.tokens import IssuedToken, TokenStore

JSON = dict[str, Any]
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
BUSY_BACKOFF_S = (0.5, 1.0, 2.0)  # WeCom: "建议重试次数不超过3次"


class WeComTransport:
    """Token-authenticated and robot-key calls, and file downloads, by the protocol's rules."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        corp_id: str,
        agent_id: int | None,
        secret: str,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = http
        self.corp_id = corp_id
        self.agent_id = agent_id
        self._secret = secret
        self._sessions = sessions
        self._clock = clock
        self._sleep = sleep
        self.tokens = TokenStore(
            app_key=f"{corp_id}:{agent_id}", sessions=sessions, clock=clock, fetch=self._gettoken
        )

    # -- transport -------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any],
        json: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
    ) -> JSON:
        try:
            response = await self._http.request(
                method, path, params=params, json=json, files=files
            )
        except httpx.TransportError as exc:
            raise WeComTransportError(f"{path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise WeComTransportError(f"{path}: HTTP {response.status_code}")
        if response.status_code != 200:
            raise WeComAPIError(-response.status_code, f"HTTP {response.status_code}", path=path)
        try:
            data: JSON = response.json()
        except ValueError as exc:
            raise WeComTransportError(f"{path}: answer is not JSON") from exc
        errcode = int(data.get("errcode") or 0)  # a missing errcode means success
        if errcode:
            raise api_error(errcode, str(data.get("errmsg", "")), path=path)
        return data

    async def _busy_retried(self, attempt: Callable[[], Awaitable[T]]) -> T:
        for wait in (*BUSY_BACKOFF_S, None):
            try:
                return await attempt()
            except SystemBusyError:
                if wait is None:
                    raise
                await self._sleep(wait)
        raise AssertionError("unreachable")

    async def _gettoken(self) -> IssuedToken:
        params = {"corpid": self.corp_id, "corpsecret": self._secret}
        try:
            data = await self._busy_retried(
                lambda: self._request("GET", "/cgi-bin/gettoken", params=params)
            )
        except (SystemBusyError, RateLimitedError):
            raise
        except WeComAPIError as exc:
            # From gettoken even 40001 is no stale token but a wrong secret: permanent.
            raise GetTokenError(exc.errcode, exc.errmsg, path=exc.path) from exc
        return IssuedToken(str(data["access_token"]), int(data.get("expires_in") or 7200))

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
    ) -> JSON:
        """An access-token call: one refresh and retry on a rejected token, -1 retried."""

        async def attempt() -> JSON:
            token = await self.tokens.get()
            query = {**(params or {}), "access_token": token}
            try:
                return await self._request(method, path, params=query, json=json, files=files)
            except TokenError:
                query["access_token"] = await self.tokens.refresh(rejected=token)
                return await self._request(method, path, params=query, json=json, files=files)

        return await self._busy_retried(attempt)

    async def call_webhook(
        self,
        path: str,
        *,
        key: str,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
    ) -> JSON:
        """A group-robot call: authenticated by its key alone, never with a token."""
        query = {**(params or {}), "key": key}
        return await self._busy_retried(
            lambda: self._request("POST", path, params=query, json=json, files=files)
        )

    # -- files ---------------------------------------------------------------------------------

    async def get_media(self, *, media_id: str) -> bytes:
        """media/get: a temporary media's bytes (a member's image in an app message; ids
        live 3 days). WeCom answers a failure with a JSON errcode body instead of the file:
        40007 (invalid or expired media_id) is permanent, the rest as for `call`."""
        path = "/cgi-bin/media/get"

        async def attempt() -> bytes:
            token = await self.tokens.get()
            query = {"media_id": media_id, "access_token": token}
            try:
                return await self._download(path, params=query)
            except TokenError:
                query["access_token"] = await self.tokens.refresh(rejected=token)
                return await self._download(path, params=query)

        return await self._busy_retried(attempt)

    async def _download(self, path: str, *, params: Mapping[str, Any]) -> bytes:
        """A GET whose success is a file; a JSON answer is an error, raised as `_request`'s."""
        try:
            response = await self._http.get(path, params=params)
        except httpx.TransportError as exc:
            raise WeComTransportError(f"{path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise WeComTransportError(f"{path}: HTTP {response.status_code}")
        if response.status_code != 200:
            raise WeComAPIError(-response.status_code, f"HTTP {response.status_code}", path=path)
        content_type = response.headers.get("content-type", "")
        # Errors come as application/json or text/plain; no image starts with `{`.
        if "json" in content_type or "text/plain" in content_type or response.content[:1] == b"{":
            try:
                data = response.json()
            except ValueError as exc:
                raise WeComTransportError(f"{path}: answer is neither a file nor JSON") from exc
            errcode = int(data.get("errcode") or 0) if isinstance(data, dict) else 0
            if errcode:
                raise api_error(errcode, str(data.get("errmsg", "")), path=path)
            raise WeComTransportError(f"{path}: a JSON answer without the file")
        if not response.content:
            raise WeComTransportError(f"{path}: empty answer")
        return response.content
