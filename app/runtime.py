"""What one running CampBot holds: settings, clock, database, crypto, the inbox processor.

Built once in the app's lifespan (or by tests with their own clock and database)
and reached by routes through `app.deps`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.capability import Extensions
from app.clock import Clock
from app.inbox import InboxProcessor, Intake
from app.instances import Identity
from app.sender import Sender
from app.settings import Settings
from app.wecom.client import WeComClient
from app.wecom.crypto import CallbackCrypto

WECOM_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


@dataclass(slots=True)
class Runtime:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    processor: InboxProcessor
    crypto: CallbackCrypto | None
    wecom: WeComClient | None = None  # None until WECOM_CORP_ID and WECOM_SECRET are set
    sender: Sender | None = None
    # This process in the instances table: what its claims carry (app.instances).
    identity: Identity | None = None
    # The capabilities' jobs, filters, providers, loops and cohort hooks (app.capability).
    extensions: Extensions = field(default_factory=Extensions)
    # Built from `sessions`: the group-commit writer every callback is recorded through.
    intake: Intake = field(init=False)

    def __post_init__(self) -> None:
        instance_id = self.identity.id if self.identity else None
        self.intake = Intake(self.sessions, instance_id=instance_id)


def callback_crypto(settings: Settings) -> CallbackCrypto | None:
    """The callback crypto, or None when the WECOM_* callback settings are unset."""
    if not (settings.wecom_token and settings.wecom_encoding_aes_key and settings.wecom_corp_id):
        return None
    return CallbackCrypto(
        token=settings.wecom_token.get_secret_value(),
        encoding_aes_key=settings.wecom_encoding_aes_key.get_secret_value(),
        receive_id=settings.wecom_corp_id,
    )


def wecom_http(
    settings: Settings, transport: httpx.AsyncBaseTransport | None
) -> httpx.AsyncClient:
    """The one HTTP client for WeCom calls (tests pass the sandbox as the transport)."""
    return httpx.AsyncClient(
        base_url=settings.wecom_api_base, timeout=WECOM_TIMEOUT, transport=transport
    )


def wecom_client(
    settings: Settings,
    *,
    http: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
) -> WeComClient | None:
    """The API client, or None when WECOM_CORP_ID / WECOM_SECRET are unset."""
    if not (settings.wecom_corp_id and settings.wecom_secret):
        return None
    return WeComClient(
        http=http,
        corp_id=settings.wecom_corp_id,
        agent_id=settings.wecom_agent_id,
        secret=settings.wecom_secret.get_secret_value(),
        sessions=sessions,
        clock=clock,
    )
