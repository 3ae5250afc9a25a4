"""First run: no WECOM_* settings → CampBot works against its built-in WeCom sandbox."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.clock import ManualClock
from app.first_run import SANDBOX_AES_KEY, SANDBOX_AGENT_ID, SANDBOX_MOUNT, SANDBOX_TOKEN
from app.main import create_app
from app.settings import Settings
from app.wecom_sandbox.sender import CallbackSender


def bare_settings() -> Settings:
    """Nothing about WeCom; an admin token so the test can create a cohort."""
    return Settings(ADMIN_TOKEN="first-run-admin", _env_file=None)  # type: ignore[call-arg]


async def test_unconfigured_app_greets_a_new_contact_through_the_sandbox(
    engine: AsyncEngine, clock: ManualClock
) -> None:
    app = create_app(
        settings=bare_settings(),
        clock=clock,
        engine=engine,
        sweeper=False,
        scheduler=False,
        sandbox_when_unconfigured=True,
    )
    async with app.router.lifespan_context(app):
        state = app.state.sandbox
        state.clock = clock
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://campbot") as client:
            wecom = CallbackSender(
                state,
                client,
                token=SANDBOX_TOKEN,
                encoding_aes_key=SANDBOX_AES_KEY,
                agent_id=SANDBOX_AGENT_ID,
            )
            cohort = {
                "name": "第 1 期",
                "camp": "跨境电商实战营",
                "start_date": "2026-03-02",
                "days": 7,
                "channel_state": "camp1",
            }
            admin = {"Authorization": "Bearer first-run-admin"}
            created = await client.post("/admin/api/cohorts", json=cohort, headers=admin)
            assert created.status_code == 201, created.text
            sent = await wecom.add_external_contact(
                "wmNewStudent", userid="zhangsan", name="小林", state="camp1"
            )
            assert sent.response.status_code == 200
            await app.state.runtime.processor.drain()
            messages = (await client.get(f"{SANDBOX_MOUNT}/sandbox/messages")).json()
    welcomes = [d for d in messages["deliveries"] if d["channel"] == "welcome"]
    assert len(welcomes) == 1, messages
    assert "小林" in str(welcomes[0])


async def test_any_wecom_setting_turns_the_sandbox_off(
    engine: AsyncEngine, clock: ManualClock
) -> None:
    settings = Settings(WECOM_CORP_ID="wwreal", _env_file=None)  # type: ignore[call-arg]
    app = create_app(
        settings=settings,
        clock=clock,
        engine=engine,
        sweeper=False,
        scheduler=False,
        sender=False,
        sandbox_when_unconfigured=True,
    )
    async with app.router.lifespan_context(app):
        assert not hasattr(app.state, "sandbox")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://campbot") as client:
            assert (await client.get(f"{SANDBOX_MOUNT}/sandbox/messages")).status_code == 404
            # Callback settings unset: the documented 503, not the sandbox's secrets.
            assert (await client.post("/wecom/callback", content=b"<xml/>")).status_code == 503
