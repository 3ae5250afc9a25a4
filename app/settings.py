"""Settings: the only place the environment (and a `.env` file) is read.

The variables are exactly those of ARCHITECTURE §4. Anything else that tunes
behaviour is a keyword argument with a default at the place that uses it, so
tests can change it without touching the environment.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache
from typing import Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./campbot.db"
# Shorter bearer tokens can be guessed; the sandbox trial (no WECOM_* setting) is exempt.
ADMIN_TOKEN_MIN_CHARS = 16
_AES_KEY_RE = re.compile(r"[A-Za-z0-9]{43}")


class QuotaMode(StrEnum):
    """How many 群发 a customer group or contact may receive (群发助手's rule; `app.quota`)."""

    MONTH_DAYS = "month_days"  # as many a month as the month has days (WeCom's default)
    WEEK_7 = "week_7"  # 7 a week
    DAY_1 = "day_1"  # 1 a day


class HandlersMode(StrEnum):
    """Where the event handlers run (`app.inbox_taker`)."""

    INLINE = "inline"  # in the server that recorded the event, after its answer
    WORKER = "worker"  # in `campbot worker` processes; the server only records


class SettingsError(ValueError):
    """Settings that would make the service misbehave; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    wecom_corp_id: str | None = Field(default=None, validation_alias="WECOM_CORP_ID")
    wecom_agent_id: int | None = Field(default=None, validation_alias="WECOM_AGENT_ID")
    wecom_secret: SecretStr | None = Field(default=None, validation_alias="WECOM_SECRET")
    wecom_token: SecretStr | None = Field(default=None, validation_alias="WECOM_TOKEN")
    wecom_encoding_aes_key: SecretStr | None = Field(
        default=None, validation_alias="WECOM_ENCODING_AES_KEY"
    )
    wecom_api_base: str = Field(
        default="https://qyapi.weixin.qq.com", validation_alias="WECOM_API_BASE"
    )
    database_url: str = Field(default=DEFAULT_DATABASE_URL, validation_alias="DATABASE_URL")
    admin_token: SecretStr | None = Field(default=None, validation_alias="ADMIN_TOKEN")
    # Unset: /metrics answers 404. Set: Prometheus sends it as a bearer token.
    metrics_token: SecretStr | None = Field(default=None, validation_alias="METRICS_TOKEN")
    public_base_url: str = Field(
        default="http://localhost:8000", validation_alias="PUBLIC_BASE_URL"
    )
    campbot_timezone: str = Field(default="Asia/Shanghai", validation_alias="CAMPBOT_TIMEZONE")
    wecom_mass_send_quota: QuotaMode = Field(
        default=QuotaMode.MONTH_DAYS, validation_alias="WECOM_MASS_SEND_QUOTA"
    )
    campbot_handlers: HandlersMode = Field(
        default=HandlersMode.INLINE, validation_alias="CAMPBOT_HANDLERS"
    )

    @field_validator(
        "wecom_corp_id",
        "wecom_token",
        "wecom_encoding_aes_key",
        "wecom_secret",
        "admin_token",
        "metrics_token",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `WECOM_TOKEN=` in a .env file means "not set", not "the empty token".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("wecom_agent_id", mode="before")
    @classmethod
    def _blank_agent_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("wecom_encoding_aes_key")
    @classmethod
    def _aes_key_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _AES_KEY_RE.fullmatch(value.get_secret_value()):
            raise SettingsError(
                "must be exactly 43 letters or digits "
                f"(got {len(value.get_secret_value())} characters)"
            )
        return value

    @field_validator("campbot_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise SettingsError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("wecom_api_base", "public_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _callback_all_or_nothing(self) -> Self:
        # The callback needs its Token and EncodingAESKey, and the CorpID as receive id;
        # WECOM_CORP_ID alone (with WECOM_SECRET, for sending) is a complete setup too.
        keys = {
            "WECOM_TOKEN": self.wecom_token,
            "WECOM_ENCODING_AES_KEY": self.wecom_encoding_aes_key,
        }
        if not any(keys.values()):
            return self
        missing = [name for name, value in keys.items() if value is None]
        if self.wecom_corp_id is None:
            missing.insert(0, "WECOM_CORP_ID")
        if missing:
            raise SettingsError(
                "callback settings are half-set: set "
                + ", ".join(missing)
                + " too (or unset WECOM_TOKEN and WECOM_ENCODING_AES_KEY)"
            )
        return self

    @model_validator(mode="after")
    def _tokens_long_enough(self) -> Self:
        """Bearer tokens guessable in a day are refused outside the sandbox."""
        sandbox_note = " (only the built-in sandbox, with no WECOM_* setting, takes a shorter one)"
        for name, secret, note in (
            ("ADMIN_TOKEN", self.admin_token, sandbox_note),
            ("METRICS_TOKEN", self.metrics_token, ""),
        ):
            token = secret.get_secret_value() if secret else None
            if token is None or len(token) >= ADMIN_TOKEN_MIN_CHARS or not self.wecom_configured:
                continue
            raise SettingsError(
                f"{name}: too short ({len(token)} characters): use at least "
                f"{ADMIN_TOKEN_MIN_CHARS}, e.g. the output of `openssl rand -hex 16`{note}"
            )
        return self

    @property
    def wecom_configured(self) -> bool:
        """Any WECOM_* credential set: CampBot talks to a real WeCom, not the sandbox."""
        return any(
            (
                self.wecom_corp_id,
                self.wecom_secret,
                self.wecom_token,
                self.wecom_encoding_aes_key,
                self.wecom_agent_id,
            )
        )

    @property
    def callback_enabled(self) -> bool:
        return self.wecom_token is not None

    @property
    def handlers_here(self) -> bool:
        """Whether a server runs the events it records (not `CAMPBOT_HANDLERS=worker`)."""
        return self.campbot_handlers is HandlersMode.INLINE

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.campbot_timezone)


@lru_cache
def get_settings() -> Settings:
    return Settings()


def describe_settings_error(exc: Exception) -> str:
    """One readable line per problem, each naming its variable, for start-up refusals."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    lines = []
    for err in errors():
        message = str(err.get("msg", "")).removeprefix("Value error, ")
        variable = ".".join(str(part) for part in err.get("loc", ()))
        lines.append(f"{variable}: {message}" if variable else message)
    return "\n".join(lines)
