"""Every official crypto vector set, through the HTTP endpoint, with the clock set to its time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clock import ManualClock
from app.settings import Settings
from tests.support import crypto_vectors, inbox_rows, needs_crypto_vectors, running_app

pytestmark = needs_crypto_vectors


def _settings(vector: dict[str, Any]) -> Settings:
    return Settings(
        WECOM_CORP_ID=vector["receive_id"],
        WECOM_TOKEN=vector["token"],
        WECOM_ENCODING_AES_KEY=vector["encoding_aes_key"],
        _env_file=None,
    )  # type: ignore[call-arg]


def _clock(timestamp: str) -> ManualClock:
    return ManualClock(datetime.fromtimestamp(int(timestamp), UTC))


@pytest.mark.parametrize("vector", crypto_vectors("verify_url", with_token=True))
async def test_get_verifies_url(vector: dict[str, Any], engine: AsyncEngine) -> None:
    check = vector["verify_url"]
    async with running_app(
        settings=_settings(vector), clock=_clock(check["timestamp"]), engine=engine
    ) as app:
        params = {k: check[k] for k in ("msg_signature", "timestamp", "nonce", "echostr")}
        response = await app.client.get("/wecom/callback", params=params)
        assert response.status_code == 200
        assert response.text.isdigit()  # WeCom's echostr plaintexts are digits, nothing else
        if "expected_plaintext" in check:
            assert response.text == check["expected_plaintext"]

        tampered = {**params, "msg_signature": "0" * 40}
        assert (await app.client.get("/wecom/callback", params=tampered)).status_code == 403


@pytest.mark.parametrize("vector", crypto_vectors("decrypt", with_token=True))
async def test_post_decrypts_and_records(
    vector: dict[str, Any], engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    check = vector["decrypt"]
    query = {k: check[k] for k in ("msg_signature", "timestamp", "nonce")}
    async with running_app(
        settings=_settings(vector), clock=_clock(check["timestamp"]), engine=engine
    ) as app:
        response = await app.client.post("/wecom/callback", params=query, content=check["body"])
        assert response.status_code == 200
        assert response.text == "success"
        rows = await inbox_rows(sessions)
        assert len(rows) == 1
        assert rows[0].body.startswith("<xml>")
        if "expected_plaintext" in check:
            assert rows[0].body == check["expected_plaintext"]
        for field, value in check.get("expected_fields", {}).items():
            assert f"<{field}><![CDATA[{value}]]></{field}>" in rows[0].body

        tampered = {**query, "msg_signature": "f" * 40}
        response = await app.client.post("/wecom/callback", params=tampered, content=check["body"])
        assert response.status_code == 403
        assert len(await inbox_rows(sessions)) == 1


@pytest.mark.parametrize("vector", crypto_vectors("decrypt", with_token=True))
async def test_post_for_another_corp_is_refused(
    vector: dict[str, Any], engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    check = vector["decrypt"]
    settings = _settings({**vector, "receive_id": "wwsomeoneelse000"})
    query = {k: check[k] for k in ("msg_signature", "timestamp", "nonce")}
    async with running_app(
        settings=settings, clock=_clock(check["timestamp"]), engine=engine
    ) as app:
        response = await app.client.post("/wecom/callback", params=query, content=check["body"])
        assert response.status_code == 403
        assert "receive id" in response.text
        assert await inbox_rows(sessions) == []
