"""What one running CampBot holds: settings, clock, database, crypto, the inbox processor.

Built once in the app's lifespan (or by tests with their own clock and database)
and reached by routes through `app.deps`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clock import Clock
from app.inbox import InboxProcessor
from app.settings import Settings
from app.wecom.crypto import CallbackCrypto


@dataclass(slots=True)
class Runtime:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    processor: InboxProcessor
    crypto: CallbackCrypto | None


def callback_crypto(settings: Settings) -> CallbackCrypto | None:
    """The callback crypto, or None when the WECOM_* callback settings are unset."""
    if not (settings.wecom_token and settings.wecom_encoding_aes_key and settings.wecom_corp_id):
        return None
    return CallbackCrypto(
        token=settings.wecom_token.get_secret_value(),
        encoding_aes_key=settings.wecom_encoding_aes_key.get_secret_value(),
        receive_id=settings.wecom_corp_id,
    )
